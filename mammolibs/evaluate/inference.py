"""The two inference stages, shared by ``mammo evaluate`` and ``mammo predict``: the U-Net finds
lesions (connected regions above a probability threshold), the ResNet scores a snip of each.

A model may instead score whole images (the ``whole_image`` baseline stage); then each image gets
one malignancy score and its findings keep the U-Net's boxes without a class.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from mammolibs.data.snips import Box, crop_snip
from mammolibs.models import SNIP_CLASSES, WHOLE_IMAGE_CLASSES

MIN_AREA = 9
"""Smallest finding, in standard-image pixels: fewer pixels above the threshold are noise."""


@torch.no_grad()
def segment(unet: nn.Module, images: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Lesion probability maps, shape (N, H, W), for standard-form images of shape (N, H, W)."""
    maps = []
    for start in range(0, len(images), batch_size):
        batch = torch.as_tensor(images[start:start + batch_size], dtype=torch.float32)[:, None]
        maps.append(torch.sigmoid(unet(batch))[:, 0].numpy())
    return np.concatenate(maps) if maps else np.zeros((0,) + images.shape[1:], dtype=np.float32)


@torch.no_grad()
def class_probabilities(classifier: nn.Module, crops: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Softmax over the classifier's classes for grey crops of shape (N, S, S)."""
    rows = [torch.softmax(classifier(torch.as_tensor(np.asarray(crops[i:i + batch_size]), dtype=torch.float32)[:, None]), 1)
            for i in range(0, len(crops), batch_size)]
    return torch.cat(rows).numpy() if rows else np.zeros((0, len(SNIP_CLASSES)), dtype=np.float32)


@dataclass
class Finding:
    """One lesion found by the U-Net (box in standard-image pixels), scored by the ResNet."""

    box: Box
    area: int
    score: float  # the U-Net's highest probability inside it
    probabilities: dict[str, float] = field(default_factory=dict)

    @property
    def malignancy(self) -> float:
        return self.probabilities.get("malignant", 0.0)


def regions(probability: np.ndarray, threshold: float, min_area: int = MIN_AREA) -> tuple[np.ndarray, list[Finding]]:
    """Connected regions above ``threshold`` of at least ``min_area`` pixels: (label map, 0 outside and
    ``i + 1`` inside finding ``i``; the findings, largest first, not yet classified)."""
    labelled, count = ndimage.label(probability > threshold)
    found = []
    for index, where in enumerate(ndimage.find_objects(labelled), start=1):
        inside = labelled[where] == index
        if inside.sum() >= min_area:
            found.append((int(inside.sum()), index, (where[1].start, where[0].start, where[1].stop, where[0].stop),
                          float(probability[where][inside].max())))
    found.sort(key=lambda f: -f[0])
    renumber = np.zeros(count + 1, dtype=np.int32)
    renumber[[index for _, index, _, _ in found]] = np.arange(1, len(found) + 1)
    return renumber[labelled], [Finding(box=box, area=area, score=score) for area, _, box, score in found]


@dataclass
class Detector:
    """The deployed chain: a U-Net, a lesion classifier on snips (or a whole-image one), and thresholds."""

    unet: nn.Module
    classifier: nn.Module
    snip_size: int | None  # None: the classifier scores whole images (benign, malignant)
    unet_threshold: float = 0.5
    min_area: int = MIN_AREA

    def malignancy_of_images(self, images: np.ndarray) -> np.ndarray:
        """Whole-image classifiers only: P(malignant) of each image."""
        return class_probabilities(self.classifier, images)[:, WHOLE_IMAGE_CLASSES.index("malignant")]

    def find(self, images: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, list[Finding], float]]:
        """For each image: (probability map, finding label map, findings, image malignancy); finding
        ``i`` is ``i + 1`` in the label map.

        An image's malignancy is the highest over its findings (0 without any), or the whole-image
        classifier's score, as ``mammo predict`` reports it.
        """
        maps = segment(self.unet, images)
        found = [regions(p, self.unet_threshold, self.min_area) for p in maps]
        if self.snip_size is None:
            scores = self.malignancy_of_images(images)
            return [(p, labels, findings, float(s)) for p, (labels, findings), s in zip(maps, found, scores)]
        snips = [crop_snip(image, f.box, self.snip_size) for image, (_, findings) in zip(images, found) for f in findings]
        rows = iter(class_probabilities(self.classifier, np.stack(snips)) if snips else [])
        results = []
        for probability, (labels, findings) in zip(maps, found):
            for finding in findings:
                finding.probabilities = {name: float(p) for name, p in zip(SNIP_CLASSES, next(rows))}
            results.append((probability, labels, findings, max((f.malignancy for f in findings), default=0.0)))
        return results
