"""The standard form: a fixed-size square, aspect ratio kept (resize, then pad), values in [0, 1]."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mammolibs.data.sample import RejectedInput

MAX_PIXELS = 100_000_000
"""Larger inputs are refused as implausible (a decompression bomb, not a mammogram)."""


@dataclass(frozen=True)
class Placement:
    """Where the original image sits inside the square: ``square = original * scale + (top, left)``."""

    scale: float
    top: int
    left: int

    def to_original(self, box: tuple[int, int, int, int]) -> list[int]:
        """Map a box ``(x0, y0, x1, y1)`` in the square back to original pixel coordinates."""
        x0, y0, x1, y1 = box
        return [round((x0 - self.left) / self.scale), round((y0 - self.top) / self.scale),
                round((x1 - self.left) / self.scale), round((y1 - self.top) / self.scale)]


def normalize_intensity(image: np.ndarray, name: str) -> np.ndarray:
    """Min-max scale to [0, 1]; a constant image carries nothing and is refused."""
    low, high = float(image.min()), float(image.max())
    if not np.isfinite(low) or not np.isfinite(high):
        raise RejectedInput(f"{name}: image has non-finite pixel values")
    if high <= low:
        raise RejectedInput(f"{name}: image is constant (every pixel {low:g}); is it empty?")
    return ((image - low) / (high - low)).astype(np.float32)


def fit_to_square(image: np.ndarray, size: int, nearest: bool = False) -> tuple[np.ndarray, Placement]:
    """Resize so the longest side is ``size`` (area averaging, or nearest for masks), pad to square.

    Example: a 4464x2848 mammogram at ``size=512`` becomes 512x327 centred in a 512x512 square.
    """
    height, width = image.shape
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    resized = F.interpolate(tensor, size=(new_h, new_w), mode="nearest-exact" if nearest else "area")[0, 0]
    top, left = (size - new_h) // 2, (size - new_w) // 2
    square = F.pad(resized, (left, size - new_w - left, top, size - new_h - top))
    return square.numpy(), Placement(scale=scale, top=top, left=left)


def to_uint16(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 65535).astype(np.uint16)
