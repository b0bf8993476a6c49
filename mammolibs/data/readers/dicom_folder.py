"""A folder (searched recursively) of mammography DICOM files, unlabelled: for pretraining.

Also the DICOM attributes every DICOM-based reader keeps: laterality, view, modality. Nothing
else of a DICOM header is used; the patient id is hashed downstream.
"""

from __future__ import annotations

from functools import partial
from typing import Iterator

import pydicom

from mammolibs import storage
from mammolibs.data.images import DICOM_SUFFIXES, read_dicom
from mammolibs.data.readers.registry import register_reader
from mammolibs.data.sample import RawSample, RejectedInput, SourceItem

MAMMOGRAPHY_MODALITIES = ("MG", "CR", "DX", "")


def dicom_laterality(ds: pydicom.Dataset) -> str:
    """``L``, ``R`` or ``""`` from ImageLaterality, else (series) Laterality."""
    laterality = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "")).upper()[:1]
    return laterality if laterality in ("L", "R") else ""


def dicom_meta(ds: pydicom.Dataset, name: str) -> dict:
    """Modality and view of a mammogram; other modalities are refused."""
    modality = str(ds.get("Modality", ""))
    if modality not in MAMMOGRAPHY_MODALITIES:
        raise RejectedInput(f"{name}: modality {modality} is not a mammogram (MG/CR/DX)")
    return {"modality": modality or "MG", "view": str(ds.get("ViewPosition", ""))}


@register_reader("dicom")
def read_dicom_folder(root: str) -> Iterator[SourceItem]:
    """Yield one item per ``*.dcm``/``*.dicom`` file below ``root``."""
    paths = storage.list_files(root, DICOM_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"{root}: no .dcm or .dicom files found below this folder")
    for relative in paths:
        url = storage.join(root, relative)
        yield SourceItem(name=url, key=relative, load=partial(_load, url))


def _load(url: str) -> RawSample:
    image, ds = read_dicom(url)
    return RawSample(
        image=image,
        mask=None,
        label="unknown",
        source="dicom",
        patient_id=str(ds.get("PatientID", "")) or url.rsplit("/", 1)[0],
        laterality=dicom_laterality(ds),
        meta=dicom_meta(ds, url),
    )
