"""The pieces test_torchrun runs both under torchrun and in one process: the same model, optimizer and batch."""

from __future__ import annotations

import contextlib

import torch

from mammolibs.data.shard_set import ShardSet
from mammolibs.models import create_model
from mammolibs.train import distributed
from mammolibs.train.engine import TrainConfig, build_optimizer, train_step
from mammolibs.train.stages import STAGES

GLOBAL_BATCH = 4
STAGE = STAGES["autoencoder"]  # a loss that is a mean over samples: halves average to the whole


def fixed_batch(data: str) -> tuple[torch.Tensor, ...]:
    """The first ``GLOBAL_BATCH`` train samples, corrupted with fixed seeds."""
    samples = ShardSet.open(data).samples("train")[:GLOBAL_BATCH]
    view = STAGE.view(TrainConfig(data, "unused", patch_size=0), samples[0].image.shape[0], train=True)
    items = [view(sample, seed) for seed, sample in enumerate(samples)]
    return tuple(torch.stack(parts) for parts in zip(*items))


def make_run_parts(config: TrainConfig, runtime: distributed.Runtime):
    torch.manual_seed(0)
    model = distributed.distribute(create_model("basic_unet", "autoencoder", width=4), runtime)
    optimizer, scheduler = build_optimizer(model, config, runtime, total_steps=10)
    return model, optimizer, scheduler


def run_steps(model, optimizer, scheduler, batch, steps: int) -> list[torch.Tensor]:
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    return [
        train_step(STAGE, model, batch, optimizer, scheduler, scaler, contextlib.nullcontext()) for _ in range(steps)
    ]
