"""Data parallel on CPU processes: ``torchrun --nproc_per_node=2`` with gloo, against one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from mammolibs.train.distributed import Runtime
from mammolibs.train.engine import TrainConfig
from tests.train.ddp_reference import fixed_batch, make_run_parts, run_steps

ROOT = Path(__file__).resolve().parents[2]
STEPS = 3


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_two_processes_hold_identical_weights_and_the_loss_of_one_process(small_shards, tmp_path):
    done = _torchrun(str(ROOT / "tests" / "train" / "ddp_replicas.py"), small_shards, str(tmp_path), str(STEPS))
    assert done.returncode == 0, done.stderr[-3000:]
    replicas = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    for name, tensor in replicas[0]["model"].items():
        assert torch.equal(replicas[1]["model"][name], tensor), name

    runtime = Runtime(device=torch.device("cpu"))
    model, optimizer, scheduler = make_run_parts(TrainConfig(data=small_shards, out=str(tmp_path)), runtime)
    single = [loss.item() for loss in run_steps(model, optimizer, scheduler, fixed_batch(small_shards), STEPS)]
    assert torch.allclose(torch.tensor(replicas[0]["losses"]), torch.tensor(single), rtol=1e-5, atol=1e-7)
    assert single[-1] < single[0]  # the steps trained something, and the same thing: steps 2 and 3 agree too


def test_a_training_script_runs_under_torchrun_with_a_replica_per_process(small_shards, tmp_path):
    out = tmp_path / "classifier"  # ResNet: its batch norm is synced between the processes
    done = _torchrun(
        str(ROOT / "train" / "resnet" / "train_resnet.py"),
        "--data",
        small_shards,
        "--out",
        str(out),
        "--batch-size",
        "2",
        "--snip-size",
        "32",
        "--epochs",
        "2",
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cpu, 2 process(es)" in done.stderr
    final = torch.load(out / "checkpoints" / "final.pt", weights_only=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2] and final["step"] == rows[-1]["step"] > 0
