"""A folder (searched recursively) of mammography DICOM files, unlabelled: for pretraining.

Only allow-listed, non-identifying attributes are kept; the patient id is hashed downstream.
"""
from __future__ import annotations

import os
from typing import Iterator

from mammolibs.data.images import DICOM_SUFFIXES, read_dicom
from mammolibs.data.readers import register_reader
from mammolibs.data.sample import RawSample, RejectedInput, SourceItem


@register_reader("dicom")
def read_dicom_folder(root: str) -> Iterator[SourceItem]:
    """Yield one item per ``*.dcm``/``*.dicom`` file below ``root``."""
    paths = sorted(
        os.path.join(folder, name)
        for folder, _, names in os.walk(root)
        for name in names
        if name.lower().endswith(DICOM_SUFFIXES)
    )
    if not paths:
        raise FileNotFoundError(f"{root}: no .dcm or .dicom files found below this folder")
    for path in paths:
        key = "dicom-" + os.path.relpath(path, root).rsplit(".", 1)[0].replace(os.sep, "-")
        yield SourceItem(name=path, key=key, load=lambda path=path: _load(path))


def _load(path: str) -> RawSample:
    image, ds = read_dicom(path)
    laterality = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "")).upper()[:1]
    if ds.get("Modality", "MG") not in ("MG", "CR", "DX", ""):
        raise RejectedInput(f"{path}: modality {ds.Modality} is not a mammogram (MG/CR/DX)")
    return RawSample(
        image=image,
        mask=None,
        label="unknown",
        source="dicom",
        patient_id=str(ds.get("PatientID", "")) or os.path.dirname(path),
        laterality=laterality if laterality in ("L", "R") else "",
        meta={
            "modality": str(ds.get("Modality", "")),
            "view": str(ds.get("ViewPosition", "")),
            "photometric": str(ds.get("PhotometricInterpretation", "")),
            "bits_stored": int(ds.get("BitsStored", 0) or 0),
        },
    )
