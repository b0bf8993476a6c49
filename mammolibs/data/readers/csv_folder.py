"""A clinic's own data: a folder of images with a ``labels.csv`` (or ``labels.xlsx``) describing them.

Columns (only ``image`` and ``label`` are required)::

    image        path relative to the folder, inside it (DICOM, PNG, TIFF, JPEG, PGM)
    label        normal, benign, malignant or unknown
    patient_id   patient identifier (hashed before anything is written); default: the image path
    mask         binary mask file of the same size, relative as ``image``; empty when there is none
    laterality   L or R          view   CC, MLO, ...          modality   MG (default) or US
    split        train or test, when the clinic fixes its own test set

A URL, an absolute path, a ``..`` or a link out of the folder is refused (never fetched), so a table
cannot make a pipeline worker read other files or request internal addresses. A row with an empty
``mask`` on a benign or malignant image is kept label-only; a row with a normal label and no mask gets
an empty mask.
"""

from __future__ import annotations

from functools import partial
from typing import Iterator

from mammolibs import storage
from mammolibs.data.images import read_any, read_mask
from mammolibs.data.readers.registry import register_reader
from mammolibs.data.readers.tables import read_table
from mammolibs.data.sample import RawSample, RejectedInput, SourceItem, truth_mask


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
        yield SourceItem(name=storage.join(root, row["image"]), key=row["image"], load=partial(_load, row, root))


def inside(root: str, name: str, column: str) -> str:
    """The URL of the file ``name`` (from the table's ``column``) inside ``root``; a URL, an absolute path,
    a ``..`` or a link that leads out of the folder is refused: nothing outside the folder given is read."""
    parts = name.split("/")
    if "://" in name or "\\" in name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise RejectedInput(
            f"{column} {name[:100]!r} in the table is not a plain path inside {root}: name files relative to "
            "the folder, without a URL, an absolute path or '..'"
        )
    url = storage.join(root, name)
    if storage.is_local(url) and not storage.location(url).startswith(storage.location(root).rstrip("/") + "/"):
        raise RejectedInput(f"{url}: a link out of {root}; copy the file into the folder instead")
    return url


def _load(row: dict, root: str) -> RawSample:
    url = inside(root, row["image"], "image")
    image = read_any(url)
    label = row.get("label", "").strip().lower()
    mask = None
    if row.get("mask"):
        mask_url = inside(root, row["mask"], "mask")
        try:
            mask = read_mask(mask_url)
        except RejectedInput as err:
            raise RejectedInput(f"{url}: its mask is missing or unreadable: {err}") from err
    mask = truth_mask(label, mask, image.shape)
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
