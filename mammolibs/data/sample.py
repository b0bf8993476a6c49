"""The record every reader produces, before it is put into standard form."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

LABELS = ("normal", "benign", "malignant", "unknown")
"""Image-level labels. ``unknown`` marks unlabelled images, used only for pretraining."""


@dataclass
class RawSample:
    """One image as a reader found it.

    Args:
        image: 2-D float32 array at native resolution, larger value = denser tissue.
        mask: 2-D bool array of the same shape (union of the lesions), or ``None`` when the
            source gives no localisation for this image (label only).
        label: one of :data:`LABELS`.
        source: reader name, e.g. ``"mias"``.
        patient_id: the source's patient identifier (hashed before anything is written).
        laterality: ``"L"``, ``"R"`` or ``""`` when unknown.
        meta: allow-listed, non-identifying fields (view, modality, original size, ...).
    """

    image: np.ndarray
    mask: np.ndarray | None
    label: str
    source: str
    patient_id: str
    laterality: str = ""
    meta: dict = field(default_factory=dict)


@dataclass
class SourceItem:
    """A file a reader will load: ``name`` (shown in errors and rejects) and a loader."""

    name: str
    key: str
    load: Callable[[], RawSample]


class RejectedInput(ValueError):
    """Raised by a loader when an input cannot be used; the message says why and what to do."""
