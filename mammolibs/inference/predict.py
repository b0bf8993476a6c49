"""Predictions a person can check: the two stages on one image at a time, for ``mammo predict``, the
batch step and ``mammo serve``.

The models are loaded once (:func:`mammolibs.inference.chain.load_models`);
:func:`predict_pixels` puts an image in standard form, finds and scores its lesions, calls it at the
operating point, and maps everything back to the original pixels; :func:`overlay_png` draws the
findings on the original image at full resolution.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from mammolibs import storage
from mammolibs.data.images import decode_upload, read_file_bytes
from mammolibs.data.standard_form import normalize_intensity, to_standard
from mammolibs.inference import MODALITIES, NOTE
from mammolibs.inference.chain import Models
from mammolibs.pictures import BOX, OUTLINE, png

BOX_FORMAT = (
    "[x_min, y_min, x_max, y_max] in pixels of the original image: origin at its top-left corner, "
    "x to the right, y downwards, max exclusive. (mini-MIAS's Info.txt counts y from the bottom: "
    "y_mias = image height - y.)"
)
ULTRASOUND_MAX_SIDE = 900
"""Plain images smaller than this on their longest side, or wider than tall, are taken for ultrasound
frames: public mammograms are portrait or square and at least 1,024 pixels high."""


def readable(probability: float) -> str:
    """A probability as people read it: ``12.3%``, ``0.01%``, ``<0.01%``, ``>99.99%``."""
    if probability < 1e-4:
        return "<0.01%"
    if probability > 1 - 1e-4:
        return ">99.99%"
    return f"{100 * probability:.3g}%"


def choose_modality(pixels: np.ndarray, asked: str, declared: str | None) -> tuple[str, str | None]:
    """(MG or US, a warning or None): ``asked`` wins, then a DICOM's declared modality, then the
    image's shape (:data:`ULTRASOUND_MAX_SIDE`), with a warning saying how to override it."""
    if asked not in MODALITIES:
        raise ValueError(f"modality {asked!r}: choose one of {', '.join(MODALITIES)}")
    if asked != "auto":
        return asked, None
    if declared:
        return declared, None
    height, width = pixels.shape
    why = (
        "wider than tall"
        if width > 1.05 * height
        else "smaller than any mammogram"
        if max(height, width) < ULTRASOUND_MAX_SIDE
        else None
    )
    if why:
        return "US", (
            f"read as an ultrasound frame ({width}x{height} pixels: {why}) and predicted on the whole frame; "
            "give modality MG if it is a mammogram"
        )
    return "MG", None


@dataclass
class Prediction:
    """One image's findings (``report``: what the JSON holds) with the original pixels (display
    window, in [0, 1]) and where the findings lie over them, for :func:`overlay_png`."""

    report: dict
    pixels: np.ndarray
    inside: np.ndarray  # bool, the original's shape

    def pictures(self, max_side: int | None = None) -> tuple[Image.Image, np.ndarray]:
        """(the grey image, the findings' outlines over it), shrunk to ``max_side`` if larger."""
        picture, inside = Image.fromarray((self.pixels * 255).astype(np.uint8)), self.inside
        if max_side and max(picture.size) > max_side:
            picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            inside = np.asarray(Image.fromarray(inside).resize(picture.size, Image.Resampling.NEAREST))
        thickness = max(1, max(picture.size) // 600)
        return picture, inside & ~ndimage.binary_erosion(inside, iterations=thickness)


def predict_pixels(
    models: Models,
    pixels: np.ndarray,
    name: str,
    modality: str = "auto",
    declared: str | None = None,
    threshold: float | None = None,
) -> Prediction:
    """Find and score the lesions of one decoded image (``declared``: the modality its DICOM names).

    ``threshold`` overrides the operating point's U-Net threshold for this image only.
    """
    modality, warning = choose_modality(pixels, modality, declared)
    point = models.operating_point
    detector = dataclasses.replace(
        models.detector,
        lesion_threshold=point.get("lesion_threshold") or 0.0,
        unet_threshold=point["unet_threshold"] if threshold is None else threshold,
    )
    image, _, placement = to_standard(pixels, None, models.image_size, name, crop=modality == "MG")
    [(probability, labels, findings, malignancy)] = detector.find(image[None], [modality])
    order = sorted(range(len(findings)), key=lambda i: -findings[i].malignancy)
    boxes = [placement.to_original(findings[i].box) for i in order]
    report = {
        "image": name,
        "modality": modality,
        "width": int(pixels.shape[1]),
        "height": int(pixels.shape[0]),
        "box_format": BOX_FORMAT,
        "operating_point": {
            "unet_threshold": detector.unet_threshold,
            "lesion_threshold": detector.lesion_threshold,
            "malignancy_threshold": point["malignancy_threshold"],
            "chosen_on": point.get("chosen_on"),
        },
        "malignancy": malignancy,
        "malignancy_text": readable(malignancy),
        "called_malignant": malignancy >= point["malignancy_threshold"],
        "lesions": [
            {
                "box": box,
                "width": box[2] - box[0],
                "height": box[3] - box[1],
                "box_standard": list(findings[i].box),
                "area_standard": findings[i].area,
                "unet_score": findings[i].score,
                "malignancy": findings[i].malignancy,
                "malignancy_text": readable(findings[i].malignancy),
                "lesion_probability": findings[i].lesion_probability,
                "probabilities": findings[i].probabilities,
            }
            for box, i in zip(boxes, order)
        ],
        "models": models.cards,
        "warnings": [warning] if warning else [],
        "note": NOTE,
    }
    shape = pixels.shape
    found = ndimage.grey_dilation(labels, size=3) > 0  # a pixel of margin: the smooth map decides the edge
    inside = (placement.to_original_map(probability, shape) > detector.unet_threshold) & (
        placement.to_original_map(found.astype(np.float32), shape, nearest=True) > 0
    )
    return Prediction(report, normalize_intensity(pixels), inside)


def overlay_png(prediction: Prediction, max_side: int | None = None) -> bytes:
    """The original image as a PNG, at full resolution unless ``max_side``, each lesion outlined,
    boxed, numbered and captioned with its malignancy in readable form."""
    picture, outline = prediction.pictures(max_side)
    picture = picture.convert("RGB")
    side, scale = max(picture.size), picture.size[0] / prediction.report["width"]
    draw, width = ImageDraw.Draw(picture), max(2, side // 400)
    size = max(12, side // 45)
    font = ImageFont.load_default(size=size)
    for number, lesion in enumerate(prediction.report["lesions"], start=1):
        x0, y0, x1, y1 = (round(v * scale) for v in lesion["box"])
        draw.rectangle((x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)), outline=BOX, width=width)
        draw.text((x0, max(0, y0 - size - width)), f"{number}: {lesion['malignancy_text']}", fill=BOX, font=font)
    rgb = np.asarray(picture).copy()
    rgb[outline] = OUTLINE  # the shapes over their boxes
    return png(Image.fromarray(rgb))


def mask_png(prediction: Prediction) -> bytes:
    """The findings as a binary mask at the original image's resolution: an 8-bit PNG, 255 inside a
    finding and 0 elsewhere, for software that takes masks (MMSegmentation, ITK-SNAP, 3D Slicer)."""
    return png(Image.fromarray(prediction.inside.astype(np.uint8) * 255))


def outline_png(outline: np.ndarray) -> bytes:
    """Outlines (from :meth:`Prediction.pictures`) alone, on a transparent layer of their size."""
    layer = np.zeros((*outline.shape, 4), dtype=np.uint8)
    layer[outline] = (*OUTLINE, 255)
    return png(Image.fromarray(layer))


def predict_bytes(
    models: Models, data: bytes, name: str, modality: str = "auto", threshold: float | None = None
) -> Prediction:
    """:func:`predict_pixels` of an image file's bytes (DICOM, PGM, PNG, TIFF, JPEG) called ``name``; one
    that cannot be read raises :class:`RejectedInput` naming it."""
    pixels, declared = decode_upload(data, name)
    return predict_pixels(models, pixels, name, modality, declared, threshold)


def output_stem(image_url: str) -> str:
    """The name of an image's outputs: its file name without the suffix (``a/scan.png`` -> ``scan``)."""
    return storage.basename(image_url).rsplit(".", 1)[0]


def check_distinct_outputs(image_urls: list[str]) -> None:
    """Refuse images whose outputs would overwrite each other's (``a/scan.png`` and ``b/scan.dcm``)."""
    seen: dict[str, str] = {}
    for url in image_urls:
        if output_stem(url) in seen:
            raise ValueError(
                f"{seen[output_stem(url)]} and {url} would both write {output_stem(url)}.*; predict them into "
                "separate --out folders, or use --input FOLDER (whose output names are unique)"
            )
        seen[output_stem(url)] = url


def predict(image_url: str, models: Models, out: str, modality: str = "auto", threshold: float | None = None) -> dict:
    """One image file through the chain; writes ``<name>.overlay.png`` and ``<name>.mask.png`` (both at
    full resolution) and ``<name>.lesions.json`` under ``out`` and returns the findings."""
    prediction = predict_bytes(models, read_file_bytes(image_url), image_url, modality, threshold)
    stem = output_stem(image_url)
    prediction.report["mask"] = f"{stem}.mask.png"
    storage.write_bytes_atomic(storage.join(out, f"{stem}.overlay.png"), overlay_png(prediction))
    storage.write_bytes_atomic(storage.join(out, f"{stem}.mask.png"), mask_png(prediction))
    storage.write_text_atomic(storage.join(out, f"{stem}.lesions.json"), json.dumps(prediction.report, indent=2))
    return prediction.report
