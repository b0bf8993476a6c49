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
    RandCropByPosNegLabeld,
    RandFlip,
    RandGaussianNoise,
    Resized,
)
from monai.utils import convert_to_tensor

from mammolibs.data import AUGMENTATIONS
from mammolibs.data.augment import SegmentationAugment
from mammolibs.data.sample import SNIP_CLASSES, WHOLE_IMAGE_CLASSES
from mammolibs.data.shards import StandardSample
from mammolibs.data.snips import crop_snip, labelled_lesions, normal_boxes


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
    return tuple(
        (t.float() + 32768.0) / 65535.0 if t.dtype == torch.int16 else t.float() if t.dtype == torch.uint8 else t
        for t in batch
    )


def _plain(tensor) -> torch.Tensor:
    """A plain tensor from a MONAI transform's output (its MetaTensor would follow the batch to the device)."""
    return convert_to_tensor(tensor, track_meta=False)


class View:
    """Base of the stage views: every sample usable, no randomness."""

    def keep(self, entry: dict) -> bool:
        return True

    def __call__(self, sample: StandardSample, seed: int) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError


WHOLE_IMAGE_MODALITIES = ("US",)
"""Modalities segmented whole (resized to the patch side) rather than in patches: an ultrasound
frame is about one lesion's field of view."""
NO_CLASS = -100  # cross-entropy's ignore_index: a sample without a class of SNIP_CLASSES
TISSUE = 0.05  # standard-image intensity above which a pixel is breast tissue, not air


def effective_patch(patch_size: int, image_size: int) -> int:
    """The patch side a run uses: 0 (whole images) when ``patch_size`` is 0 or not below the image side."""
    return patch_size if 0 < patch_size < image_size else 0


def in_patches(meta: dict, patch_size: int) -> bool:
    """Whether a sample of this metadata is seen in patches of ``patch_size`` (0: never)."""
    return bool(patch_size) and meta.get("modality", "MG") not in WHOLE_IMAGE_MODALITIES


def centre_crop(array: np.ndarray, centre: tuple[int, int], size: int) -> np.ndarray:
    """The ``size`` x ``size`` window of a (C, H, W) array centred on ``centre`` (row, column), zero-padded."""
    padded = np.pad(array, ((0, 0), (size, size), (size, size)))
    top, left = centre[0] - size // 2 + size, centre[1] - size // 2 + size
    return padded[:, top : top + size, left : left + size]


class Patches:
    """Where a view looks at a standard image, for every stage alike, so that pretraining sees the scale
    the U-Net will: with ``patch_size``, a mammogram gives one patch of that side (training: centred on
    a lesion pixel for half of the lesion images and on breast tissue otherwise, MONAI's positive/
    negative crop sampling; validation: centred on its lesions, or its tissue) and an ultrasound frame
    its whole image resized to that side; without, the whole image. ``keys``: the arrays cut alike."""

    def __init__(self, patch_size: int, keys: tuple[str, ...] = ("image", "mask")):
        self.patch_size, self.keys = patch_size, keys
        side = (patch_size, patch_size)
        self.balanced = RandCropByPosNegLabeld(
            keys, label_key="mask", spatial_size=side, pos=1, neg=1, image_key="image", image_threshold=TISSUE
        )
        self.tissue = RandCropByPosNegLabeld(keys, label_key="tissue", spatial_size=side, pos=1, neg=0)
        self.resize = Resized(keys, spatial_size=side, mode=("area", "nearest")[: len(keys)])

    def __call__(self, item: dict, meta: dict, seed: int | None) -> dict:
        """The patch of ``item`` (C x H x W arrays under :attr:`keys`); ``seed`` None: validation's fixed one."""
        if not in_patches(meta, self.patch_size):
            return self.resize(item) if self.patch_size else item
        lesion = "mask" in item and item["mask"].any()
        if seed is not None:
            crop = self.balanced if lesion else self.tissue
            crop.set_random_state(seed=seed)
            return crop({**item, "tissue": (item["image"] > TISSUE).astype(np.float32)})[0]
        focus = item["mask"][0] if lesion else item["image"][0] > TISSUE
        where = np.argwhere(focus).mean(axis=0) if focus.any() else np.array(focus.shape) / 2
        centre = (int(where[0]), int(where[1]))
        return {k: centre_crop(item[k], centre, self.patch_size) for k in self.keys}

    def image(self, sample: StandardSample, seed: int | None) -> torch.Tensor:
        """The (1, S, S) patch of ``sample``'s image alone."""
        return _plain(self({"image": sample.image[None].astype(np.float32)}, sample.meta, seed)["image"])


class ContrastiveView(View):
    """Two random augmentations of the same image (its :class:`Patches` patch): a positive pair for
    NT-Xent (labels unused)."""

    def __init__(self, patch_size: int = 0):
        self.patches = Patches(patch_size, keys=("image",))
        self.augment = Compose(
            [
                RandFlip(prob=0.5, spatial_axis=1),
                RandAffine(prob=1.0, rotate_range=0.3, scale_range=0.25, translate_range=0.1, padding_mode="zeros"),
                RandAdjustContrast(prob=0.8, gamma=(0.6, 1.6)),
                RandGaussianNoise(prob=0.5, std=0.03),
            ]
        )

    def __call__(self, sample, seed):
        image = self.patches.image(sample, seed)
        self.augment.set_random_state(seed=seed)
        return _plain(self.augment(image)), _plain(self.augment(image))


def class_index(sample: StandardSample) -> torch.Tensor:
    """The sample's class in :data:`SNIP_CLASSES`, localized or not, else :data:`NO_CLASS`."""
    return torch.tensor(SNIP_CLASSES.index(sample.label) if sample.label in SNIP_CLASSES else NO_CLASS)


class DenoisingView(View):
    """(corrupted image, clean image, class index) of its :class:`Patches` patch: random squares blanked
    and noise added; the target is the original; the class as :func:`class_index` says."""

    def __init__(self, image_size: int, patch_size: int = 0):
        self.patches = Patches(patch_size, keys=("image",))
        image_size = patch_size or image_size
        self.corrupt = Compose(
            [
                RandCoarseDropout(
                    holes=8, spatial_size=max(2, image_size // 16), max_holes=16, fill_value=0.0, prob=1.0
                ),
                RandGaussianNoise(prob=1.0, std=0.05),
            ]
        )

    def __call__(self, sample, seed):
        self.corrupt.set_random_state(seed=seed)
        clean = self.patches.image(sample, seed)
        return _plain(self.corrupt(clean.clone())), clean, class_index(sample)


class SegmentationView(View):
    """(image, mask, class index) of segmentable samples, the class of :data:`SNIP_CLASSES`, seen as
    :class:`Patches` says. ``augment`` (:data:`AUGMENTATIONS`) changes image and mask alike, and the
    image's intensity."""

    def __init__(self, patch_size: int = 0, augment: str = "strong"):
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment {augment!r}: one of {', '.join(AUGMENTATIONS)}")
        self.patches, self.augment = Patches(patch_size), augment != "none"
        self.transforms = SegmentationAugment(augment)

    def keep(self, entry):
        return is_segmentable(entry)

    def __call__(self, sample, seed):
        label = class_index(sample)
        if not self.patches.patch_size and not self.augment:  # whole images as stored: the cheap packed form
            return packed_image(sample.pixels), torch.from_numpy(np.ascontiguousarray(sample.lesions))[None], label
        item = {"image": sample.image[None].astype(np.float32), "mask": (sample.lesions[None] > 0).astype(np.float32)}
        item = self.patches(item, sample.meta, seed if self.augment else None)
        image, mask = _plain(item["image"]).float(), _plain(item["mask"]).float()
        if self.augment:
            image, mask = self.transforms(image, mask, seed)
        return image, (mask > 0.5).to(torch.uint8), label


def jittered(
    box: tuple[int, int, int, int], rng: np.random.Generator, scale: float = 0.3, shift: float = 0.15
) -> tuple[int, int, int, int]:
    """``box`` grown or shrunk by up to ``scale`` and moved by up to ``shift`` of its side: how far a
    U-Net's finding may sit from the true lesion's box."""
    x0, y0, x1, y1 = box
    width, height = (x1 - x0) * rng.uniform(1 - scale, 1 + scale), (y1 - y0) * rng.uniform(1 - scale, 1 + scale)
    cx = (x0 + x1) / 2 + rng.uniform(-shift, shift) * (x1 - x0)
    cy = (y0 + y1) / 2 + rng.uniform(-shift, shift) * (y1 - y0)
    return (int(cx - width / 2), int(cy - height / 2), int(np.ceil(cx + width / 2)), int(np.ceil(cy + height / 2)))


class SnipView(View):
    """(snip, class index): each visit of an image cuts one snip, a lesion or normal tissue, at random;
    in training around a :func:`jittered` box, as the U-Net's findings are cut at inference."""

    def __init__(self, size: int, augment: bool = True):
        self.size, self.jitter = size, augment
        self.augment = Compose(
            [
                RandFlip(prob=0.5 if augment else 0.0, spatial_axis=0),
                RandFlip(prob=0.5 if augment else 0.0, spatial_axis=1),
            ]
        )

    def keep(self, entry):
        return is_segmentable(entry)

    def __call__(self, sample, seed):
        rng = np.random.default_rng(seed)
        lesions = labelled_lesions(sample) if sample.label != "normal" else []
        candidates = [(box, SNIP_CLASSES.index(label)) for box, label in lesions]
        candidates += [(box, 0) for box in normal_boxes(sample, 1, rng)]
        if not candidates:  # no tissue clear of lesions and no lesion: the whole image as normal
            candidates = [((0, 0, sample.image.shape[1], sample.image.shape[0]), 0)]
        box, label = candidates[rng.integers(len(candidates))]
        if self.jitter:
            box = jittered(box, rng)
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
