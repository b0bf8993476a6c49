"""Snips: square crops around lesions (and of normal tissue) that the classifier scores.

Training and prediction cut snips with the same two functions, so the classifier sees at
inference exactly what it saw in training.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from mammolibs.data.sample import SNIP_CLASSES
from mammolibs.data.shards import StandardSample

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)


def lesion_boxes(mask: np.ndarray, min_area: int = 4) -> list[Box]:
    """Bounding boxes of the connected components of a binary mask, largest first."""
    labelled, count = ndimage.label(mask > 0.5)
    boxes = []
    for index, found in enumerate(ndimage.find_objects(labelled), start=1):
        area = int((labelled[found] == index).sum())
        if area >= min_area:
            boxes.append((area, (found[1].start, found[0].start, found[1].stop, found[0].stop)))
    return [box for _, box in sorted(boxes, reverse=True)]


def labelled_lesions(sample: StandardSample) -> list[tuple[Box, str]]:
    """Each lesion box of a sample with its class: the image's label, or for a film whose lesions differ
    in class (``meta["lesions"]``, kept by standardize) the class of the lesion the box overlaps most."""
    boxes = lesion_boxes(sample.mask)
    own = sample.meta.get("lesions") or []
    if not own:
        return [(box, sample.label) for box in boxes]
    return [(box, max(own, key=lambda lesion: _overlap(box, lesion["box"]))["label"]) for box in boxes]


def _overlap(a: Box, b: Box) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def crop_snip(image: np.ndarray, box: Box, size: int = 64, context: float = 1.5, min_side: int = 32) -> np.ndarray:
    """A ``size`` x ``size`` crop centred on ``box``, ``context`` times its longest side (zero-padded)."""
    x0, y0, x1, y1 = box
    side = max(int(round(max(x1 - x0, y1 - y0) * context)), min_side)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    top, left = cy - side // 2, cx - side // 2
    padded = np.pad(image, side, mode="constant")
    crop = padded[top + side : top + 2 * side, left + side : left + 2 * side]
    tensor = torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=(size, size), mode="area")[0, 0].numpy()


def normal_boxes(sample: StandardSample, count: int, rng: np.random.Generator, side: int = 32) -> list[Box]:
    """Random boxes in breast tissue that do not touch the sample's lesions."""
    tissue = (sample.image > 0.1) & (ndimage.binary_dilation(sample.mask > 0.5, iterations=side) == 0)
    tissue = ndimage.binary_erosion(tissue, iterations=side // 2)
    centres = np.argwhere(tissue)
    if len(centres) == 0:
        return []
    picks = centres[rng.choice(len(centres), size=min(count, len(centres)), replace=False)]
    return [(int(c) - side // 2, int(r) - side // 2, int(c) + side // 2, int(r) + side // 2) for r, c in picks]


def make_snips(
    samples: list[StandardSample], size: int = 64, normals_per_image: int = 1, seed: int = 0
) -> list[tuple[np.ndarray, int]]:
    """(snip, class index into :data:`SNIP_CLASSES`) for every lesion plus normal-tissue crops.

    Lesions come from localized benign/malignant samples; label-only and unlabelled samples are skipped.
    """
    rng = np.random.default_rng(seed)
    snips = []
    for sample in samples:
        if sample.label not in SNIP_CLASSES or not sample.meta.get("localized"):
            continue
        if sample.label != "normal":
            snips += [
                (crop_snip(sample.image, box, size), SNIP_CLASSES.index(label))
                for box, label in labelled_lesions(sample)
            ]
        snips += [(crop_snip(sample.image, box, size), 0) for box in normal_boxes(sample, normals_per_image, rng)]
    return snips
