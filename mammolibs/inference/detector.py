"""The two inference stages, shared by ``mammo evaluate`` and ``mammo predict``: the U-Net finds
lesions (connected regions above a probability threshold), the classifier scores a snip of each.

A model may instead score whole images (the ``whole_image`` baseline stage); then each image gets
one malignancy score and its findings keep the U-Net's boxes without a class.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, cast

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference
from scipy import ndimage
from torch import nn

from mammolibs.data.snips import Box, crop_snip
from mammolibs.data.views import in_patches
from mammolibs.models import SNIP_CLASSES, WHOLE_IMAGE_CLASSES

Net = Callable[[torch.Tensor], torch.Tensor]
"""A model as inference calls it: a torch module, or an ONNX one called the same way (``export.OnnxNet``)."""
MIN_AREA = 9
"""Smallest finding, in standard-image pixels: fewer pixels above the threshold are noise."""


def model_device(model) -> torch.device:
    """Where a model's weights are (the CPU for a model without torch parameters, as an ONNX one)."""
    weights = next(iter(model.parameters()), None) if isinstance(model, nn.Module) else None
    return weights.device if weights is not None else torch.device("cpu")


def mirrored_probability(unet: Net, batch: torch.Tensor) -> torch.Tensor:
    """Lesion probabilities of an (N, 1, H, W) batch, averaged with those of its left-right mirror
    (test-time augmentation)."""
    return (torch.sigmoid(unet(batch)) + torch.sigmoid(unet(batch.flip(-1))).flip(-1)) / 2


@torch.no_grad()
def segment(
    unet: Net, images: np.ndarray, patch_size: int = 0, modalities: list[str] | None = None, batch_size: int = 8
) -> np.ndarray:
    """Lesion probability maps, shape (N, H, W), for standard-form images of shape (N, H, W), with
    mirror test-time augmentation. A U-Net trained on patches (``patch_size``) sees a mammogram by
    sliding window (MONAI, half-patch Gaussian-weighted overlap) and an ultrasound frame resized whole
    to the patch side, as in training (``modalities``: each image's, mammography when not given)."""
    maps = np.zeros(images.shape, dtype=np.float32)
    modalities = modalities or ["MG"] * len(images)
    device = model_device(unet)
    for start in range(0, len(images), batch_size):
        batch = torch.as_tensor(images[start : start + batch_size], dtype=torch.float32, device=device)[:, None]
        if not patch_size:
            maps[start : start + len(batch)] = mirrored_probability(unet, batch)[:, 0].cpu().numpy()
            continue
        patches = [in_patches({"modality": m}, patch_size) for m in modalities[start : start + len(batch)]]
        for index, (image, patched) in enumerate(zip(batch, patches), start=start):
            if patched:
                found = cast(
                    torch.Tensor,
                    sliding_window_inference(
                        image[None],
                        (patch_size, patch_size),
                        batch_size,
                        partial(mirrored_probability, unet),
                        overlap=0.5,
                        mode="gaussian",
                    ),
                )
            else:
                small = F.interpolate(image[None], size=(patch_size, patch_size), mode="area")
                found = F.interpolate(mirrored_probability(unet, small), size=tuple(image.shape[-2:]), mode="bilinear")
            maps[index] = found[0, 0].cpu().numpy()
    return maps


@torch.no_grad()
def class_probabilities(classifier: Net, crops: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Softmax over the classifier's classes for grey crops of shape (N, S, S)."""
    device = model_device(classifier)
    rows = [
        torch.softmax(
            classifier(
                torch.as_tensor(np.asarray(crops[i : i + batch_size]), dtype=torch.float32, device=device)[:, None]
            ),
            1,
        ).cpu()
        for i in range(0, len(crops), batch_size)
    ]
    return torch.cat(rows).numpy() if rows else np.zeros((0, len(SNIP_CLASSES)), dtype=np.float32)


@dataclass
class Finding:
    """One lesion found by the U-Net (box in standard-image pixels), scored by the snip classifier."""

    box: Box
    area: int
    score: float  # the U-Net's highest probability inside it
    presence: float = 1.0  # the U-Net's mean probability inside it: how sure it is of the region as a whole
    probabilities: dict[str, float] = field(default_factory=dict)

    @property
    def malignancy(self) -> float:
        """P(malignant | a lesion): the classifier's odds of malignant against benign, apart from how
        lesion-like the snip is (:attr:`lesion_probability` says that)."""
        malignant, benign = self.probabilities.get("malignant", 0.0), self.probabilities.get("benign", 0.0)
        return malignant / (malignant + benign) if malignant + benign > 0 else 0.0

    @property
    def lesion_probability(self) -> float:
        """1 - P(normal tissue): how likely the snip classifier finds it a lesion at all."""
        return 1.0 - self.probabilities.get("normal", 0.0)

    @property
    def confidence(self) -> float:
        """How likely the finding is a lesion at all: :attr:`presence` times :attr:`lesion_probability`
        (the U-Net's alone without a snip classifier). On held-out BUSI images the U-Net's mean
        probability told true lesions from findings on normal images far better (AUROC about 0.8)
        than its peak or the snip classifier's lesion probability (0.45 to 0.6)."""
        return self.presence * self.lesion_probability


def image_malignancy(findings: list[Finding]) -> float:
    """An image's malignancy: that of its most confident finding (:attr:`Finding.confidence`; 0 without
    any). Taking the most lesion-like finding rather than the highest malignancy keeps a benign image's
    false findings from deciding its score, and the U-Net's presence tells the true lesion among an
    image's findings better than the snip classifier's lesion probability does."""
    return max(findings, key=lambda f: f.confidence).malignancy if findings else 0.0


def strongest_spot(probability: np.ndarray, min_area: int = MIN_AREA) -> Finding:
    """The most lesion-like spot of an image where the U-Net found no region: the region around its
    highest probability, above half of it (the whole image where the map is flat)."""
    peak = float(probability.max())
    found = regions(probability, peak / 2, 1)[1] if peak > 0 else []
    if not found:
        height, width = probability.shape
        return Finding(box=(0, 0, width, height), area=height * width, score=peak, presence=peak)
    return max(found, key=lambda f: f.score)


def regions(probability: np.ndarray, threshold: float, min_area: int = MIN_AREA) -> tuple[np.ndarray, list[Finding]]:
    """Connected regions above ``threshold`` of at least ``min_area`` pixels: (label map, 0 outside and
    ``i + 1`` inside finding ``i``; the findings, largest first, not yet classified)."""
    labelled, count = ndimage.label(probability > threshold)
    found = []
    for index, where in enumerate(ndimage.find_objects(labelled), start=1):
        inside = labelled[where] == index
        if inside.sum() >= min_area:
            found.append(
                (
                    int(inside.sum()),
                    index,
                    (where[1].start, where[0].start, where[1].stop, where[0].stop),
                    float(probability[where][inside].max()),
                    float(probability[where][inside].mean()),
                )
            )
    found.sort(key=lambda f: -f[0])
    renumber = np.zeros(count + 1, dtype=np.int32)
    renumber[[f[1] for f in found]] = np.arange(1, len(found) + 1)
    return renumber[labelled], [
        Finding(box=box, area=area, score=score, presence=presence) for area, _, box, score, presence in found
    ]


@dataclass
class Detector:
    """The deployed chain: a U-Net, a lesion classifier on snips (or a whole-image one), and thresholds."""

    unet: Net
    classifier: Net
    snip_size: int | None  # None: the classifier scores whole images (benign, malignant)
    unet_threshold: float = 0.5
    min_area: int = MIN_AREA
    patch_size: int = 0  # the U-Net's training patches (0: whole images)
    lesion_threshold: float = 0.0  # findings of lower :attr:`Finding.confidence` are dropped

    def segment(self, images: np.ndarray, modalities: list[str] | None = None) -> np.ndarray:
        return segment(self.unet, images, self.patch_size, modalities)

    def malignancy_of_images(self, images: np.ndarray) -> np.ndarray:
        """Whole-image classifiers only: P(malignant) of each image."""
        return class_probabilities(self.classifier, images)[:, WHOLE_IMAGE_CLASSES.index("malignant")]

    def find(
        self, images: np.ndarray, modalities: list[str] | None = None, maps: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, np.ndarray, list[Finding], float]]:
        """For each image (of ``modalities``, mammography when not given): (probability map, finding
        label map, findings, image malignancy); finding ``i`` is ``i + 1`` in the label map. ``maps``:
        the U-Net's probability maps of ``images`` when already made (:meth:`segment`).

        Findings less confident (:attr:`Finding.confidence`: the U-Net's mean probability inside, times
        the snip classifier's lesion probability where there is one) than :attr:`lesion_threshold` are
        dropped: an image left without findings holds no lesion (false-positive reduction). An image's
        malignancy is :func:`image_malignancy` of every region the U-Net found, before that gate (a
        malignant lesion the gate drops still ranks its image), or, where it found none, the snip
        classifier's malignancy of the image's :func:`strongest_spot` (a lesion the U-Net under-segments
        still ranks its image, rather than scoring as low as a normal image); or the whole-image
        classifier's score, as ``mammo predict`` reports it.
        """
        maps = self.segment(images, modalities) if maps is None else maps
        found = [regions(p, self.unet_threshold, self.min_area) for p in maps]
        whole_image = self.malignancy_of_images(images) if self.snip_size is None else None
        spots: list[Finding | None] = [None] * len(maps)
        if self.snip_size is not None:
            spots = [None if fs else strongest_spot(p, self.min_area) for p, (_, fs) in zip(maps, found)]
            scored = [
                (image, f) for image, (_, fs), spot in zip(images, found, spots) for f in fs or [cast(Finding, spot)]
            ]
            snips = [crop_snip(image, f.box, self.snip_size) for image, f in scored]
            rows: Iterable = class_probabilities(self.classifier, np.stack(snips)) if snips else []
            for (_, finding), row in zip(scored, rows):
                finding.probabilities = {name: float(p) for name, p in zip(SNIP_CLASSES, row)}
        results = []
        for index, (probability, (labels, findings)) in enumerate(zip(maps, found)):
            spot = spots[index]
            if whole_image is not None:
                malignancy = float(whole_image[index])
            else:
                malignancy = image_malignancy(findings) if spot is None else spot.malignancy
            kept = [i for i, f in enumerate(findings) if f.confidence >= self.lesion_threshold]
            renumber = np.zeros(len(findings) + 1, dtype=labels.dtype)
            renumber[[i + 1 for i in kept]] = np.arange(1, len(kept) + 1)
            results.append((probability, renumber[labels], [findings[i] for i in kept], malignancy))
        return results
