"""KAU-BCMD (King Abdulaziz University Breast Cancer Mammogram Dataset): images sorted into one
folder per BI-RADS category.

Layout::

    Birad1/<case>/<case>_RCC.jpg   ... _LCC, _RMLO, _LMLO
    Birad3/...   Birad4/...   Birad5/...     (also "BIRADS 1", "BI-RADS_1"; .jpg, .png or .dcm)

The label comes from the category folder (1 normal, 2-3 benign, 4-6 malignant); laterality and
view from the file name; the patient from the case folder (or the file-name prefix when the
images sit directly in the category folder). No masks: label-only.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Iterator

from mammolibs import storage
from mammolibs.data.images import DICOM_SUFFIXES, IMAGE_SUFFIXES, read_any
from mammolibs.data.readers.registry import register_reader
from mammolibs.data.readers.tables import birads_label
from mammolibs.data.sample import RawSample, SourceItem

_CATEGORY = re.compile(r"bi-?_?rads?\s*_?([0-6])", re.IGNORECASE)
_VIEW = re.compile(r"(?:^|[_\s-])([LR])[_\s-]?(CC|MLO)(?:$|[_\s.-])", re.IGNORECASE)


@register_reader("kau-bcmd")
def read_kau_bcmd(root: str) -> Iterator[SourceItem]:
    """Yield one item per image below a BI-RADS category folder of ``root``."""
    found = False
    for relative in storage.list_files(root, IMAGE_SUFFIXES + DICOM_SUFFIXES):
        parts = relative.split("/")
        category = next((i for i, p in enumerate(parts[:-1]) if _CATEGORY.fullmatch(p.strip())), None)
        matched = _CATEGORY.fullmatch(parts[category].strip()) if category is not None else None
        if category is None or matched is None:
            continue
        found = True
        stem = parts[-1].rsplit(".", 1)[0]
        case = parts[category + 1] if len(parts) > category + 2 else _VIEW.split(stem)[0]
        url = storage.join(root, relative)
        yield SourceItem(
            name=url,
            key=relative,
            load=partial(_load, url, matched.group(1), case, stem),
        )
    if not found:
        raise FileNotFoundError(f"{root}: no BI-RADS category folders (Birad1, BIRADS 3, ...) with images found")


def _load(url: str, category: str, case: str, stem: str) -> RawSample:
    view = _VIEW.search(stem)
    return RawSample(
        image=read_any(url),
        mask=None,
        label=birads_label(category),
        source="kau-bcmd",
        patient_id=f"kau-{case}",
        laterality=view.group(1).upper() if view else "",
        meta={"modality": "MG", "view": view.group(2).upper() if view else "", "birads": category},
    )
