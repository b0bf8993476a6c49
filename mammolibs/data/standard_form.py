"""The standard form: breast cropped, chest wall on the left, intensities normalized one way for
every source, then a fixed-size square with the aspect ratio kept (resize, then pad).

The same geometry is applied to the mask (nearest neighbour), and :class:`Placement` records it so
that findings in the square map back to original pixels.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from mammolibs.data.sample import RejectedInput

LOW_PERCENTILE, HIGH_PERCENTILE = 0.5, 99.9
"""Intensity window of every standard image, as percentiles of the cropped region."""
SEARCH_SIDE = 256
"""Side of the thumbnail on which the breast region is found."""


@dataclass(frozen=True)
class Placement:
    """How the original maps into the square: crop ``(crop_top, crop_left, crop_height, crop_width)``,
    scale by ``scale``, mirror left-right if ``flipped``, pad by ``(top, left)``."""

    scale: float
    top: int
    left: int
    crop_top: int = 0
    crop_left: int = 0
    crop_height: int = 0
    crop_width: int = 0
    flipped: bool = False

    @property
    def resized(self) -> tuple[int, int]:
        """(height, width) of the image inside the square."""
        return max(1, round(self.crop_height * self.scale)), max(1, round(self.crop_width * self.scale))

    def to_original(self, box: tuple[int, int, int, int]) -> list[int]:
        """Map a box ``(x0, y0, x1, y1)`` in the square back to original pixel coordinates
        (clipped to the cropped region, since padding has no original pixels)."""
        left, top, right, bottom = box[0] - self.left, box[1] - self.top, box[2] - self.left, box[3] - self.top
        if self.flipped:
            left, right = self.resized[1] - right, self.resized[1] - left
        x0, x1 = (min(max(x / self.scale, 0), self.crop_width) + self.crop_left for x in (left, right))
        y0, y1 = (min(max(y / self.scale, 0), self.crop_height) + self.crop_top for y in (top, bottom))
        return [round(x0), round(y0), round(x1), round(y1)]

    def to_original_map(self, square: np.ndarray, shape: tuple[int, int], nearest: bool = False) -> np.ndarray:
        """A map over the square (probabilities, or labels with ``nearest``) back over the original
        image of ``shape``: unflipped, resized to the crop, zero outside the crop."""
        height, width = self.resized
        inner = square[self.top : self.top + height, self.left : self.left + width]
        if self.flipped:
            inner = inner[:, ::-1]
        mode = "nearest-exact" if nearest else "bilinear"
        resized = F.interpolate(
            torch.from_numpy(np.ascontiguousarray(inner, dtype=np.float32))[None, None],
            size=(self.crop_height, self.crop_width),
            mode=mode,
        )[0, 0].numpy()
        full = np.zeros(shape, dtype=np.float32)
        full[self.crop_top : self.crop_top + self.crop_height, self.crop_left : self.crop_left + self.crop_width] = (
            resized
        )
        return full


def check_not_constant(image: np.ndarray, name: str) -> None:
    low, high = float(image.min()), float(image.max())
    if not np.isfinite(low) or not np.isfinite(high):
        raise RejectedInput(f"{name}: image has non-finite pixel values")
    if high <= low:
        raise RejectedInput(f"{name}: image is constant (every pixel {low:g}); is it empty?")


def normalize_intensity(image: np.ndarray) -> np.ndarray:
    """Window to the 0.5th-99.9th percentiles and scale to [0, 1] (min-max if that window is empty)."""
    low, high = np.percentile(image, [LOW_PERCENTILE, HIGH_PERCENTILE])
    if high <= low:
        low, high = float(image.min()), float(image.max())
    if high <= low:
        return np.zeros_like(image, dtype=np.float32)
    return np.clip((image - low) / (high - low), 0.0, 1.0).astype(np.float32)


def breast_region(image: np.ndarray) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of the largest bright connected region: the breast without
    the film background, labels and markers. Found on a thumbnail, so it costs little."""
    step = max(1, max(image.shape) // SEARCH_SIDE)
    thumb = image[::step, ::step]
    if thumb.max() <= thumb.min():
        return 0, image.shape[0], 0, image.shape[1]
    foreground = thumb > _otsu_threshold(thumb)
    foreground = ndimage.binary_opening(foreground, iterations=2)
    labels, count = ndimage.label(foreground)
    if count == 0:
        return 0, image.shape[0], 0, image.shape[1]
    largest = 1 + int(np.argmax(ndimage.sum_labels(foreground, labels, range(1, count + 1))))
    rows, cols = ndimage.find_objects(labels)[largest - 1]
    margin = 2 * step
    return (
        max(0, rows.start * step - margin),
        min(image.shape[0], rows.stop * step + margin),
        max(0, cols.start * step - margin),
        min(image.shape[1], cols.stop * step + margin),
    )


def _otsu_threshold(values: np.ndarray) -> float:
    histogram, edges = np.histogram(values, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(histogram)
    mean = np.cumsum(histogram * centres)
    total_weight, total_mean = weight[-1], mean[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mean * weight - mean * total_weight) ** 2 / (weight * (total_weight - weight))
    return float(centres[np.nanargmax(between[:-1])])


def chest_wall_on_right(image: np.ndarray) -> bool:
    """True when the right half holds more tissue: the chest wall is the dense, wide side."""
    half = image.shape[1] // 2
    return float(image[:, image.shape[1] - half :].sum()) > float(image[:, :half].sum())


_SCRATCH = threading.local()


def _scratch(shape: tuple[int, int]) -> np.ndarray:
    """A float32 work array of ``shape``, reused across calls in this thread: a fresh 50 MB array
    per film costs more in page faults (about 5 ms) than converting the film into it (2 ms)."""
    size = shape[0] * shape[1]
    if getattr(_SCRATCH, "array", None) is None or _SCRATCH.array.size < size:
        _SCRATCH.array = np.empty(size, dtype=np.float32)
    return _SCRATCH.array[:size].reshape(shape)


def fit_to_square(image: np.ndarray, size: int, nearest: bool = False) -> tuple[np.ndarray, Placement]:
    """Resize so the longest side is ``size`` (area averaging, or nearest for masks), pad to square.

    Example: a 4464x2848 mammogram at ``size=512`` becomes 512x327 centred in a 512x512 square.
    """
    height, width = image.shape
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    values = _scratch(image.shape)
    np.copyto(values, image, casting="unsafe")
    mode = "nearest-exact" if nearest else "area"
    resized = F.interpolate(torch.from_numpy(values)[None, None], size=(new_h, new_w), mode=mode)[0, 0]
    top, left = (size - new_h) // 2, (size - new_w) // 2
    square = F.pad(resized, (left, size - new_w - left, top, size - new_h - top))
    return square.numpy(), Placement(scale=scale, top=top, left=left, crop_height=height, crop_width=width)


def to_standard(
    image: np.ndarray, mask: np.ndarray | None, size: int, name: str, crop: bool = True
) -> tuple[np.ndarray, np.ndarray, Placement]:
    """Image in [0, 1] and mask in {0, 1}, both ``size`` x ``size``, and where the original went.

    Args:
        image: 2-D array at native resolution, brighter = denser.
        mask: bool array of the same shape, or ``None`` (an empty mask is returned).
        size: side of the square.
        name: file name for error messages.
        crop: find the breast, crop to it and put the chest wall on the left (mammograms);
            ``False`` keeps the whole frame as it is (ultrasound).

    Note:
        Everything after the crop works on the resized image, so full-resolution films are read
        once, by the area resize.
    """
    top, bottom, left, right = breast_region(image) if crop else (0, image.shape[0], 0, image.shape[1])
    square, placement = fit_to_square(image[top:bottom, left:right], size)
    height, width = placement.resized
    region = (slice(placement.top, placement.top + height), slice(placement.left, placement.left + width))
    check_not_constant(square[region], name)
    flipped = crop and chest_wall_on_right(square[region])
    square[region] = normalize_intensity(square[region][:, ::-1] if flipped else square[region])
    mask_square = np.zeros((size, size), dtype=np.float32)
    if mask is not None:
        mask_square, _ = fit_to_square(mask[top:bottom, left:right], size, nearest=True)
        if flipped:
            mask_square[region] = mask_square[region][:, ::-1]
    placement = Placement(
        placement.scale, placement.top, placement.left, top, left, bottom - top, right - left, flipped
    )
    return square, (mask_square > 0.5).astype(np.float32), placement


def to_uint16(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 65535).astype(np.uint16)
