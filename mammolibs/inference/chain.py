"""The deployed chain loaded once for predictions: PyTorch checkpoints or the files of ``mammo export``,
with its operating point and its models' cards (:func:`load_models`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from mammolibs import storage
from mammolibs.inference import BACKENDS
from mammolibs.inference.checkpoints import load_detector, model_card
from mammolibs.inference.detector import Detector
from mammolibs.inference.export import FILES, load_onnx_detector
from mammolibs.inference.operating_point import load_operating_point


@dataclass
class Models:
    """The deployed chain, loaded once: the detector, the standard image side, the operating point and
    what a person should know of each model (:func:`model_card`)."""

    detector: Detector
    image_size: int
    operating_point: dict
    backend: str
    cards: list[dict]
    device: str = "cpu"


def resolve_backend(backend: str, unet: str, classifier: str) -> str:
    """``auto``: onnx when both locations are ``mammo export`` files or folders holding them, else torch."""
    if backend != "auto":
        return backend
    exported = [
        url.endswith(".onnx") or storage.exists(storage.join(url, FILES[role]))
        for role, url in (("unet", unet), ("classifier", classifier))
    ]
    return "onnx" if all(exported) else "torch"


def load_models(
    unet: str, classifier: str, backend: str = "auto", operating_point: str | None = None, device: str = "cpu"
) -> Models:
    """The chain from two run folders or checkpoints (torch, on ``device``: cpu, cuda, or auto for cuda when
    there is one) or the files of ``mammo export`` (onnx, on the CPU)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    backend = resolve_backend(backend, unet, classifier)
    if backend == "onnx":
        detector, exported, cards = load_onnx_detector(unet, classifier)
        point = {**exported["operating_point"], "chosen_on": "the evaluation before 'mammo export'"}
        if operating_point:
            point = load_operating_point(operating_point, "")
        return Models(detector, exported["image_size"], point, backend, cards)
    detector, unet_checkpoint, classifier_checkpoint = load_detector(unet, classifier)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda: this machine has no CUDA device that torch can use; give cpu")
    for model in (detector.unet, detector.classifier):
        cast(nn.Module, model).to(device)
    point = load_operating_point(operating_point, classifier_checkpoint["url"])
    cards = [model_card("unet", unet_checkpoint), model_card("classifier", classifier_checkpoint)]
    return Models(detector, unet_checkpoint["image_size"], point, backend, cards, device)
