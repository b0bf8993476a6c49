"""BUSI breast ultrasound as published: ``Dataset_BUSI_with_GT/<class>/<class> (N).png``.

Each image has ``<class> (N)_mask.png`` and, when it shows several lesions, ``_mask_1.png``,
``_mask_2.png``...; the standard mask is their union. Labels come from the folder (normal, benign,
malignant). BUSI publishes no patient ids, so each image counts as its own patient.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Iterator

import numpy as np

from mammolibs import storage
from mammolibs.data.images import read_grey, read_mask
from mammolibs.data.readers.registry import register_reader, unread
from mammolibs.data.sample import RawSample, RejectedInput, SourceItem

CLASSES = ("normal", "benign", "malignant")
_IMAGE = re.compile(r"(normal|benign|malignant) \((\d+)\)\.png", re.I)
_MASK = r"_mask(_\d+)?\.png"


@register_reader("busi")
def read_busi(root: str) -> Iterator[SourceItem]:
    """Yield one item per ultrasound image under ``root`` (or ``root/Dataset_BUSI_with_GT``); every other
    file (off the published names, outside a class folder, a mask without its image) is one reject."""
    by_folder: dict[str, list[str]] = {}
    for relative in storage.list_files(root):
        folder, _, name = relative.rpartition("/")
        if not name.startswith("."):  # .DS_Store and other hidden files are no inputs
            by_folder.setdefault(folder, []).append(name)
    if not any(folder.rpartition("/")[2].lower() in CLASSES for folder in by_folder):
        raise FileNotFoundError(f"{root}: no normal/benign/malignant folders; point --input at Dataset_BUSI_with_GT")
    for folder, names in sorted(by_folder.items()):
        label = folder.rpartition("/")[2].lower()
        claimed = set()
        for filename in names:
            match = _IMAGE.fullmatch(filename)
            if label not in CLASSES or not match or match.group(1).lower() != label:
                continue
            stem = filename[:-4]
            masks = [n for n in names if re.fullmatch(re.escape(stem) + _MASK, n, re.I)]
            claimed.update([filename, *masks])
            url = storage.join(root, folder, filename)
            yield SourceItem(
                name=url,
                key=f"{label}-{match.group(2)}",
                load=partial(_load, url, [storage.join(root, folder, n) for n in masks], label),
            )
        for filename in sorted(set(names) - claimed):
            relative = f"{folder}/{filename}" if folder else filename
            reason = (
                "not in a normal/benign/malignant folder"
                if label not in CLASSES
                else f"not a BUSI file name ('{label} (N).png' or its '_mask.png'); rename or remove it"
            )
            yield unread(storage.join(root, relative), relative, reason)


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
        image=image,
        mask=mask,
        label=label,
        source="busi",
        patient_id=f"busi-{storage.basename(path)}",
        laterality="",
        meta={"modality": "US"},
    )
