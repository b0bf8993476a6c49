"""The two inference stages, shared by ``mammo evaluate`` and ``mammo predict``."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mammolibs.data.snips import Box, crop_snip, lesion_boxes
from mammolibs.models import SNIP_CLASSES


@torch.no_grad()
def segment(unet: nn.Module, images: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Lesion probability maps, shape (N, H, W), for standard-form images of shape (N, H, W)."""
    maps = []
    for start in range(0, len(images), batch_size):
        batch = torch.as_tensor(images[start:start + batch_size], dtype=torch.float32)[:, None]
        maps.append(torch.sigmoid(unet(batch))[:, 0].numpy())
    return np.concatenate(maps) if maps else np.zeros((0,) + images.shape[1:], dtype=np.float32)


@torch.no_grad()
def classify_snips(classifier: nn.Module, snips: np.ndarray) -> np.ndarray:
    """Class probabilities (N, 3) over :data:`SNIP_CLASSES` for snips of shape (N, S, S)."""
    if len(snips) == 0:
        return np.zeros((0, len(SNIP_CLASSES)), dtype=np.float32)
    logits = classifier(torch.as_tensor(np.asarray(snips), dtype=torch.float32)[:, None])
    return torch.softmax(logits, dim=1).numpy()


@dataclass
class Finding:
    """One lesion found by the U-Net and scored by the ResNet (box in standard-image pixels)."""

    box: Box
    area: int
    probabilities: dict[str, float]

    @property
    def malignancy(self) -> float:
        return self.probabilities["malignant"]


def find_lesions(image: np.ndarray, unet: nn.Module, classifier: nn.Module, snip_size: int,
                 threshold: float = 0.5, min_area: int = 9) -> tuple[np.ndarray, list[Finding]]:
    """Run both stages on one standard-form image: (probability map, findings by malignancy)."""
    probability = segment(unet, image[None])[0]
    mask = probability > threshold
    boxes = lesion_boxes(mask, min_area=min_area)
    snips = np.stack([crop_snip(image, box, snip_size) for box in boxes]) if boxes else np.zeros((0, snip_size, snip_size))
    scores = classify_snips(classifier, snips)
    findings = [
        Finding(box=box, area=int(mask[box[1]:box[3], box[0]:box[2]].sum()),
                probabilities={name: float(p) for name, p in zip(SNIP_CLASSES, row)})
        for box, row in zip(boxes, scores)
    ]
    return probability, sorted(findings, key=lambda f: f.malignancy, reverse=True)
