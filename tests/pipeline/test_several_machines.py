"""A step on several machines: where each machine finds node 0 (Vertex AI's CLUSTER_SPEC, a PyTorchJob's
variables), and a Kubeflow step that starts its PyTorchJob through the Kubernetes API (a server on
127.0.0.1 whose controller runs the replicas here) and trains on gs:// through the GCS emulator."""

import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mammolibs.pipeline import launcher, replica
from mammolibs.pipeline.hardware import ACCELERATORS, StepHardware
from mammolibs.pipeline.jobs import cluster_job
from mammolibs.pipeline.rendezvous import Rendezvous, node_rendezvous
from mammolibs.pipeline.steps import mammo_command, train_stage
from tests.pipeline.kube_api import KubeApi
from tests.train.checkpoint_state import assert_same_training_state, latest_step

ROOT = Path(__file__).resolve().parents[2]


def vertex_cluster(pool: str, index: int, workers: int = 3) -> dict[str, str]:
    """CLUSTER_SPEC as Vertex AI sets it on a replica of a job of 1 + ``workers`` machines."""
    cluster = {
        "workerpool0": ["cmle-training-workerpool0-1d969d3ba6-0:2222"],
        "workerpool1": [f"cmle-training-workerpool1-1d969d3ba6-{i}:2222" for i in range(workers)],
    }
    return {
        "CLUSTER_SPEC": json.dumps({"cluster": cluster, "environment": "cloud", "task": {"type": pool, "index": index}})
    }


def test_each_machine_finds_its_node_rank_and_node_0_on_vertex_ai_and_kubeflow():
    primary = node_rendezvous(vertex_cluster("workerpool0", 0))
    assert primary == Rendezvous(0, 4, "cmle-training-workerpool0-1d969d3ba6-0", 2222)
    assert node_rendezvous(vertex_cluster("workerpool1", 2)).node_rank == 3  # workers follow the primary
    pytorch_job = {"MASTER_ADDR": "finetune-master-0", "MASTER_PORT": "23456", "RANK": "2", "WORLD_SIZE": "4"}
    assert node_rendezvous(pytorch_job) == Rendezvous(2, 4, "finetune-master-0", 23456)
    assert Rendezvous(2, 4, "finetune-master-0", 23456).torchrun_flags() == [
        "--nnodes=4",
        "--node-rank=2",
        "--master-addr=finetune-master-0",
        "--master-port=23456",
    ]


@pytest.mark.parametrize(
    "environ, message",
    [
        ({}, "nothing says where node 0 is: run it as a replica of a Vertex AI custom job"),
        ({"CLUSTER_SPEC": "{not json"}, "CLUSTER_SPEC does not read as Vertex AI's cluster"),
        ({"CLUSTER_SPEC": json.dumps({"cluster": {}, "task": {}})}, "CLUSTER_SPEC does not read"),
        ({**vertex_cluster("workerpool2", 0)}, "a replica of workerpool2"),
        ({**vertex_cluster("workerpool1", 5)}, "no usable node 0 and rank"),  # index past the pool
        (
            {"MASTER_ADDR": "m", "MASTER_PORT": "http", "RANK": "0", "WORLD_SIZE": "2"},
            "RANK, WORLD_SIZE and MASTER_PORT must be whole numbers",
        ),
        ({"MASTER_ADDR": "", "MASTER_PORT": "1", "RANK": "0", "WORLD_SIZE": "2"}, "no usable node 0"),
    ],
)
def test_a_machine_without_a_usable_rendezvous_is_refused_saying_why(environ, message):
    with pytest.raises(ValueError, match=message):
        node_rendezvous(environ)


def test_a_machine_of_a_cluster_of_another_size_is_refused(monkeypatch):
    for name, value in vertex_cluster("workerpool1", 0, workers=1).items():
        monkeypatch.setenv(name, value)
    command = mammo_command(["train", "encoder"], processes=8, nodes=2)
    assert command[3:8] == [
        "--nnodes=2",
        "--node-rank=1",
        "--master-addr=cmle-training-workerpool0-1d969d3ba6-0",
        "--master-port=2222",
        "--nproc-per-node=8",
    ]
    with pytest.raises(ValueError, match="runs on 4 machines, but its cluster has 2 nodes"):
        mammo_command(["train", "encoder"], processes=8, nodes=4)


def _artifact(uri: str) -> SimpleNamespace:
    """A KFP artifact as the step's pod sees it: its URL; its local path unused by a job's step."""
    return SimpleNamespace(uri=uri, path="/gcs/not-mounted-in-this-pod")


def _as_kfp_passes_it(value):
    """KFP hands a dict parameter's numbers over as JSON numbers: 1 arrives as 1.0."""
    return json.loads(json.dumps(value), parse_int=float)


def two_machines_placement() -> dict:
    """A Kubeflow step's placement on two GPU machines of one process each, with its PyTorchJob."""
    two_machines = StepHardware(ACCELERATORS["nvidia-l4"], count=1, machines=2)
    return {**two_machines.placement, "job": cluster_job(two_machines, "mammoflow/mammoflow-cuda:0.1.0")}


@pytest.fixture
def kube_api(tmp_path, monkeypatch):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    api = KubeApi(ROOT, env, tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path / "kubeconfig", namespace="mammoflow-runs")))
    monkeypatch.setattr(launcher, "POLL_S", 0.2)
    yield api
    api.close()


def test_a_kubeflow_step_trains_on_two_machines_through_its_pytorchjob_on_gs_shards(small_shards, gcs_bucket, kube_api):
    bucket, client = gcs_bucket
    for path in sorted(Path(small_shards).iterdir()):
        client.bucket(bucket).blob(f"job/shards/{path.name}").upload_from_filename(str(path))
    placement = two_machines_placement()
    settings = {"batch_size": 2, "width": 4, "patch_size": 32, "max_steps": 3, "no_progress": True}
    model = f"gs://{bucket}/job/model"
    metrics = train_stage(
        "finetune",
        _artifact(f"gs://{bucket}/job/shards"),
        _artifact(model),
        None,
        1,
        settings,
        _as_kfp_passes_it(placement),
    )

    [job] = kube_api.created
    assert job["_namespace"] == "mammoflow-runs" and job["metadata"]["name"].startswith("mammoflow-finetune-")
    logs = kube_api.logs[job["metadata"]["name"]]
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert {kind: r["replicas"] for kind, r in replicas.items()} == {"Master": 1, "Worker": 1}
    assert type(replicas["Worker"]["replicas"]) is int  # the API takes whole numbers, not KFP's 1.0
    [container] = replicas["Master"]["template"]["spec"]["containers"]
    assert container["args"] == ["--", "train", "finetune", "--data", f"gs://{bucket}/job/shards", "--out", model,
                                 "--epochs", "1", "--batch-size", "2", "--width", "4", "--patch-size", "32",
                                 "--max-steps", "3", "--no-progress", "--resume"]  # fmt: skip
    assert metrics["step"] == 3, logs
    rows = client.bucket(bucket).blob("job/model/metrics.jsonl").download_as_text().splitlines()
    assert len(rows) == 1 and json.loads(rows[0]) == metrics  # node 0 alone wrote the run, the step read it
    final = client.bucket(bucket).blob("job/model/checkpoints/final.pt").download_as_bytes()
    assert torch.load(io.BytesIO(final), weights_only=True)["step"] == 3
    assert "cpu, 2 process(es)" in logs[0]  # one process on each of two machines, one process group


def test_a_failed_pytorchjob_fails_the_step_naming_the_job(tmp_path, kube_api):
    placement = two_machines_placement()
    shards = _artifact(str(tmp_path / "no-shards-here"))
    with pytest.raises(
        RuntimeError, match=r"PyTorchJob mammoflow-encoder-\w+ failed: replicas exited with \[\d+, \d+\]"
    ):
        train_stage("encoder", shards, _artifact(str(tmp_path / "model")), None, 1, {}, placement)
    [name] = kube_api.logs
    assert "no-shards-here" in kube_api.logs[name][0]  # the replica's own log says why


def test_a_replica_without_a_command_or_a_rendezvous_says_what_it_needs(monkeypatch):
    for name in ("CLUSTER_SPEC", "MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit, match="give the mammo command after --"):
        replica.main(["--nodes", "2"])
    with pytest.raises(SystemExit, match="--processes 0 --nodes 1: give 1 or more"):
        replica.main(["--processes", "0", "--", "train", "encoder"])
    with pytest.raises(SystemExit, match="replica: this machine is one node of several, but nothing says where"):
        replica.main(["--nodes", "2", "--", "train", "encoder"])


EPOCHS = 12  # 4 steps each: long enough to be stopped half way


def test_a_kubeflow_job_restarted_mid_run_ends_with_the_weights_of_a_run_never_stopped(
    small_shards, tmp_path, kube_api
):
    """Both machines killed at a random step and started again (a machine lost): the step's ``--resume``
    takes them on from the last checkpoint to the weights, optimizer and schedule of an uninterrupted job."""
    placement = two_machines_placement()
    settings = {"batch_size": 2, "width": 8, "patch_size": 32, "checkpoint_every": 1, "no_progress": True}

    def run(name: str) -> dict:
        out = tmp_path / name
        train_stage("autoencoder", _artifact(small_shards), _artifact(str(out)), None, EPOCHS, settings, placement)
        return torch.load(out / "checkpoints" / "final.pt", weights_only=True)

    whole = run("whole")
    kill_after = random.Random().randint(2, whole["step"] // 2)
    kube_api.restart_when = lambda: latest_step(tmp_path / "restarted") >= kill_after
    restarted = run("restarted")
    assert len(kube_api.restarts) == 1, "the job finished before it could be restarted"
    [name] = kube_api.restarts
    resumed = re.search(r"resumed from \S+ at epoch \d+, batch \d+ \(step (\d+)\)", kube_api.logs[name][0])
    assert resumed and kill_after <= int(resumed[1]) < whole["step"], kube_api.logs[name][0][-2000:]
    assert_same_training_state(restarted, whole, f"a restart at step {resumed[1]}")
    rows = [json.loads(line) for line in (tmp_path / "restarted" / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == list(range(1, EPOCHS + 1))  # node 0 alone wrote, each epoch once


@pytest.mark.parametrize("moment", ["while the job is created", "while it waits for the job"])
def test_a_step_stopped_deletes_its_job(small_shards, tmp_path, kube_api, moment):
    """A run cancelled: the step's pod gets SIGTERM, before it heard the job exists or while it waits for
    it; the job goes, and its machines stop."""
    job = two_machines_placement()["job"]
    args = ["train", "encoder", "--data", small_shards, "--out", str(tmp_path / "model"), "--epochs", "500"]
    if moment == "while the job is created":
        kube_api.answer_creates.clear()
    step = subprocess.Popen(
        [sys.executable, "-c", STEP_POD, json.dumps(job), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )

    def reached() -> bool:
        if moment == "while the job is created":
            return bool(kube_api.created)
        return any(method == "GET" for method, _ in kube_api.requests)

    deadline = time.monotonic() + 120
    while not reached() and step.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    [started] = kube_api.created
    step.send_signal(signal.SIGTERM)
    assert step.wait(timeout=60) != 0
    kube_api.answer_creates.set()
    name = started["metadata"]["name"]
    assert kube_api.deleted == [name], step.stderr.read() if step.stderr else ""
    assert all(replica.poll() is not None for replica in kube_api.replicas[name])


STEP_POD = """
import json, sys
from mammolibs.pipeline.launcher import run_job
run_job(json.loads(sys.argv[1]), sys.argv[2:], "mammoflow-encoder")
"""
