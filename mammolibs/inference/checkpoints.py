"""The chain from training checkpoints (:func:`load_detector`), and what a reader of a prediction
should know of each model (:func:`model_card`)."""

from __future__ import annotations

from mammolibs import storage
from mammolibs.inference.detector import Detector
from mammolibs.inference.operating_point import run_folder
from mammolibs.train import serving
from mammolibs.train.checkpoints import load_model


def load_detector(unet_url: str, classifier_url: str, image_size: int | None = None) -> tuple[Detector, dict, dict]:
    """The chain from two checkpoints, each checked to be of the right stage and of ``image_size``
    (by default the U-Net's)."""
    unet, unet_checkpoint = load_model(unet_url, serving("unet"), image_size, role="--unet")
    classifier, classifier_checkpoint = load_model(
        classifier_url, serving("classifier"), unet_checkpoint["image_size"], role="--classifier"
    )
    snip_size = classifier_checkpoint["config"]["snip_size"] if classifier_checkpoint["stage"] == "classifier" else None
    detector = Detector(unet, classifier, snip_size, patch_size=unet_checkpoint["config"].get("patch_size", 0))
    return detector, unet_checkpoint, classifier_checkpoint


def model_card(role: str, checkpoint: dict) -> dict:
    """What a reader of a prediction should know of a model: its run, when it was trained, on what,
    and its validation figures (from the checkpoint or the export's metadata)."""
    return {
        "role": role,
        "run": storage.basename(run_folder(checkpoint.get("url", ""))) or None,
        "stage": checkpoint.get("stage"),
        "model_name": checkpoint.get("model_name"),
        "trained_at": checkpoint.get("saved_at"),
        "trained_on": {"sources": (checkpoint.get("trained_on") or {}).get("sources")},  # counts, never a URL
        "epoch": checkpoint.get("epoch"),
        "validation": {k: v for k, v in (checkpoint.get("validation") or {}).items() if isinstance(v, (int, float))},
    }
