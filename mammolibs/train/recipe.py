"""The default recipe as one call: encoder -> autoencoder -> finetune (the U-Net), and its own encoder
-> the snip classifier, each step starting from the best checkpoint of the step it names, timed.

Used by ``mammo generalize`` and the quality benchmark; the pipeline runs the same stages as steps.
A schedule maps each stage to its settings (``epochs`` and any :class:`TrainConfig` field).
"""

from __future__ import annotations

import logging
import time

from mammolibs import storage
from mammolibs.train import RECIPE, STAGE_SPECS, check_model, default_epochs
from mammolibs.train.config import TrainConfig

log = logging.getLogger(__name__)


def default_schedule() -> dict[str, dict]:
    return {step: {"epochs": default_epochs(step)} for step in RECIPE}


def check_schedule(schedule: dict) -> dict[str, dict]:
    """``schedule`` (step -> settings) checked: known steps, known settings and models (a mistake is
    named before hours of training)."""
    known = set(TrainConfig.__dataclass_fields__) - {"data", "out", "init", "resume"}
    for step, settings in schedule.items():
        if step not in RECIPE and step not in STAGE_SPECS:
            raise ValueError(
                f"schedule: unknown step {step!r}; steps: {', '.join(dict.fromkeys([*RECIPE, *STAGE_SPECS]))}"
            )
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"schedule of {step}: unknown settings {unknown}; allowed: {sorted(known)}")
        if settings.get("model"):
            check_model(RECIPE[step].stage if step in RECIPE else step, settings["model"])
    return schedule


def step_settings(step: str, settings: dict) -> dict:
    """``settings`` of a recipe step with the step's own model unless they name one."""
    model = RECIPE[step].model
    return {"model": model, **settings} if model and not settings.get("model") else settings


def train_stage(stage: str, data: str, out: str, settings: dict, init: str | None = None) -> float:
    """Train one stage in this process; returns its wall-clock seconds."""
    started = time.perf_counter()
    from mammolibs.train.engine import fit  # torch: only once a stage trains

    fit(stage, TrainConfig(data=data, out=out, init=init, progress=False, **settings))
    return time.perf_counter() - started


def train_recipe(data: str, out: str, schedule: dict[str, dict], steps: tuple[str, ...] = tuple(RECIPE)) -> dict:
    """Train ``steps`` of the recipe on ``data`` under ``out/<step>``, each from the step it names
    (an ablation leaves some out: without the encoder, the autoencoder starts from random weights).
    Returns the U-Net and classifier folders and each step's seconds."""
    check_schedule(schedule)
    seconds = {}
    for step in steps:
        stage, init_step = RECIPE[step].stage, RECIPE[step].init
        init = storage.join(out, init_step) if init_step in steps else None
        log.info("recipe: %s on %s", step, data)
        settings = step_settings(step, schedule.get(step, {}))
        seconds[step] = train_stage(stage, data, storage.join(out, step), settings, init)
    return {"unet": storage.join(out, "finetune"), "classifier": storage.join(out, "classifier"), "seconds": seconds}


def train_within(stage: str, data: str, out: str, settings: dict, seconds: float, init: str | None = None) -> dict:
    """Train ``stage`` for as many epochs as fit in ``seconds`` (a budget matched to another run): one
    epoch is timed first in ``out/probe``, then the run is made with that many epochs. Returns
    ``{"epochs", "seconds"}`` of the real run."""
    probe = train_stage(stage, data, storage.join(out, "probe"), {**settings, "epochs": 1}, init)
    epochs = max(1, int(seconds // probe))
    log.info("budget %.0f s, %.1f s per epoch of %s: %d epochs", seconds, probe, stage, epochs)
    return {"epochs": epochs, "seconds": train_stage(stage, data, out, {**settings, "epochs": epochs}, init)}
