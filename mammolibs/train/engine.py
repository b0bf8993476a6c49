"""The training engine shared by all stages: data, device, optimisation, checkpoints, logs.

Outputs under ``--out`` (any storage URL): ``checkpoints/{latest,best,final}.pt``,
``tensorboard/`` event files, ``metrics.jsonl`` (one row per epoch) and ``config.json``.

The step never waits for the device: losses are summed on the device and read every
``log_every`` steps, where non-finite losses are caught. ``latest.pt`` is written every
``checkpoint_every`` steps and at each epoch's end, with everything an exact resume needs.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, cast

import torch
from torch import nn

from mammolibs import storage
from mammolibs.data.loader import StreamLoader
from mammolibs.data.shard_set import ShardSet
from mammolibs.data.stream import ShardStream, replica_parts, usable_count
from mammolibs.data.views import effective_patch, unpack_batch
from mammolibs.models import create_model
from mammolibs.models.transfer import transfer
from mammolibs.train import distributed
from mammolibs.train.allocator import keep_freed_memory
from mammolibs.train.checkpoints import checkpoint_url, load_checkpoint, restore_rng_states, rng_states, to_cpu
from mammolibs.train.config import DEFAULT_PATCH, TrainConfig
from mammolibs.train.monitor import Progress, RunLog
from mammolibs.train.stages import STAGES, Stage

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    final_checkpoint: str
    epochs: list[dict]


def fit(stage_name: str, config: TrainConfig) -> TrainResult:
    """Train one stage as ``config`` says and return where its final checkpoint is."""
    keep_freed_memory()
    runtime = distributed.start_runtime(distributed.xla_cache_folder(config.xla_cache, config.out))
    try:
        return Run(STAGES[stage_name], config, runtime).train()
    finally:
        distributed.stop_runtime(runtime)


def build_optimizer(model: torch.nn.Module, config: TrainConfig, runtime: distributed.Runtime, total_steps: int):
    """AdamW (step counts kept on the device under XLA, so no step recompiles) and cosine decay."""
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, capturable=runtime.xla
    )
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))


def train_step(stage: Stage, model, batch, optimizer, scheduler, scaler, autocast) -> torch.Tensor:
    """One optimizer step; returns the detached loss without reading it (no host sync)."""
    with autocast:
        loss, _ = stage.loss(model, unpack_batch(batch))
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return loss.detach()


def data_streams(
    stage: Stage, data: ShardSet, config: TrainConfig, runtime: distributed.Runtime
) -> tuple[ShardStream, ShardStream, int]:
    """The train and val streams of this process (its part of the shards, :attr:`Runtime.data_part`)
    and the number of usable train samples; every process gets the same number of steps."""
    replicas = runtime.replicas
    if config.batch_size < stage.min_batch:
        raise ValueError(f"stage '{stage.name}' needs --batch-size of at least {stage.min_batch}")
    global_batch = config.batch_size * replicas
    train_view = stage.view(config, data.image_size, train=True)
    train_shards = data.shards("train")
    usable = usable_count(train_shards, train_view)
    steps = usable // global_batch
    if config.max_steps:
        steps = min(steps, config.max_steps)
    if steps == 0:
        raise ValueError(
            f"{data.url}: the train split has {usable} samples usable by stage "
            f"'{stage.name}', fewer than one global batch ({config.batch_size} x {replicas} "
            "replicas); lower --batch-size or standardize more data (shards made by an older "
            "mammoflow may lack the 'localized' index field: standardize them again)"
        )
    # Under SPMD one process per host feeds that host's devices: its stream yields its share of each
    # global batch, from its own part of the shards (every host runs the same command).
    rank, world = runtime.data_part
    batch = config.batch_size * runtime.devices_fed
    train = ShardStream(
        data.url,
        replica_parts(train_shards, train_view, rank, world),
        train_view,
        batch,
        config.seed,
        rank,
        shuffle=True,
        steps=steps,
    )
    val_view = stage.view(config, data.image_size, train=False)
    val = ShardStream(
        data.url,
        replica_parts(data.shards("val"), val_view, rank, world),
        val_view,
        batch,
        config.seed,
        rank,
        shuffle=False,
    )
    return train, val, usable


@dataclass
class Interval:
    """The steps since the loss was last read: how many, the time spent waiting for data, when it began."""

    steps: int = 0
    waited: float = 0.0
    since: float = field(default_factory=time.perf_counter)


class Run:
    """One training run of one stage: built from its config, resumed when asked, then trained."""

    def __init__(self, stage: Stage, config: TrainConfig, runtime: distributed.Runtime):
        self.stage, self.runtime = stage, runtime
        self.precision = distributed.resolve_precision(config.precision, runtime)
        self.autocast = distributed.autocast(runtime, self.precision)
        torch.manual_seed(config.seed)
        self.data = ShardSet.open(config.data)
        self.image_size = self.data.image_size
        self.trained_on = {"data": config.data, "sources": self.data.manifest["counts"]["source"]}
        self.latest = checkpoint_url(config.out, "latest")
        self.resuming = config.resume and storage.exists(self.latest)
        init = load_checkpoint(config.init) if config.init and not self.resuming else None
        source = storage.torch_load(self.latest) if self.resuming else init
        self.model_name, self.model_kwargs = stage.model_spec(config, source)
        patch = (
            config.patch_size
            if config.patch_size is not None
            else (source or {}).get("config", {}).get("patch_size", DEFAULT_PATCH)
        )  # the scale pretraining saw
        self.config = config = replace(  # the settings resolved: what the run uses and its checkpoints record
            config,
            model=self.model_name,
            width=self.model_kwargs.get("width"),
            patch_size=effective_patch(patch, self.image_size),
        )
        self.train_stream, self.val_stream = self._streams()
        self.steps_per_epoch = self.train_stream.steps

        model = create_model(self.model_name, stage.role, **self.model_kwargs)
        if init is not None:
            transfer(model, self.model_name, stage.role, self.model_kwargs.get("width"), init, str(config.init))
        self.model: nn.Module = distributed.distribute(model, runtime)
        if config.compile:
            self.model = cast(nn.Module, torch.compile(self.model))
        self.optimizer, self.scheduler = build_optimizer(
            self.model, config, runtime, config.epochs * self.steps_per_epoch
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.state: dict[str, Any] = {"step": 0, "epoch": 0, "batch": 0, "best": None, "loss_sum": 0.0, "loss_steps": 0}
        if source is not None and self.resuming:
            self._restore(source)

    def _streams(self) -> tuple[ShardStream, ShardStream]:
        train, val, usable = data_streams(self.stage, self.data, self.config, self.runtime)
        log.info(
            "%s on %s: %d steps per epoch of %d images (%d usable in train), precision %s",
            self.stage.name,
            self.runtime.describe(),
            train.steps,
            self.config.batch_size * self.runtime.replicas,
            usable,
            self.precision,
        )
        log.debug("%s settings: %s", self.stage.name, json.dumps(asdict(self.config), sort_keys=True))
        return train, val

    def _loader(self, stream: ShardStream) -> StreamLoader:
        return StreamLoader(stream, self.config.workers, pin_memory=self.runtime.device.type == "cuda")

    def _restore(self, checkpoint: dict) -> None:
        """Continue from ``checkpoint``, the run's ``latest.pt`` (read once, in ``__init__``)."""
        distributed.unwrap(self.model).load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        restore_rng_states(checkpoint["rng"])
        self.state = dict(checkpoint["state"])
        log.info(
            "resumed from %s at epoch %d, batch %d (step %d)",
            self.latest,
            self.state["epoch"] + 1,
            self.state["batch"],
            self.state["step"],
        )

    @property
    def best_by(self) -> str:
        """The validation figure that picks ``best.pt`` (``val_loss``, ``val_dice``, ``val_auroc``)."""
        return f"val_{self.stage.metric}"

    def _rank(self, row: dict) -> tuple[int, float] | None:
        """How good an epoch is (higher is better): its :attr:`best_by` figure, or where that is undefined
        (no malignant case among the val snips, say), its validation loss, ranked below any defined figure."""
        value, loss = row.get(self.best_by), row.get("val_loss")
        if value is not None:
            return (1, -value if self.stage.metric == "loss" else value)
        return None if loss is None else (0, -loss)

    def save(self, which: str, validation: dict | None = None) -> None:
        """Write a checkpoint (main process only; written whole or not at all); ``validation``: the
        epoch's figures, kept in it so evaluation can say which epoch it scores."""
        if not self.runtime.is_main:
            return
        storage.torch_save(
            to_cpu(
                {
                    "validation": validation or {},
                    "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "trained_on": self.trained_on,
                    "stage": self.stage.name,
                    "model_name": self.model_name,
                    "model_role": self.stage.role,
                    "model_kwargs": self.model_kwargs,
                    "config": asdict(self.config),
                    "image_size": self.image_size,
                    "model": distributed.unwrap(self.model).state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "scaler": self.scaler.state_dict(),
                    "rng": rng_states(),
                    "state": dict(self.state),
                    "step": self.state["step"],
                    "epoch": self.state["epoch"],
                }
            ),
            checkpoint_url(self.config.out, which),
        )

    def train(self) -> TrainResult:
        config, runtime = self.config, self.runtime
        logs = RunLog(config.out, epochs_done=self.state["epoch"]) if runtime.is_main else None
        if runtime.is_main:
            storage.write_text_atomic(
                storage.join(config.out, "config.json"), json.dumps(asdict(self.config), indent=2)
            )
        history = []
        try:
            while self.state["epoch"] < config.epochs:
                train_loss = self._train_epoch(logs)
                row = {
                    "epoch": self.state["epoch"] + 1,
                    "step": self.state["step"],
                    "train_loss": train_loss,
                    **self._validate(logs),
                    "lr": self.scheduler.get_last_lr()[0],
                }
                self.state.update(epoch=self.state["epoch"] + 1, batch=0, loss_sum=0.0, loss_steps=0)
                history.append(row)
                log.info("%s: %s", self.stage.name, row)
                if logs:  # before the checkpoint that ends the epoch: a run killed in between redoes it
                    logs.scalars(
                        {
                            f"epoch/{k}": v
                            for k, v in row.items()
                            if (k.endswith("loss") or k.startswith("val_")) and v is not None
                        },
                        row["epoch"],
                    )
                    logs.epoch(row)
                rank = self._rank(row)
                if rank is not None and (self.state.get("best") is None or rank > tuple(self.state["best"])):
                    self.state["best"] = rank
                    self.save("best", row)
                self.save("latest")
                if logs:
                    logs.sync()
            self.save("final", history[-1] if history else None)
            if logs and history:
                logs.hparams(
                    asdict(config), {"train_loss": history[-1]["train_loss"], self.best_by: history[-1][self.best_by]}
                )
            distributed.barrier(runtime)
        finally:
            if logs:
                logs.close()
        return TrainResult(final_checkpoint=checkpoint_url(config.out, "final"), epochs=history)

    def _train_epoch(self, logs: RunLog | None) -> float:
        config, runtime, state = self.config, self.runtime, self.state
        self.model.train()
        self.train_stream.set_epoch(state["epoch"], start=state["batch"])
        images_per_step = config.batch_size * runtime.replicas
        progress = Progress(
            f"{self.stage.name} epoch {state['epoch'] + 1}/{config.epochs}",
            self.steps_per_epoch,
            images_per_step,
            show=config.progress and runtime.is_main,
        )
        progress.bar.update(state["batch"] * images_per_step)
        running = torch.zeros((), device=runtime.device)
        interval = Interval()
        batches = iter(distributed.on_device(self._loader(self.train_stream), runtime))
        try:
            while state["batch"] < self.steps_per_epoch:
                asked = time.perf_counter()
                batch = next(batches)
                interval.waited += time.perf_counter() - asked
                running += train_step(
                    self.stage, self.model, batch, self.optimizer, self.scheduler, self.scaler, self.autocast
                )
                distributed.step_done(runtime)
                state["step"] += 1
                state["batch"] += 1
                interval.steps += 1
                progress.advance()
                last = state["batch"] == self.steps_per_epoch
                checkpoint = config.checkpoint_every and state["step"] % config.checkpoint_every == 0 and not last
                if interval.steps == config.log_every or last or checkpoint:
                    self._end_interval(interval, running, progress, logs, images_per_step)
                    interval = Interval()
                if checkpoint:
                    self.save("latest")
                    if logs:
                        logs.sync()
        finally:
            progress.close()
        return state["loss_sum"] / max(state["loss_steps"], 1)

    def _end_interval(
        self, interval: Interval, running: torch.Tensor, progress: Progress, logs: RunLog | None, images_per_step: int
    ) -> None:
        """Read the interval's mean loss (the one host sync), show and log it with the interval's speed
        and data wait, and start the next interval's sum."""
        loss = self._read_loss(running, interval.steps)
        elapsed = time.perf_counter() - interval.since
        values = {
            "loss": loss,
            "lr": self.scheduler.get_last_lr()[0],
            "images_per_s": interval.steps * images_per_step / elapsed,
            "data_wait": interval.waited / elapsed,
        }
        progress.report(self.state["batch"], values)
        if logs:
            logs.scalars({f"train/{k}": v for k, v in values.items()}, self.state["step"])
        self.state["loss_sum"] += loss * interval.steps
        self.state["loss_steps"] += interval.steps
        running.zero_()

    def _read_loss(self, running: torch.Tensor, steps: int) -> float:
        """The mean loss of the last ``steps`` steps over all replicas: the only host sync of training."""
        loss = distributed.sum_over_replicas(running, self.runtime).item() / (steps * self.runtime.world_size)
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"{self.stage.name}: the loss became {loss} before step {self.state['step']}; "
                "lower --lr, or try --precision fp32"
            )
        return loss

    @torch.no_grad()
    def _validate(self, logs: RunLog | None) -> dict[str, float | None]:
        """Mean loss and the stage's metric over the val split (``None`` when it has no usable sample);
        pictures and PR curve. Scored pairs (the classifiers' AUROC) come from the main process's share."""
        model, runtime = distributed.unwrap(self.model), self.runtime
        model.eval()
        total, sums = torch.zeros(2, device=runtime.device), torch.zeros(2, device=runtime.device)
        pictured, labels, scores = False, [], []
        for batch in distributed.on_device(self._loader(self.val_stream), runtime):
            batch = unpack_batch(batch)
            with self.autocast:
                loss, output = self.stage.loss(model, batch)
            total += torch.stack([loss.detach().float(), torch.ones((), device=runtime.device)])
            if logs and not pictured:
                picture = self.stage.picture(batch, output)
                if picture is not None:
                    logs.images(f"val/{self.stage.name}", picture[:4].cpu(), self.state["step"])
                pictured = True
            found = self.stage.scores(batch, output)
            if found is not None:
                labels.append(found[0].cpu())
                scores.append(found[1].float().cpu())
            figure = self.stage.metric_sums(batch, output)
            if figure is not None:
                sums += figure
        loss_sum, batches = distributed.sum_over_replicas(total, runtime).tolist()
        positives, scored = (torch.cat(labels), torch.cat(scores)) if scores else (torch.zeros(0), torch.zeros(0))
        if logs and scores:
            logs.pr_curve("val/malignant_pr", positives, scored, self.state["step"])
        figures = {"val_loss": loss_sum / batches if batches else None}
        if self.stage.metric != "loss":
            figures[self.best_by] = self.stage.metric_value(
                distributed.sum_over_replicas(sums, runtime).cpu(), positives, scored
            )
        return figures
