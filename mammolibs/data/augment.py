"""Segmentation augmentation in a few tensor operations per sample: one sampling grid for flip, affine
and elastic together (image bilinear, mask nearest), then the image's intensity. The distributions are
those of MONAI's ``RandFlipd``, ``RandAffined``, ``Rand2DElasticd``, ``RandAdjustContrastd``,
``RandScaleIntensityd``, ``RandShiftIntensityd``, ``RandGaussianNoised`` and, for ``scanner``,
``RandHistogramShiftd``, ``RandGaussianSmoothd``, ``RandRicianNoised`` and
``RandSimulateLowResolutiond``, at a tenth of their cost (MONAI's dictionary transforms spend about
9 ms a 64 px sample in Python, longer than the training step itself on 2 cores). Everything random
comes from the seed given, so a sample's augmentation is the same in whichever worker makes it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

AFFINE_PROB, ROTATE, SCALE, SHEAR = 0.7, 0.26, 0.15, 0.05  # radians, fraction, fraction
ELASTIC_PROB, ELASTIC_SPACING, ELASTIC_MAGNITUDE = 0.2, 16, (1.0, 2.0)  # pixels
STRONG_INTENSITY = {"gamma": (0.5, (0.7, 1.5)), "scale": (0.5, 0.1), "shift": (0.5, 0.05), "noise": (0.2, 0.02)}
SCANNER_STEPS = {  # applied after the strong set; "gamma 2": a second, wider gamma
    "gamma 2": (0.3, (0.5, 2.0)),
    "curve": (0.3, (5, 10)),  # histogram shift: control points
    "blur": (0.2, (0.25, 1.0)),  # Gaussian sigma, pixels
    "speckle": (0.2, 0.05),  # Rician noise, relative to the image's sd
    "low_resolution": (0.2, (0.5, 1.0)),  # zoom before zooming back
}


def _gamma(image: torch.Tensor, gamma: float) -> torch.Tensor:
    """MONAI's contrast adjustment: the image's range raised to ``gamma``, range kept."""
    low, high = image.min(), image.max()
    span = high - low + 1e-7
    return ((image - low) / span) ** gamma * span + low


def _curve(image: torch.Tensor, points: int, rng: np.random.Generator) -> torch.Tensor:
    """MONAI's histogram shift: a monotone piecewise-linear intensity curve through ``points`` control
    points, each moved at random between its neighbours."""
    reference = np.linspace(0, 1, points)
    moved = reference.copy()
    for i in range(1, points - 1):
        moved[i] = rng.uniform(moved[i - 1], reference[i + 1])
    low, high = image.min(), image.max()
    span = float(high - low) or 1.0
    unit = ((image - low) / span).numpy()
    return torch.from_numpy(np.interp(unit, reference, moved).astype(np.float32)) * span + low


def _blur(image: torch.Tensor, sigmas: tuple[float, float]) -> torch.Tensor:
    """Separable Gaussian blur of a (1, H, W) image, ``sigmas`` (rows, columns) in pixels."""
    out = image[None]
    for axis, sigma in enumerate(sigmas):
        radius = max(1, math.ceil(3 * sigma))
        x = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-(x**2) / (2 * sigma**2))
        kernel = (kernel / kernel.sum()).view(1, 1, -1, 1) if axis == 0 else (kernel / kernel.sum()).view(1, 1, 1, -1)
        padding = (radius, 0) if axis == 0 else (0, radius)
        out = F.conv2d(F.pad(out, (padding[1], padding[1], padding[0], padding[0]), mode="replicate"), kernel)
    return out[0]


def _low_resolution(image: torch.Tensor, zoom: float) -> torch.Tensor:
    """The image shrunk by ``zoom`` (nearest) and enlarged back (bilinear), as a coarser scanner sees it."""
    size = image.shape[-2:]
    small = F.interpolate(image[None], scale_factor=zoom, mode="nearest-exact")
    return F.interpolate(small, size=size, mode="bilinear", align_corners=False)[0]


class SegmentationAugment:
    """Random flips (``flip``); plus affine, elastic and intensity (``strong``); plus what differs
    between scanners (``scanner``). Call with (1, H, W) float image and mask and a seed."""

    def __init__(self, level: str):
        self.level = level

    def __call__(self, image: torch.Tensor, mask: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng(seed)
        noise = torch.Generator().manual_seed(int(rng.integers(2**62)))
        image, mask = self._spatial(image, mask, rng)
        if self.level in ("strong", "scanner"):
            image = self._intensity(image, rng, noise)
        return image, mask

    def _spatial(self, image, mask, rng):
        flip, affine, elastic = rng.random(3) < (0.5, AFFINE_PROB, ELASTIC_PROB)
        if self.level == "flip" or not (affine or elastic):
            return (image.flip(-1), mask.flip(-1)) if flip else (image, mask)
        height, width = image.shape[-2:]
        angle, scale, shear = rng.uniform(-ROTATE, ROTATE), 1 + rng.uniform(-SCALE, SCALE), rng.uniform(-SHEAR, SHEAR)
        if not affine:
            angle, scale, shear = 0.0, 1.0, 0.0
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        theta = torch.tensor([[cos, -sin + shear, 0.0], [sin, cos, 0.0]], dtype=torch.float32)
        if flip:
            theta[:, 0] *= -1
        grid = F.affine_grid(theta[None], [1, 1, height, width], align_corners=False)
        if elastic:
            knots = (height // ELASTIC_SPACING + 2, width // ELASTIC_SPACING + 2)
            field = torch.from_numpy(rng.uniform(-1, 1, (1, 2, *knots)).astype(np.float32))
            field = F.interpolate(field, size=(height, width), mode="bicubic", align_corners=True)
            pixels = rng.uniform(*ELASTIC_MAGNITUDE)
            scale_xy = torch.tensor([2 * pixels / width, 2 * pixels / height]).view(1, 2, 1, 1)
            grid = grid + (field * scale_xy).permute(0, 2, 3, 1)
        image = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
        mask = F.grid_sample(mask[None], grid, mode="nearest", padding_mode="zeros", align_corners=False)[0]
        return image, mask

    def _intensity(self, image, rng, noise):
        steps = {**STRONG_INTENSITY, **(SCANNER_STEPS if self.level == "scanner" else {})}
        for name, (prob, value) in steps.items():
            if rng.random() < prob:
                image = INTENSITY[name.split(" ")[0]](image, value, rng, noise)
        return image


def _speckle(image: torch.Tensor, std: float, noise: torch.Generator) -> torch.Tensor:
    """MONAI's Rician noise: the magnitude of the image plus complex Gaussian noise of ``std``."""
    real, imaginary = (torch.randn(image.shape, generator=noise) * std for _ in range(2))
    return torch.sqrt((image + real) ** 2 + imaginary**2)


INTENSITY = {  # step -> f(image, its setting, rng, noise generator)
    "gamma": lambda image, value, rng, noise: _gamma(image, rng.uniform(*value)),
    "scale": lambda image, value, rng, noise: image * (1 + rng.uniform(-value, value)),
    "shift": lambda image, value, rng, noise: image + rng.uniform(-value, value),
    "noise": lambda image, value, rng, noise: image + torch.randn(image.shape, generator=noise) * rng.uniform(0, value),
    "curve": lambda image, value, rng, noise: _curve(image, int(rng.integers(value[0], value[1] + 1)), rng),
    "blur": lambda image, value, rng, noise: _blur(image, (rng.uniform(*value), rng.uniform(*value))),
    "speckle": lambda image, value, rng, noise: _speckle(image, rng.uniform(0, value) * float(image.std()), noise),
    "low_resolution": lambda image, value, rng, noise: _low_resolution(image, rng.uniform(*value)),
}
