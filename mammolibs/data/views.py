"""What each training stage sees of the shards: torch Datasets over standard-form samples."""
from __future__ import annotations

import numpy as np
import torch
from monai.transforms import (
    Compose,
    RandAdjustContrast,
    RandAffine,
    RandCoarseDropout,
    RandFlip,
    RandFlipd,
    RandGaussianNoise,
)
from torch.utils.data import Dataset
from tqdm import tqdm

from mammolibs.data.manifest import shard_urls
from mammolibs.data.shards import StandardSample, iter_shard


def load_samples(data_url: str, split: str, progress: bool = False) -> list[StandardSample]:
    """All samples of one split of a shard set (held in memory; fine for the sizes used here)."""
    urls = shard_urls(data_url, split)
    return [s for url in tqdm(urls, desc=f"read {split} shards", disable=not progress) for s in iter_shard(url)]


def _channel_first(array: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(array, dtype=torch.float32)[None]


class ContrastiveView(Dataset):
    """Two random augmentations of the same image: a positive pair for NT-Xent."""

    def __init__(self, samples: list[StandardSample]):
        self.samples = samples
        self.augment = Compose([
            RandFlip(prob=0.5, spatial_axis=1),
            RandAffine(prob=1.0, rotate_range=0.3, scale_range=0.25, translate_range=0.1, padding_mode="zeros"),
            RandAdjustContrast(prob=0.8, gamma=(0.6, 1.6)),
            RandGaussianNoise(prob=0.5, std=0.03),
        ])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = _channel_first(self.samples[index].image)
        return torch.as_tensor(self.augment(image)), torch.as_tensor(self.augment(image))


class DenoisingView(Dataset):
    """(corrupted image, clean image): random patches blanked and noise added; the target is the original."""

    def __init__(self, samples: list[StandardSample]):
        self.samples = samples
        size = samples[0].image.shape[0] if samples else 64
        self.corrupt = Compose([
            RandCoarseDropout(holes=8, spatial_size=max(2, size // 16), max_holes=16, fill_value=0.0, prob=1.0),
            RandGaussianNoise(prob=1.0, std=0.05),
        ])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        clean = _channel_first(self.samples[index].image)
        return torch.as_tensor(self.corrupt(clean.clone())), clean


def segmentable(samples: list[StandardSample]) -> list[StandardSample]:
    """Samples whose mask is the truth: localized lesions, and normal images (empty mask)."""
    return [s for s in samples if s.label in ("normal", "benign", "malignant") and s.meta.get("localized")]


class SegmentationView(Dataset):
    """(image, mask) with the same random flip applied to both."""

    def __init__(self, samples: list[StandardSample], augment: bool = True):
        self.samples = segmentable(samples)
        self.augment = RandFlipd(keys=("image", "mask"), prob=0.5 if augment else 0.0, spatial_axis=1)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.samples[index]
        pair = self.augment({"image": _channel_first(sample.image), "mask": _channel_first(sample.mask)})
        return torch.as_tensor(pair["image"]), torch.as_tensor(pair["mask"])


class SnipView(Dataset):
    """(snip, class index) pairs, with flips as augmentation."""

    def __init__(self, snips: list[tuple[np.ndarray, int]], augment: bool = True):
        self.snips = snips
        self.augment = Compose([RandFlip(prob=0.5 if augment else 0.0, spatial_axis=0),
                                RandFlip(prob=0.5 if augment else 0.0, spatial_axis=1)])

    def __len__(self) -> int:
        return len(self.snips)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        snip, label = self.snips[index]
        return torch.as_tensor(self.augment(_channel_first(snip))), torch.tensor(label)
