"""What a training run shows: TensorBoard events, ``metrics.jsonl``, a progress bar or log lines.

TensorBoard writers append to their event file, which object stores cannot do: written through
gcsfs to ``gs://`` the events silently go missing. So events are always written to a local
folder, and for a remote ``--out`` every :meth:`RunLog.sync` uploads each event file whole (an
object is replaced atomically), at log intervals, checkpoints and the end. Nothing is lost but
what came after the last sync of a killed run, and a resumed run adds new event files beside the
old ones, which TensorBoard reads as one run.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from mammolibs import storage

log = logging.getLogger(__name__)

TENSORBOARD = "tensorboard"
METRICS = "metrics.jsonl"


class RunLog:
    """TensorBoard events and the per-epoch ``metrics.jsonl`` of one run under ``out``."""

    def __init__(self, out: str):
        self.out, self.remote = out, not storage.is_local(out)
        self.folder = tempfile.mkdtemp(prefix="mammoflow-tb-") if self.remote else \
            storage.local_path(storage.join(out, TENSORBOARD))
        self.writer = SummaryWriter(self.folder)
        self.uploaded: dict[str, int] = {}  # event file -> size at its last upload
        metrics = storage.join(out, METRICS)
        self.rows = storage.read_text(metrics).splitlines(keepends=True) if storage.exists(metrics) else []

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def images(self, tag: str, images: torch.Tensor, step: int) -> None:
        """``images``: N x 3 x H x W in [0, 1]."""
        self.writer.add_images(tag, images.float().clamp(0, 1), step)

    def pr_curve(self, tag: str, is_positive: torch.Tensor, scores: torch.Tensor, step: int) -> None:
        self.writer.add_pr_curve(tag, is_positive.bool(), scores.float(), step)

    def epoch(self, row: dict) -> None:
        self.rows.append(json.dumps(row) + "\n")
        storage.write_text_atomic(storage.join(self.out, METRICS), "".join(self.rows))

    def hparams(self, config: dict, metrics: dict[str, float]) -> None:
        simple = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in config.items()}
        finite = {f"hparams/{k}": v for k, v in metrics.items() if v is not None and math.isfinite(v)}
        self.writer.add_hparams(simple, finite, run_name=".")

    def sync(self) -> None:
        """Flush events; for a remote ``out``, upload every event file whole."""
        self.writer.flush()
        if self.remote:
            sizes = {name: os.path.getsize(os.path.join(self.folder, name)) for name in os.listdir(self.folder)}
            storage.upload_folder(self.folder, storage.join(self.out, TENSORBOARD),
                                  skip=lambda name: self.uploaded.get(name) == sizes.get(name))
            self.uploaded.update(sizes)

    def close(self) -> None:
        self.writer.close()
        self.sync()
        if self.remote:
            shutil.rmtree(self.folder, ignore_errors=True)


class Progress:
    """An epoch's progress: a bar with images/s and ETA on a terminal, plain log lines otherwise."""

    def __init__(self, title: str, steps: int, images_per_step: int, show: bool):
        self.title, self.steps, self.images_per_step = title, steps, images_per_step
        self.interactive = show and sys.stderr.isatty()
        self.quiet = not show
        self.started = time.perf_counter()
        self.bar = tqdm(total=steps * images_per_step, desc=title, unit="img", unit_scale=True,
                        disable=not self.interactive, dynamic_ncols=True)

    def advance(self) -> None:
        self.bar.update(self.images_per_step)

    def report(self, done: int, values: dict[str, float]) -> None:
        """At a log interval: ``done`` steps of this epoch, and the latest figures."""
        if self.interactive:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()}, refresh=False)
        elif not self.quiet:
            elapsed = time.perf_counter() - self.started
            eta = elapsed / max(done, 1) * (self.steps - done)
            figures = " ".join(f"{k} {v:.4g}" for k, v in values.items())
            log.info("%s step %d/%d %s ETA %s", self.title, done, self.steps, figures, _clock(eta))

    def close(self) -> None:
        self.bar.close()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
