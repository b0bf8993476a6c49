"""VinDr-Mammo as published on PhysioNet: DICOMs and two annotation CSVs.

Layout::

    images/<study_id>/<image_id>.dicom
    breast-level_annotations.csv  study_id, series_id, image_id, laterality, view_position, height, width,
                                  breast_birads ("BI-RADS 1".."BI-RADS 5"), breast_density, split
    finding_annotations.csv       the same plus finding_categories, finding_birads, xmin, ymin, xmax, ymax

Labels come from ``breast_birads`` (1 normal, 2-3 benign, 4-5 malignant); finding boxes become
filled rectangles of the mask; the official ``training``/``test`` split is kept. Studies stand in
for patients (VinDr publishes no patient id).
"""

from __future__ import annotations

from functools import partial
from typing import Iterator

import numpy as np

from mammolibs import storage
from mammolibs.data.images import read_dicom
from mammolibs.data.readers.dicom_folder import dicom_meta
from mammolibs.data.readers.registry import register_reader
from mammolibs.data.readers.tables import birads_label, read_table
from mammolibs.data.sample import RawSample, RejectedInput, SourceItem, truth_mask

SPLITS = {"training": "train", "test": "test"}
BOX = ("xmin", "ymin", "xmax", "ymax")
MAX_PIXEL = 100_000  # a box coordinate beyond any film's side is a malformed row, not a lesion


@register_reader("vindr-mammo")
def read_vindr(root: str) -> Iterator[SourceItem]:
    """Yield one item per row of ``breast-level_annotations.csv`` under ``root``."""
    breast_url, finding_url = (
        storage.join(root, "breast-level_annotations.csv"),
        storage.join(root, "finding_annotations.csv"),
    )
    if not storage.exists(breast_url):
        raise FileNotFoundError(f"{breast_url} not found; point --input at the VinDr-Mammo folder (with images/)")
    boxes: dict[str, list[tuple[str, ...]]] = {}  # read as text: a malformed box rejects its image in _load
    if storage.exists(finding_url):
        for row in read_table(finding_url):
            if row.get("xmin") not in ("", None, "nan"):
                boxes.setdefault(row["image_id"], []).append(tuple(str(row.get(k)) for k in BOX))
    for row in read_table(breast_url):
        url = storage.join(root, "images", row["study_id"], f"{row['image_id']}.dicom")
        yield SourceItem(name=url, key=row["image_id"], load=partial(_load, url, row, boxes.get(row["image_id"], [])))


def box_of(url: str, text: tuple[str, ...]) -> tuple[float, ...]:
    """A finding box of ``finding_annotations.csv`` as pixels, or a one-line reject of ``url``'s image."""
    try:
        box = tuple(float(value) for value in text)
    except ValueError:
        box = ()
    if len(box) != 4 or not all(0 <= value <= MAX_PIXEL for value in box):
        shown = ", ".join(value[:20] for value in text)
        raise RejectedInput(f"{url}: finding box ({shown}) in finding_annotations.csv is not 4 pixels 0 to {MAX_PIXEL}")
    return box


def _load(url: str, row: dict, boxes: list[tuple[str, ...]]) -> RawSample:
    if row.get("split", "") not in SPLITS:
        raise RejectedInput(f"{url}: split {row.get('split')!r} is neither 'training' nor 'test'")
    image, ds = read_dicom(url)
    label = birads_label(row.get("breast_birads", ""))
    mask = None
    if boxes:
        mask = np.zeros(image.shape, dtype=bool)
        for x0, y0, x1, y1 in (box_of(url, text) for text in boxes):
            mask[max(0, int(y0)) : int(np.ceil(y1)), max(0, int(x0)) : int(np.ceil(x1))] = True
    return RawSample(
        image=image,
        mask=truth_mask(label, mask, image.shape),
        label=label,
        source="vindr-mammo",
        patient_id=row["study_id"],
        laterality=row.get("laterality", "")[:1].upper(),
        meta={
            **dicom_meta(ds, url),
            "view": row.get("view_position", ""),
            "birads": row.get("breast_birads", ""),
            "density": row.get("breast_density", ""),
        },
        official_split=SPLITS[row["split"]],
    )
