"""A clinic's own data: a folder of images with a ``labels.csv`` (or ``labels.xlsx``) describing them.

Columns (only ``image`` and ``label`` are required)::

    image        path relative to the folder, or a full URL (DICOM, PNG, TIFF, JPEG, PGM)
    label        normal, benign, malignant or unknown
    patient_id   patient identifier (hashed before anything is written); default: the image path
    mask         binary mask file of the same size, relative or URL; empty when there is none
    laterality   L or R          view   CC, MLO, ...          modality   MG (default) or US
    split        train or test, when the clinic fixes its own test set

A row with an empty ``mask`` on a benign or malignant image is kept label-only; a row with a
normal label and no mask gets an empty mask.
"""

from __future__ import annotations

from functools import partial
from typing import Iterator

import numpy as np

from mammolibs import storage
from mammolibs.data.images import read_any, read_mask
from mammolibs.data.readers import register_reader
from mammolibs.data.readers.tables import read_table
from mammolibs.data.sample import RawSample, RejectedInput, SourceItem


@register_reader("csv")
def read_csv_folder(root: str) -> Iterator[SourceItem]:
    """Yield one item per row of ``root/labels.csv`` (or ``labels.xlsx``)."""
    table = next(
        (storage.join(root, n) for n in ("labels.csv", "labels.xlsx") if storage.exists(storage.join(root, n))), None
    )
    if table is None:
        raise FileNotFoundError(
            f"{root}: labels.csv not found; write one with columns image,label[,patient_id,mask,...]"
        )
    for number, row in enumerate(read_table(table), start=2):
        if not row.get("image"):
            raise ValueError(f"{table} line {number}: the 'image' column is empty")
        url = _resolve(root, row["image"])
        yield SourceItem(name=url, key=row["image"], load=partial(_load, url, row, root))


def _resolve(root: str, path: str) -> str:
    return path if "://" in path or path.startswith("/") else storage.join(root, path)


def _load(url: str, row: dict, root: str) -> RawSample:
    image = read_any(url)
    label = row.get("label", "").strip().lower()
    mask = None
    if row.get("mask"):
        try:
            mask = read_mask(_resolve(root, row["mask"]))
        except RejectedInput as err:
            raise RejectedInput(f"{url}: its mask is missing or unreadable: {err}") from err
    if mask is None and label == "normal":
        mask = np.zeros(image.shape, dtype=bool)
    split = row.get("split", "").strip().lower()
    if split not in ("", "train", "test"):
        raise RejectedInput(f"{url}: split {split!r} must be train, test or empty")
    return RawSample(
        image=image,
        mask=mask,
        label=label,
        source="csv",
        patient_id=row.get("patient_id") or row["image"],
        laterality=row.get("laterality", "")[:1].upper(),
        meta={"modality": row.get("modality", "") or "MG", "view": row.get("view", "")},
        official_split=split,
    )
