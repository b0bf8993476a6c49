"""What each training stage sees of a standard-form sample: one view per stage.

A view decides from a sample's index entry alone whether the sample is usable (``keep``), so the
loader can plan batches without decoding anything, and turns a decoded sample into the stage's
tensors (``__call__``). Its randomness comes only from the seed it is given, so a batch is the
same whichever worker process builds it, and a resumed run sees exactly the batches it would have.
"""
from __future__ import annotations

import numpy as np
import torch
from monai.transforms import (
    Compose,
    RandAdjustContrast,
    RandAffine,
    RandCoarseDropout,
    RandFlip,
    RandGaussianNoise,
)
from monai.utils import convert_to_tensor
from tqdm import tqdm

from mammolibs.data.manifest import shard_urls
from mammolibs.data.shards import StandardSample, iter_shard
from mammolibs.data.snips import crop_snip, lesion_boxes, normal_boxes
from mammolibs.models import SNIP_CLASSES, WHOLE_IMAGE_CLASSES


def load_samples(data_url: str, split: str, progress: bool = False) -> list[StandardSample]:
    """All samples of one split, decoded into memory (for evaluation; training streams instead)."""
    urls = shard_urls(data_url, split)
    return [s for url in tqdm(urls, desc=f"read {split} shards", disable=not progress) for s in iter_shard(url)]


def is_segmentable(entry: dict) -> bool:
    """Samples whose mask is the truth: localized lesions, and normal images (empty mask)."""
    return entry["label"] in SNIP_CLASSES and bool(entry.get("localized"))


def segmentable(samples: list[StandardSample]) -> list[StandardSample]:
    return [s for s in samples if is_segmentable(s.meta)]


def _channel_first(array: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(array, dtype=torch.float32)[None]


def packed_image(pixels: np.ndarray) -> torch.Tensor:
    """(1, H, W) int16: the 16-bit pixels shifted by -32768, half the bytes of float32 between processes
    and to the device; :func:`unpack_batch` makes [0, 1] floats of them there."""
    return torch.from_numpy(np.bitwise_xor(pixels, np.uint16(0x8000)).view(np.int16))[None]


def unpack_batch(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Floats from a batch as views make it: int16 images -> [0, 1], uint8 masks -> {0, 1}, others unchanged."""
    return tuple((t.float() + 32768.0) / 65535.0 if t.dtype == torch.int16 else t.float() if t.dtype == torch.uint8
                 else t for t in batch)


def _plain(tensor) -> torch.Tensor:
    """A plain tensor from a MONAI transform's output (its MetaTensor would follow the batch to the device)."""
    return convert_to_tensor(tensor, track_meta=False)


class View:
    """Base of the stage views: every sample usable, no randomness."""

    def keep(self, entry: dict) -> bool:
        return True

    def __call__(self, sample: StandardSample, seed: int) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError


class ContrastiveView(View):
    """Two random augmentations of the same image: a positive pair for NT-Xent (labels unused)."""

    def __init__(self):
        self.augment = Compose([
            RandFlip(prob=0.5, spatial_axis=1),
            RandAffine(prob=1.0, rotate_range=0.3, scale_range=0.25, translate_range=0.1, padding_mode="zeros"),
            RandAdjustContrast(prob=0.8, gamma=(0.6, 1.6)),
            RandGaussianNoise(prob=0.5, std=0.03),
        ])

    def __call__(self, sample, seed):
        self.augment.set_random_state(seed=seed)
        image = _channel_first(sample.image)
        return _plain(self.augment(image)), _plain(self.augment(image))


class DenoisingView(View):
    """(corrupted image, clean image): random patches blanked and noise added; the target is the original."""

    def __init__(self, image_size: int):
        self.corrupt = Compose([
            RandCoarseDropout(holes=8, spatial_size=max(2, image_size // 16), max_holes=16, fill_value=0.0, prob=1.0),
            RandGaussianNoise(prob=1.0, std=0.05),
        ])

    def __call__(self, sample, seed):
        self.corrupt.set_random_state(seed=seed)
        clean = _channel_first(sample.image)
        return _plain(self.corrupt(clean.clone())), clean


class SegmentationView(View):
    """(image, mask) of segmentable samples, packed (:func:`packed_image`, uint8 mask), the same random
    flip applied to both."""

    def __init__(self, augment: bool = True):
        self.augment = augment

    def keep(self, entry):
        return is_segmentable(entry)

    def __call__(self, sample, seed):
        pixels, lesions = sample.pixels, sample.lesions
        if self.augment and np.random.default_rng(seed).random() < 0.5:  # mirror left-right
            pixels, lesions = pixels[:, ::-1], lesions[:, ::-1]
        return packed_image(pixels), torch.from_numpy(np.ascontiguousarray(lesions))[None]


class SnipView(View):
    """(snip, class index): each visit of an image cuts one snip, a lesion or normal tissue, at random."""

    def __init__(self, size: int, augment: bool = True):
        self.size = size
        self.augment = Compose([RandFlip(prob=0.5 if augment else 0.0, spatial_axis=0),
                                RandFlip(prob=0.5 if augment else 0.0, spatial_axis=1)])

    def keep(self, entry):
        return is_segmentable(entry)

    def __call__(self, sample, seed):
        rng = np.random.default_rng(seed)
        lesions = lesion_boxes(sample.mask) if sample.label != "normal" else []
        candidates = [(box, SNIP_CLASSES.index(sample.label)) for box in lesions]
        candidates += [(box, 0) for box in normal_boxes(sample, 1, rng)]
        if not candidates:  # no tissue clear of lesions and no lesion: the whole image as normal
            candidates = [((0, 0, sample.image.shape[1], sample.image.shape[0]), 0)]
        box, label = candidates[rng.integers(len(candidates))]
        self.augment.set_random_state(seed=seed)
        return _plain(self.augment(_channel_first(crop_snip(sample.image, box, self.size)))), torch.tensor(label)


class WholeImageView(View):
    """(image, class index) of images labelled benign or malignant, localized or not; random flips."""

    def __init__(self, augment: bool = True):
        self.augment = augment

    def keep(self, entry):
        return entry["label"] in WHOLE_IMAGE_CLASSES

    def __call__(self, sample, seed):
        pixels = sample.pixels
        if self.augment and np.random.default_rng(seed).random() < 0.5:
            pixels = pixels[::-1] if np.random.default_rng(seed + 1).random() < 0.5 else pixels[:, ::-1]
        return packed_image(np.ascontiguousarray(pixels)), torch.tensor(WHOLE_IMAGE_CLASSES.index(sample.label))
