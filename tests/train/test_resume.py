"""A run killed with SIGKILL at a random step and resumed ends bit for bit where an uninterrupted run ends
(on random patches, with the image-class objective: every random draw is seeded by position); one killed
at an epoch's end keeps one metrics row per epoch."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mammolibs.train.engine import Run, TrainConfig, fit
from tests.train.checkpoint_state import assert_same_training_state, latest_step

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "train" / "unet" / "autoencoder" / "train_autoencoder.py"


def _command(data: str, out: Path) -> list[str]:
    return [
        sys.executable,
        str(SCRIPT),
        "--data",
        data,
        "--out",
        str(out),
        "--epochs",
        "3",
        "--batch-size",
        "2",
        "--width",
        "8",
        "--patch-size",
        "32",
        "--checkpoint-every",
        "1",
        "--log-every",
        "2",
        "--no-progress",
    ]


def test_sigkill_at_a_random_step_then_resume_gives_identical_weights(small_shards, tmp_path):
    whole = tmp_path / "whole"
    subprocess.run(_command(small_shards, whole), check=True, capture_output=True, cwd=ROOT)
    reference = torch.load(whole / "checkpoints" / "final.pt", weights_only=True)
    total = reference["step"]
    kill_after = random.Random().randint(2, total - 4)

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        _command(small_shards, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT
    )
    deadline = time.monotonic() + 300
    while latest_step(killed) < kill_after and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    stopped_at = latest_step(killed)
    assert not (killed / "checkpoints" / "final.pt").exists(), "the run finished before it could be killed"
    assert 0 < stopped_at < total

    subprocess.run(_command(small_shards, killed) + ["--resume"], check=True, capture_output=True, cwd=ROOT)
    resumed = torch.load(killed / "checkpoints" / "final.pt", weights_only=True)
    assert_same_training_state(resumed, reference, f"a kill at step {stopped_at}")


class Killed(Exception):
    """The run's end, as a kill at that point would end it."""


@pytest.mark.parametrize("moment", ["before", "after"])
def test_a_run_killed_at_an_epochs_checkpoint_resumes_with_every_epochs_metrics_row_once(
    small_shards, tmp_path, monkeypatch, moment
):
    """Killed just before or just after the checkpoint that ends epoch 2: resumed, ``metrics.jsonl`` holds
    epochs 1, 2 and 3, each once (not a row lost with the kill, nor one written twice by the redone epoch)."""
    settings = {"epochs": 3, "batch_size": 2, "width": 8, "patch_size": 32, "max_steps": 2, "checkpoint_every": 0}
    config = TrainConfig(data=small_shards, out=str(tmp_path), progress=False, **settings)
    save = Run.save

    def killed_at_epoch_2(run: Run, which: str, validation: dict | None = None) -> None:
        at_the_end_of_2 = which == "latest" and run.state["epoch"] == 2
        if at_the_end_of_2 and moment == "before":
            raise Killed
        save(run, which, validation)
        if at_the_end_of_2 and moment == "after":
            raise Killed

    monkeypatch.setattr(Run, "save", killed_at_epoch_2)
    with pytest.raises(Killed):
        fit("autoencoder", config)
    monkeypatch.setattr(Run, "save", save)
    fit("autoencoder", replace(config, resume=True))
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2, 3]
