"""CMMD (the Chinese Mammography Database, TCIA): a DICOM tree and a clinical table; labels, no masks.

Layout::

    CMMD/D1-0001/<study>/<series>/1-1.dcm
    CMMD_clinicaldata_revision.xlsx (or .csv): ID1, LeftRight, Age, number, abnormality, classification, subtype

Each table row is one breast (``ID1`` + ``LeftRight``); each image gets the classification
(Benign / Malignant) of its breast, found by its patient folder and ImageLaterality. Images of a
breast the table does not list are kept as ``unknown`` (pretraining only).
"""

from __future__ import annotations

import re
from functools import partial
from typing import Iterator

from mammolibs import storage
from mammolibs.data.images import DICOM_SUFFIXES, read_dicom
from mammolibs.data.readers.dicom_folder import dicom_laterality, dicom_meta
from mammolibs.data.readers.registry import register_reader
from mammolibs.data.readers.tables import TABLE_SUFFIXES, column, read_table
from mammolibs.data.sample import RawSample, RejectedInput, SourceItem

_PATIENT = re.compile(r"D\d-\d{4}")
CLASSIFICATION = {"benign": "benign", "malignant": "malignant"}


@register_reader("cmmd")
def read_cmmd(root: str) -> Iterator[SourceItem]:
    """Yield one item per DICOM below ``root`` whose path names a CMMD patient (``D1-0001``)."""
    files = storage.list_files(root)
    tables = [f for f in files if f.lower().endswith(TABLE_SUFFIXES) and "clinical" in f.lower()]
    if not tables:
        raise FileNotFoundError(f"{root}: CMMD_clinicaldata_revision.xlsx (or .csv) not found beside the CMMD folder")
    breasts = {}
    for row in read_table(storage.join(root, tables[0])):
        patient = column(row, "ID1", table=tables[0])
        side = column(row, "LeftRight", table=tables[0])[:1].upper()
        breasts[(patient, side)] = (column(row, "classification", table=tables[0]).lower(), row.get("abnormality", ""))
    for relative in files:
        if not relative.lower().endswith(DICOM_SUFFIXES):
            continue
        folder = next((p for p in relative.split("/") if _PATIENT.fullmatch(p)), None)
        if folder is None:
            continue
        url = storage.join(root, relative)
        yield SourceItem(
            name=url,
            key=relative,
            load=partial(_load, url, folder, {side: breasts.get((folder, side)) for side in "LR"}),
        )


def _load(url: str, patient: str, breasts: dict[str, tuple[str, str] | None]) -> RawSample:
    image, ds = read_dicom(url)
    laterality = dicom_laterality(ds)
    classification, abnormality = breasts.get(laterality) or ("", "")
    if classification and classification not in CLASSIFICATION:
        raise RejectedInput(
            f"{url}: unknown classification {classification!r} for {patient} {laterality}; expected Benign or Malignant"
        )
    return RawSample(
        image=image,
        mask=None,
        label=CLASSIFICATION.get(classification, "unknown"),
        source="cmmd",
        patient_id=patient,
        laterality=laterality,
        meta={**dicom_meta(ds, url), "abnormality": abnormality},
    )
