"""The hand-written mask PNG codec against Pillow, both ways: what mammoflow writes Pillow reads
bit for bit, and what Pillow writes (1-bit, 8-bit, filtered rows) mammoflow reads the same."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mammolibs.data.shards import decode_mask_png, encode_mask_png

SHAPES = [(1, 1), (1, 9), (5, 7), (8, 8), (13, 63), (64, 65), (257, 130)]


def masks(shape: tuple[int, int]) -> list[np.ndarray]:
    rng = np.random.default_rng(sum(shape))
    blob = np.zeros(shape, dtype=bool)
    blob[shape[0] // 4 : shape[0] // 2 + 1, shape[1] // 3 : shape[1] - 1] = True
    return [np.zeros(shape, dtype=bool), np.ones(shape, dtype=bool), rng.random(shape) > 0.5, blob]


@pytest.mark.parametrize("shape", SHAPES)
def test_masks_written_by_mammoflow_read_the_same_in_pillow(shape):
    for mask in masks(shape):
        data = encode_mask_png(mask)
        with Image.open(io.BytesIO(data)) as img:
            assert img.mode == "1" and img.size == (shape[1], shape[0])
            assert np.array_equal(np.asarray(img), mask)
        assert np.array_equal(decode_mask_png(data, shape), mask.astype(np.uint8))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", ["1", "L"])
def test_masks_written_by_pillow_read_the_same_in_mammoflow(shape, mode):
    for mask in masks(shape):
        buffer = io.BytesIO()
        Image.fromarray(mask.astype(np.uint8) * 255).convert(mode).save(buffer, format="PNG", optimize=True)
        assert np.array_equal(decode_mask_png(buffer.getvalue(), shape), mask.astype(np.uint8))
