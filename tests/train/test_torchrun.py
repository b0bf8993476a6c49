"""Data parallel on CPU processes: ``torchrun --nproc_per_node=2`` with gloo, against one process; and
two machines simulated on 127.0.0.1 (two torchrun node groups of one process each, started as a Vertex AI
custom job's replicas start them) against one machine with two processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from mammolibs.train.distributed import Runtime
from mammolibs.train.engine import TrainConfig
from tests.conftest import free_port
from tests.train.ddp_reference import fixed_batch, make_run_parts, run_steps

ROOT = Path(__file__).resolve().parents[2]
STEPS = 3


ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _two_nodes(*args: str) -> list[tuple[int, str]]:
    """``mammo ARGS`` as a pipeline step runs it on two machines of a Vertex AI custom job: each machine's
    replica (``mammolibs.pipeline.replica``) finds its node rank and node 0's address in CLUSTER_SPEC;
    (exit status, stderr) of each node."""
    node_0 = f"127.0.0.1:{free_port()}"
    cluster = {"workerpool0": [node_0], "workerpool1": ["127.0.0.1:2222"]}
    replica = [sys.executable, "-m", "mammolibs.pipeline.replica", "--processes", "1", "--nodes", "2", "--"]
    nodes = [
        subprocess.Popen(
            [*replica, *args],
            cwd=ROOT,
            env={**ENV, "CLUSTER_SPEC": json.dumps({"cluster": cluster, "task": {"type": pool, "index": 0}})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for pool in ("workerpool0", "workerpool1")
    ]
    return [(node.wait(timeout=600), node.stderr.read() if node.stderr else "") for node in nodes]


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


def test_two_machines_of_one_process_end_with_the_weights_of_one_machine_with_two(small_shards, tmp_path):
    def stage(out: Path) -> list[str]:
        return [
            *("--data", small_shards, "--out", str(out), "--batch-size", "2", "--width", "4", "--patch-size", "32"),
            *("--epochs", "1", "--max-steps", "3", "--no-progress"),
        ]

    done = _torchrun(str(ROOT / "train" / "unet" / "finetune.py"), *stage(tmp_path / "one-machine"))
    assert done.returncode == 0, done.stderr[-3000:]
    nodes = _two_nodes("train", "finetune", *stage(tmp_path / "two-machines"))
    assert [status for status, _ in nodes] == [0, 0], [err[-2000:] for _, err in nodes]
    one, two = (
        torch.load(tmp_path / run / "checkpoints" / "final.pt", weights_only=True)
        for run in ("one-machine", "two-machines")
    )
    assert one["step"] == two["step"] == 3
    for name, tensor in one["model"].items():
        assert torch.allclose(two["model"][name], tensor, rtol=1e-5, atol=1e-6), name
    rows = (tmp_path / "two-machines" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 1  # node 0 alone wrote the run's files: one row per epoch, not one per machine
