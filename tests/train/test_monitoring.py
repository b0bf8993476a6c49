"""What a run shows: TensorBoard scalars, pictures, PR curve and hparams, locally and on gs://; progress output."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import fsspec
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mammolibs.train.cli import main
from mammolibs.train.monitor import Progress
from tests.conftest import COMMON

SCALARS = ("train/loss", "train/lr", "train/images_per_s", "train/data_wait", "epoch/train_loss", "epoch/val_loss")


def _events(folder: Path) -> EventAccumulator:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


def _steps(events: EventAccumulator, tag: str) -> list[int]:
    return [event.step for event in events.Scalars(tag)]


@pytest.mark.parametrize("stage", ["encoder", "autoencoder", "finetune", "classifier"])
def test_every_stage_logs_its_scalars_and_hparams(runs, stage):
    events = _events(runs / stage / "tensorboard")
    assert set(SCALARS) <= set(events.Tags()["scalars"])
    final_step = max(_steps(events, "train/loss"))
    assert _steps(events, "train/loss") == list(range(1, final_step + 1))  # --log-every 1
    assert all(0.0 <= e.value <= 1.0 for e in events.Scalars("train/data_wait"))
    assert all(e.value > 0 for e in events.Scalars("train/images_per_s"))
    assert events.PluginTagToContent("hparams")  # the run's settings next to its final losses


@pytest.mark.parametrize("stage", ["encoder", "autoencoder", "finetune"])
def test_image_stages_show_what_the_model_made_of_validation_images(runs, stage):
    events = _events(runs / stage / "tensorboard")
    [tag] = [t for t in events.Tags()["images"] if t.startswith(f"val/{stage}")]
    picture = events.Images(tag)[-1]
    assert picture.width >= 2 * picture.height  # inputs next to masks or reconstructions


def test_the_classifier_logs_a_precision_recall_curve(runs):
    events = _events(runs / "classifier" / "tensorboard")
    assert "val/malignant_pr" in events.PluginTagToContent("pr_curves")


def test_a_run_on_gs_loses_no_event(small_shards, gcs_bucket, tmp_path):
    bucket, _ = gcs_bucket
    out = f"gs://{bucket}/runs/finetune"
    epochs = 3
    result = main("finetune", ["--data", small_shards, "--out", out, "--epochs", str(epochs)] + COMMON)
    steps = result.epochs[-1]["step"]
    fs = fsspec.filesystem("gs")
    local = tmp_path / "tensorboard"
    fs.get(f"{bucket}/runs/finetune/tensorboard/", str(local) + "/", recursive=True)
    events = _events(local)
    assert _steps(events, "train/loss") == list(range(1, steps + 1))
    assert _steps(events, "epoch/val_loss") == list(range(1, epochs + 1))
    assert len(events.Images("val/finetune")) == epochs
    assert fs.exists(f"{bucket}/runs/finetune/checkpoints/final.pt")
    assert len(fs.cat(f"{bucket}/runs/finetune/metrics.jsonl").splitlines()) == epochs


def test_logs_get_plain_progress_lines_and_terminals_a_bar(small_shards, tmp_path, caplog, monkeypatch):
    args = [
        "--data",
        small_shards,
        "--out",
        str(tmp_path / "run"),
        "--batch-size",
        "4",
        "--width",
        "4",
        "--log-every",
        "1",
    ]
    with caplog.at_level(logging.INFO, logger="mammolibs.train.monitor"):
        main("finetune", args)
    lines = [r.getMessage() for r in caplog.records if r.name == "mammolibs.train.monitor"]
    assert lines and all("images_per_s" in line and "ETA" in line and "loss" in line for line in lines)

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    progress = Progress("finetune epoch 1/1", steps=5, images_per_step=8, show=True)
    for done in range(1, 6):
        progress.advance()
        progress.report(done, {"loss": 0.5})
    progress.close()
    shown = terminal.getvalue()
    assert "img/s" in shown and "100%" in shown and "loss=0.5" in shown and "<" in shown  # rate, ETA


def test_each_sync_to_gs_sends_only_the_new_events(gcs_bucket, tmp_path):
    """A long run's syncs stay the same size (event files rotate), and every event is read back."""
    from mammolibs.train.monitor import RunLog

    bucket, _ = gcs_bucket
    logs = RunLog(f"gs://{bucket}/runs/rotation")
    sent = []
    for sync in range(30):
        logs.scalars(
            {f"train/value{i}": float(sync * 40 + step) for i in range(5) for step in range(40)}, step=sync
        )  # the values differ, the steps say which sync
        for step in range(40):
            logs.scalars({"train/loss": 1.0 / (1 + sync * 40 + step)}, step=sync * 40 + step)
        sent.append(logs.sync())
    logs.close()
    assert max(sent[1:]) <= 1.5 * min(sent[1:]), sent  # bounded: not growing with the run
    assert sum(sent) > 0
    fs = fsspec.filesystem("gs")
    local = tmp_path / "tensorboard"
    fs.get(f"{bucket}/runs/rotation/tensorboard/", str(local) + "/", recursive=True)
    assert _steps(_events(local), "train/loss") == list(range(30 * 40))
