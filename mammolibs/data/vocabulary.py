"""The reader metadata that may reach the shards, each field through a closed vocabulary: a value
outside it (free text, a name typed into ViewPosition) is dropped, never stored verbatim."""

from __future__ import annotations

import re

VOCABULARY: dict[str, frozenset[str]] = {
    "view": frozenset({"CC", "MLO", "ML", "LM", "LMO", "FB", "SIO", "XCCL", "XCCM", "AT", "CV"}),
    "modality": frozenset({"MG", "US", "DX", "CR"}),
    "tissue": frozenset({"F", "G", "D"}),  # mini-MIAS and DMID background tissue
    "classes": frozenset({"CALC", "CIRC", "SPIC", "MISC", "ARCH", "ASYM", "NORM"}),
    "abnormality": frozenset({"MASS", "CALCIFICATION", "BOTH"}),
    "birads": frozenset({"0", "1", "2", "3", "4", "4A", "4B", "4C", "5", "6"}),
    "density": frozenset({"A", "B", "C", "D", "1", "2", "3", "4"}),
    "scanner": frozenset({"GE LOGIQ 5", "GE LOGIQ 7", "TOSHIBA APLIO 300", "U-SYSTEMS"}),  # BUS-BRA's
    "histology": frozenset(  # biopsy findings as BUS-BRA names them
        {
            "ADENOCARCINOMA",
            "CYST",
            "DUCT ECTASIA",
            "DUCTAL CARCINOMA IN SITU",
            "FAT NECROSIS",
            "FIBROADENOMA",
            "FIBROCYSTIC CHANGES",
            "HAMARTOMA",
            "HYPERPLASIA",
            "INTRADUCTAL PAPILLOMA",
            "INVASIVE DUCTAL CARCINOMA",
            "INVASIVE LOBULAR CARCINOMA",
            "LIPOMA",
            "LOBULAR CARCINOMA IN SITU",
            "LYMPH NODE",
            "LYMPHOMA",
            "MASTITIS",
            "MEDULLARY CARCINOMA",
            "METAPLASIA APOCRINA",
            "PAPILLARY CARCINOMA",
            "PHYLLODES TUMOR",
            "PROLIFERATIVE LESIONS",
            "SCLEROSING ADENOSIS",
        }
    ),
}
"""Field -> the values it may take (upper case); a field holding a list keeps the listed values it may."""
_PREFIX = re.compile(r"^(BI-?RADS|DENSITY|CATEGORY)\s*", re.I)


def vocabulary_value(value: object) -> str:
    """A reader's value as the vocabulary spells it: upper case, without a 'BI-RADS' / 'DENSITY' prefix."""
    return _PREFIX.sub("", str(value).strip()).upper()


def checked_meta(meta: dict) -> dict:
    """The fields of :data:`VOCABULARY` in ``meta`` whose values it holds; every other field and value is dropped."""
    kept: dict[str, str | list[str]] = {}
    for field, allowed in VOCABULARY.items():
        value = meta.get(field)
        if isinstance(value, (list, tuple, set)):
            values = sorted({vocabulary_value(v) for v in value} & allowed)
            if values:
                kept[field] = values
        elif value is not None and vocabulary_value(value) in allowed:
            kept[field] = vocabulary_value(value)
    return kept
