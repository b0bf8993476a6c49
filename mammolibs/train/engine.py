"""The training engine shared by all stages: data, device, optimisation, checkpoints, logs.

Outputs under ``--out`` (any storage URL): ``checkpoints/{latest,best,final}.pt``,
``tensorboard/`` event files, ``metrics.jsonl`` (one row per epoch) and ``config.json``.
"""
from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
from dataclasses import asdict, dataclass

import torch
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from mammolibs import storage
from mammolibs.data.manifest import read_manifest
from mammolibs.data.views import load_samples
from mammolibs.models import create_model, load_matching
from mammolibs.train import distributed
from mammolibs.train.checkpoints import checkpoint_url, load_checkpoint
from mammolibs.train.stages import STAGES, Stage

log = logging.getLogger(__name__)


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
    width: int = 16
    snip_size: int = 64
    seed: int = 0
    max_steps: int = 0
    workers: int = 0
    progress: bool = True


@dataclass
class TrainResult:
    final_checkpoint: str
    epochs: list[dict]


def fit(stage_name: str, config: TrainConfig) -> TrainResult:
    """Train one stage as ``config`` says and return where its final checkpoint is."""
    stage = STAGES[stage_name]
    runtime = distributed.start_runtime()
    try:
        return _fit(stage, config, runtime)
    finally:
        distributed.stop_runtime(runtime)


def _fit(stage: Stage, config: TrainConfig, runtime: distributed.Runtime) -> TrainResult:
    torch.manual_seed(config.seed)
    settings = asdict(config)
    image_size = read_manifest(config.data)["image_size"]
    train_set = stage.dataset(load_samples(config.data, "train", config.progress), settings, train=True)
    val_set = stage.dataset(load_samples(config.data, "val"), settings, train=False)
    if len(train_set) < stage.min_batch:
        raise ValueError(f"{config.data}: the train split has {len(train_set)} usable samples for stage "
                         f"'{stage.name}'; standardize more data (see 'mammo standardize --help')")
    train_loader = _loader(train_set, config, runtime, shuffle=True)
    val_loader = _loader(val_set, config, runtime, shuffle=False)

    latest = checkpoint_url(config.out, "latest")
    resuming = config.resume and storage.exists(latest)
    model = create_model(stage.model_name, **stage.model_kwargs(settings))
    if config.init and not resuming:
        load_matching(model, load_checkpoint(config.init)["model"], config.init)
    model = distributed.distribute(model, runtime)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = len(train_loader) if not config.max_steps else min(config.max_steps, len(train_loader))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.epochs * steps_per_epoch))
    state = {"step": 0, "epoch": 0, "best_val": math.inf}
    if resuming:
        state = _restore(latest, model, optimizer, scheduler)

    def save(which: str) -> None:
        if runtime.is_main:
            storage.torch_save({
                "stage": stage.name, "model_name": stage.model_name, "model_kwargs": stage.model_kwargs(settings),
                "model": distributed.unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "config": settings, "image_size": image_size, **state,
            }, checkpoint_url(config.out, which))

    logs = _TensorBoard(config.out) if runtime.is_main else None
    if runtime.is_main:
        storage.write_text_atomic(storage.join(config.out, "config.json"), json.dumps(settings, indent=2))
    history = []
    try:
        for epoch in range(state["epoch"], config.epochs):
            if train_loader.sampler is not None and hasattr(train_loader.sampler, "set_epoch"):
                train_loader.sampler.set_epoch(epoch)
            train_loss = _train_one_epoch(stage, model, train_loader, optimizer, scheduler, runtime, config,
                                          state, logs, f"{stage.name} epoch {epoch + 1}/{config.epochs}")
            val_loss = evaluate_loss(stage, model, val_loader, runtime)
            state["epoch"] = epoch + 1
            row = {"epoch": epoch + 1, "step": state["step"], "train_loss": train_loss, "val_loss": val_loss,
                   "lr": scheduler.get_last_lr()[0]}
            history.append(row)
            log.info("%s: %s", stage.name, row)
            if logs:
                logs.epoch(row)
            save("latest")
            if val_loss is not None and val_loss < state["best_val"]:
                state["best_val"] = val_loss
                save("best")
        save("final")
        distributed.barrier(runtime)
    finally:
        if logs:
            logs.close()
    return TrainResult(final_checkpoint=checkpoint_url(config.out, "final"), epochs=history)


def _loader(dataset, config: TrainConfig, runtime: distributed.Runtime, shuffle: bool) -> DataLoader:
    sampler = distributed.sampler_for(dataset, runtime, shuffle)
    return DataLoader(dataset, batch_size=config.batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=config.workers, drop_last=shuffle and len(dataset) > config.batch_size)


def _train_one_epoch(stage, model, loader, optimizer, scheduler, runtime, config, state, logs, title) -> float:
    model.train()
    total, count = 0.0, 0
    bar = tqdm(loader, desc=title, total=config.max_steps or None, disable=not (config.progress and runtime.is_main))
    for index, batch in enumerate(bar):
        if config.max_steps and index >= config.max_steps:
            break
        if batch[0].shape[0] < stage.min_batch:
            continue
        batch = tuple(t.to(runtime.device) for t in batch)
        loss = stage.loss(model, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{stage.name}: loss became {loss.item()} at step {state['step']}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        distributed.step_done(runtime)
        state["step"] += 1
        value = loss.item()
        total, count = total + value, count + 1
        bar.set_postfix(loss=f"{value:.4f}")
        if logs:
            logs.step(state["step"], value, scheduler.get_last_lr()[0])
    return total / max(count, 1)


@torch.no_grad()
def evaluate_loss(stage: Stage, model, loader: DataLoader, runtime: distributed.Runtime) -> float | None:
    """Mean loss over a loader, or ``None`` when it has no usable batch."""
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        if batch[0].shape[0] < stage.min_batch:
            continue
        batch = tuple(t.to(runtime.device) for t in batch)
        total, count = total + stage.loss(model, batch).item() * batch[0].shape[0], count + batch[0].shape[0]
    return total / count if count else None


def _restore(url: str, model, optimizer, scheduler) -> dict:
    checkpoint = storage.torch_load(url)
    distributed.unwrap(model).load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    log.info("resumed from %s at epoch %d, step %d", url, checkpoint["epoch"], checkpoint["step"])
    return {k: checkpoint[k] for k in ("step", "epoch", "best_val")}


class _TensorBoard:
    """TensorBoard scalars and ``metrics.jsonl`` under ``out``; remote URLs get a local copy uploaded each epoch."""

    def __init__(self, out: str):
        self.out = out
        self.local = storage.local_path(storage.join(out, "tensorboard")) if storage.is_local(out) else tempfile.mkdtemp()
        self.writer = SummaryWriter(self.local)
        self.rows: list[str] = []
        metrics_url = storage.join(out, "metrics.jsonl")
        if storage.exists(metrics_url):
            self.rows = storage.read_text(metrics_url).splitlines(keepends=True)

    def step(self, step: int, loss: float, lr: float) -> None:
        self.writer.add_scalar("train/loss_step", loss, step)
        self.writer.add_scalar("train/lr", lr, step)

    def epoch(self, row: dict) -> None:
        self.writer.add_scalar("train/loss", row["train_loss"], row["epoch"])
        if row["val_loss"] is not None:
            self.writer.add_scalar("val/loss", row["val_loss"], row["epoch"])
        self.writer.flush()
        self.rows.append(json.dumps(row) + "\n")
        storage.write_text_atomic(storage.join(self.out, "metrics.jsonl"), "".join(self.rows))
        if not storage.is_local(self.out):
            storage.upload_folder(self.local, storage.join(self.out, "tensorboard"))

    def close(self) -> None:
        self.writer.close()
        if not storage.is_local(self.out):
            storage.upload_folder(self.local, storage.join(self.out, "tensorboard"))
            shutil.rmtree(self.local, ignore_errors=True)
