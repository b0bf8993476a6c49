"""Drawing on images with Pillow, shared by the data's contact sheets, predictions and the web service."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

OUTLINE = (255, 40, 40)
"""Red: the outline of a lesion found (or of a true mask on a contact sheet)."""
BOX = (255, 220, 0)
"""Yellow: a finding's box and caption."""


def overlay(image: np.ndarray, mask: np.ndarray, boxes: list[tuple], captions: list[str]) -> Image.Image:
    """The grey image with the predicted mask outlined in red and each finding boxed and captioned."""
    grey = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    rgb = np.stack([grey] * 3, axis=-1)
    edge = mask & ~ndimage.binary_erosion(mask)
    rgb[edge] = OUTLINE
    picture = Image.fromarray(rgb)
    draw = ImageDraw.Draw(picture)
    for box, caption in zip(boxes, captions):
        draw.rectangle(box, outline=BOX, width=2)
        draw.text((box[0], max(0, box[1] - 12)), caption, fill=BOX)
    return picture


def png(picture: Image.Image) -> bytes:
    """A picture as PNG bytes."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
