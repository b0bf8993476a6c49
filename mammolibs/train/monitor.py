"""What a training run shows: TensorBoard events, ``metrics.jsonl``, a progress bar or log lines.

TensorBoard writers append to their event file, which object stores cannot do: written through
gcsfs to ``gs://`` the events silently go missing. So events are always written to a local
folder, and for a remote ``--out`` each :meth:`RunLog.sync` (at log intervals, checkpoints and the
end) closes the current event file, uploads it whole, deletes it locally and starts a new one: each
sync sends only the events since the last, however long the run, and TensorBoard reads the files of
a folder as one run. Nothing is lost but what came after the last sync of a killed run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import socket
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
    """TensorBoard events and the per-epoch ``metrics.jsonl`` of one run under ``out``.

    ``epochs_done``: the epochs its checkpoint has finished; rows of later epochs (written by a run killed
    before its checkpoint) are dropped, as the resumed run writes them again."""

    def __init__(self, out: str, epochs_done: int = 0):
        self.out, self.remote = out, not storage.is_local(out)
        self.folder = (
            tempfile.mkdtemp(prefix="mammoflow-tb-")
            if self.remote
            else storage.local_path(storage.join(out, TENSORBOARD))
        )
        self.files = 0  # event files started, a suffix that keeps their names apart within a second
        self.writer = self._new_writer()
        metrics = storage.join(out, METRICS)
        rows = storage.read_text(metrics).splitlines(keepends=True) if storage.exists(metrics) else []
        self.rows = [row for row in rows if _epoch_of(row) <= epochs_done]

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

    def _new_writer(self) -> SummaryWriter:
        return SummaryWriter(self.folder)

    def sync(self) -> int:
        """Flush events; for a remote ``out``, close the event file, upload it and start another.
        Returns the bytes uploaded."""
        self.writer.flush()
        if not self.remote:
            return 0
        self.writer.close()
        sent = 0
        for path in sorted((e for e in os.scandir(self.folder) if e.is_file()), key=lambda e: e.stat().st_mtime_ns):
            sent += path.stat().st_size
            os.rename(path.path, os.path.join(self.folder, self._next_name()))
        for name in storage.upload_folder(self.folder, storage.join(self.out, TENSORBOARD)):
            os.remove(os.path.join(self.folder, name))
        self.writer = self._new_writer()
        return sent

    def _next_name(self) -> str:
        """An event file name that sorts after every earlier one of the run: TensorBoard reads a folder's
        files in name order and skips one that sorts before a file it has read (the writer's own names
        put a counter before the suffix, so a tenth file would sort before the second)."""
        self.files += 1
        return f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{self.files:06d}"

    def close(self) -> None:
        self.sync()
        self.writer.close()
        if self.remote:
            shutil.rmtree(self.folder, ignore_errors=True)


class Progress:
    """An epoch's progress: a bar with images/s and ETA on a terminal, plain log lines otherwise."""

    def __init__(self, title: str, steps: int, images_per_step: int, show: bool):
        self.title, self.steps, self.images_per_step = title, steps, images_per_step
        self.interactive = show and sys.stderr.isatty()
        self.quiet = not show
        self.started = time.perf_counter()
        self.bar = tqdm(
            total=steps * images_per_step,
            desc=title,
            unit="img",
            unit_scale=True,
            disable=not self.interactive,
            dynamic_ncols=True,
        )

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


def _epoch_of(row: str) -> float:
    """The epoch of a ``metrics.jsonl`` row; a row that does not parse counts as no finished epoch."""
    try:
        epoch = json.loads(row).get("epoch")
    except (ValueError, AttributeError):
        return math.inf
    return epoch if isinstance(epoch, int) else math.inf


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
