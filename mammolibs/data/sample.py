"""The record every reader produces, before it is put into standard form."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

LABELS = ("normal", "benign", "malignant", "unknown")
"""Image-level labels. ``unknown`` marks unlabelled images, used only for pretraining."""
SNIP_CLASSES = ("normal", "benign", "malignant")
"""What the lesion classifier tells apart on snips (normal tissue, and the two kinds of lesion)."""
WHOLE_IMAGE_CLASSES = ("benign", "malignant")
"""What the whole-image baseline classifier tells apart."""


@dataclass
class RawSample:
    """One image as a reader found it.

    Args:
        image: 2-D array (float32, or the stored integers of a DICOM) at native resolution,
            larger value = denser tissue.
        mask: 2-D bool array of the same shape (union of the lesions), or ``None`` when the
            source gives no localisation for this image (label only).
        label: one of :data:`LABELS`.
        source: reader name, e.g. ``"mias"``.
        patient_id: the source's patient identifier (hashed before anything is written).
        laterality: ``"L"``, ``"R"`` or ``""`` when unknown.
        meta: fields such as view, modality, tissue; only :data:`~mammolibs.data.vocabulary.VOCABULARY`
            reach the shards.
        official_split: ``"train"`` or ``"test"`` when the source publishes a split, else ``""``.
        lesions: ``(label, mask)`` of each lesion when they differ from the image's label (a film
            with benign and malignant findings is malignant; each lesion keeps its own class).
    """

    image: np.ndarray
    mask: np.ndarray | None
    label: str
    source: str
    patient_id: str
    laterality: str = ""
    meta: dict = field(default_factory=dict)
    official_split: str = ""
    lesions: list[tuple[str, np.ndarray]] = field(default_factory=list)


def truth_mask(label: str, mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """The lesion mask a reader hands on: an empty one for a normal image its source outlines nothing on
    (nothing to outline: the image is segmentation truth), ``mask`` otherwise (``None``: label only)."""
    return np.zeros(shape, dtype=bool) if mask is None and label == "normal" else mask


@dataclass
class SourceItem:
    """A file a reader will load: ``name`` (its URL, shown in errors and rejects), ``key`` (unique
    within the source; hashed before it is written) and ``load``, a picklable callable (a
    ``functools.partial`` of a module-level function) so that worker processes can run it."""

    name: str
    key: str
    load: Callable[[], RawSample]


class RejectedInput(ValueError):
    """Raised by a loader when an input cannot be used; the message says why and what to do."""
