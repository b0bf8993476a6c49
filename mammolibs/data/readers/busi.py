"""BUSI breast ultrasound as published: ``Dataset_BUSI_with_GT/<class>/<class> (N).png``.

Each image has ``<class> (N)_mask.png`` and, when it shows several lesions, ``_mask_1.png``,
``_mask_2.png``...; the standard mask is their union. Labels come from the folder (normal, benign,
malignant). BUSI publishes no patient ids, so each image counts as its own patient.
"""
from __future__ import annotations

import os
import re
from typing import Iterator

import numpy as np

from mammolibs.data.images import read_grey, read_mask
from mammolibs.data.readers import register_reader
from mammolibs.data.sample import RawSample, RejectedInput, SourceItem

CLASSES = ("normal", "benign", "malignant")
_IMAGE = re.compile(r"(normal|benign|malignant) \((\d+)\)\.png")


def _dataset_folder(root: str) -> str:
    nested = os.path.join(root, "Dataset_BUSI_with_GT")
    return nested if os.path.isdir(nested) else root


@register_reader("busi")
def read_busi(root: str) -> Iterator[SourceItem]:
    """Yield one item per ultrasound image under ``root`` (or ``root/Dataset_BUSI_with_GT``)."""
    folder = _dataset_folder(root)
    found = False
    for label in CLASSES:
        class_dir = os.path.join(folder, label)
        if not os.path.isdir(class_dir):
            continue
        found = True
        names = sorted(os.listdir(class_dir))
        for filename in names:
            match = _IMAGE.fullmatch(filename)
            if not match or match.group(1) != label:
                continue
            stem = filename[:-4]
            masks = [os.path.join(class_dir, n) for n in names if re.fullmatch(re.escape(stem) + r"_mask(_\d+)?\.png", n)]
            path = os.path.join(class_dir, filename)
            yield SourceItem(name=path, key=f"busi-{label}-{match.group(2)}",
                             load=lambda path=path, masks=masks, label=label: _load(path, masks, label))
    if not found:
        raise FileNotFoundError(f"{root}: no normal/benign/malignant folders; point --input at Dataset_BUSI_with_GT")


def _load(path: str, mask_paths: list[str], label: str) -> RawSample:
    image = read_grey(path)
    if not mask_paths:
        raise RejectedInput(f"{path}: no '_mask.png' beside the image; BUSI images need their mask file")
    mask = np.zeros(image.shape, dtype=bool)
    for mask_path in mask_paths:
        part = read_mask(mask_path)
        if part.shape != image.shape:
            raise RejectedInput(f"{mask_path}: mask is {part.shape[::-1]} but image is {image.shape[::-1]} pixels")
        mask |= part
    if label == "normal" and mask.any():
        raise RejectedInput(f"{path}: a 'normal' image has a non-empty mask; check the folder it is in")
    return RawSample(
        image=image, mask=mask, label=label, source="busi",
        patient_id=f"busi-{os.path.basename(path)}", laterality="", meta={"modality": "US"},
    )
