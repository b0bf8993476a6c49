"""Segmentation augmentation: image and mask move together, the intensity changes only the image,
and every draw repeats with its seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mammolibs.data.augment import SegmentationAugment


def _lesion_image(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    mask = torch.zeros(1, size, size)
    mask[:, 18:34, 26:46] = 1  # off-centre, so that a flip moves it
    return 0.2 + 0.6 * mask, mask


@pytest.mark.parametrize("level", ["flip", "strong", "scanner"])
def test_the_mask_follows_the_image_and_stays_binary(level):
    image, mask = _lesion_image()
    moved = 0
    for seed in range(60):
        out_image, out_mask = SegmentationAugment(level)(image, mask, seed)
        assert out_image.shape == out_mask.shape == image.shape and torch.isfinite(out_image).all()
        assert set(out_mask.unique().tolist()) <= {0.0, 1.0}
        inside, outside = out_image[out_mask > 0], out_image[out_mask == 0]
        assert inside.mean() > outside.mean() + 0.2  # the bright lesion is still where the mask says
        assert 0.6 < out_mask.sum() / mask.sum() < 1.5  # scaled by at most 15% a side, never lost
        moved += not torch.equal(out_mask, mask)
        again = SegmentationAugment(level)(image, mask, seed)
        assert torch.equal(again[0], out_image) and torch.equal(again[1], out_mask)
    assert 0.4 < moved / 60 < 1.0  # flips alone move half; affine and elastic most of the rest


def test_strong_changes_the_intensity_and_scanner_more_so():
    image, mask = _lesion_image()
    spread = {}
    for level in ("flip", "strong", "scanner"):
        lesion = [SegmentationAugment(level)(image, mask, seed) for seed in range(80)]
        spread[level] = np.std([float(i[m > 0].mean()) for i, m in lesion])
    assert spread["flip"] == 0.0  # flips leave intensities as they are
    assert 0.0 < spread["strong"] < spread["scanner"]
