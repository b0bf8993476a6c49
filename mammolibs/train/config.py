"""A training run's settings and their allowed values, light to import (``--help`` reads them
without loading torch)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PATCH = 256
"""Side of the patches pretraining and finetuning see when neither the flag nor an --init checkpoint says."""
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    """Settings of one training run; every field is a command-line flag of the same name."""

    data: str
    out: str
    epochs: int = 1
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    init: str | None = None
    resume: bool = False
    model: str | None = None
    width: int | None = None
    patch_size: int | None = None
    augment: str = "strong"
    snip_size: int = 64
    seed: int = 0
    max_steps: int = 0
    workers: int = 0
    precision: str = "auto"
    xla_cache: str = ""
    compile: bool = False
    log_every: int = 10
    checkpoint_every: int = 100
    progress: bool = True
