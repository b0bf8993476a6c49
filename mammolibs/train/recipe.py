"""The default recipe as one call: encoder -> autoencoder -> finetune (the U-Net), and autoencoder ->
the snip classifier, each stage starting from the previous one's best checkpoint, timed.

Used by ``mammo generalize`` and the quality benchmark; the pipeline runs the same stages as steps.
A schedule maps each stage to its settings (``epochs`` and any :class:`TrainConfig` field).
"""

from __future__ import annotations

import logging
import time

from mammolibs import storage
from mammolibs.models.catalog import check_model
from mammolibs.train import RECIPE
from mammolibs.train.config import TrainConfig

log = logging.getLogger(__name__)

INIT_FROM = {"autoencoder": "encoder", "finetune": "autoencoder", "classifier": "autoencoder"}
DEFAULT_EPOCHS = {"encoder": 10, "autoencoder": 10, "finetune": 30, "classifier": 20}
"""Epochs of each stage in the pipeline and ``mammo generalize`` unless told otherwise."""


def default_schedule() -> dict[str, dict]:
    return {stage: {"epochs": epochs} for stage, epochs in DEFAULT_EPOCHS.items()}


def check_schedule(schedule: dict) -> dict[str, dict]:
    """``schedule`` checked: known stages, known settings and models (a mistake is named before hours of training)."""
    known = set(TrainConfig.__dataclass_fields__) - {"data", "out", "init", "resume"}
    for stage, settings in schedule.items():
        if stage not in RECIPE and stage != "whole_image":
            raise ValueError(f"schedule: unknown stage {stage!r}; stages: {', '.join(RECIPE)}, whole_image")
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"schedule of {stage}: unknown settings {unknown}; allowed: {sorted(known)}")
        if settings.get("model"):
            check_model(stage, settings["model"])
    return schedule


def train_stage(stage: str, data: str, out: str, settings: dict, init: str | None = None) -> float:
    """Train one stage in this process; returns its wall-clock seconds."""
    started = time.perf_counter()
    from mammolibs.train.engine import fit  # torch: only once a stage trains

    fit(stage, TrainConfig(data=data, out=out, init=init, progress=False, **settings))
    return time.perf_counter() - started


def train_recipe(data: str, out: str, schedule: dict[str, dict], stages: tuple[str, ...] = RECIPE) -> dict:
    """Train ``stages`` of the recipe on ``data`` under ``out/<stage>``, each from the previous one it
    names (an ablation leaves some out: without the encoder, the autoencoder starts from random weights).
    Returns the U-Net and classifier folders and each stage's seconds."""
    check_schedule(schedule)
    seconds = {}
    for stage in stages:
        init = storage.join(out, INIT_FROM[stage]) if INIT_FROM.get(stage) in stages else None
        log.info("recipe: %s on %s", stage, data)
        seconds[stage] = train_stage(stage, data, storage.join(out, stage), schedule.get(stage, {}), init)
    return {"unet": storage.join(out, "finetune"), "classifier": storage.join(out, "classifier"), "seconds": seconds}


def train_within(stage: str, data: str, out: str, settings: dict, seconds: float, init: str | None = None) -> dict:
    """Train ``stage`` for as many epochs as fit in ``seconds`` (a budget matched to another run): one
    epoch is timed first in ``out/probe``, then the run is made with that many epochs. Returns
    ``{"epochs", "seconds"}`` of the real run."""
    probe = train_stage(stage, data, storage.join(out, "probe"), {**settings, "epochs": 1}, init)
    epochs = max(1, int(seconds // probe))
    log.info("budget %.0f s, %.1f s per epoch of %s: %d epochs", seconds, probe, stage, epochs)
    return {"epochs": epochs, "seconds": train_stage(stage, data, out, {**settings, "epochs": epochs}, init)}
