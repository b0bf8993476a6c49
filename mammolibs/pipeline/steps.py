"""The work behind each pipeline component: the ``mammo`` command line, run in the step's container.

Each step runs ``python -m mammolibs.cli ...`` (under ``torchrun`` when a step has several GPUs, as one
node of several on several machines), so a pipeline step does exactly what the same command does on a
workstation, and its log is that command's.
"""

from __future__ import annotations

import json
import operator
import subprocess
import sys
from typing import Any, Protocol

from mammolibs import storage
from mammolibs.data.shard_set import ShardSet
from mammolibs.pipeline.rendezvous import node_rendezvous
from mammolibs.train import RECIPE
from mammolibs.train.monitor import METRICS


class Artifact(Protocol):
    """A KFP artifact as a step sees it: its URL and, where the step's pod holds it, its local path."""

    uri: str
    path: str


STANDARDIZE_OK = (0, 3)
"""``mammo standardize`` exit statuses a step accepts: all written, or some rejected (see rejects.jsonl)."""


def parse_source(entry: str) -> tuple[str, str]:
    """``"mias=/data/mias"`` -> ``("mias", "/data/mias")``."""
    name, sep, url = entry.partition("=")
    if not sep or not name or not url:
        raise ValueError(f"source {entry!r} must read NAME=URL, e.g. mias=gs://bucket/mini-MIAS")
    return name, url


def mammo_command(args: list[str], processes: int = 1, nodes: int = 1) -> list[str]:
    """The command line that runs ``mammo ARGS`` in this interpreter; under torchrun for several
    processes, as one node of ``nodes`` (its rank and node 0's address from :func:`node_rendezvous`)."""
    if processes == nodes == 1:
        return [sys.executable, "-m", "mammolibs.cli", *args]
    if nodes > 1:
        meeting = node_rendezvous()
        if meeting.nodes != nodes:
            raise ValueError(f"this step runs on {nodes} machines, but its cluster has {meeting.nodes} nodes")
        where = meeting.torchrun_flags()
    else:
        where = ["--standalone"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", *where, f"--nproc-per-node={processes}"]
    return [*torchrun, "-m", "mammolibs.cli", *args]


def run_mammo(args: list[str], processes: int = 1, accept: tuple[int, ...] = (0,), nodes: int = 1) -> int:
    """Run ``mammo ARGS``; its output goes to the step's log. Fails, saying which command, unless its
    status is accepted."""
    command = mammo_command(args, processes, nodes)
    status = subprocess.run(command, check=False).returncode
    if status not in accept:
        raise RuntimeError(f"'{' '.join(command)}' exited with status {status}; its log above says why")
    return status


def standardize_source(source: str, output: str, image_size: int, workers: int, salt_file: str = "") -> dict:
    """Standardize one ``NAME=URL`` source into ``output`` with the salt in ``salt_file`` (else the step's
    ``$MAMMOFLOW_SALT``); returns its manifest. The salt file must exist: sources standardized in
    parallel must share one salt, so none of them may make it."""
    name, url = parse_source(source)
    salt = []
    if salt_file:
        if not storage.exists(salt_file):
            raise ValueError(
                f"salt file {salt_file} does not exist: make it once before the run (for example "
                "'python -c \"import secrets; print(secrets.token_urlsafe(32))\" > salt') in a place "
                "only the pipeline can read"
            )
        salt = ["--salt-file", salt_file]
    run_mammo(
        [
            "standardize",
            "--source",
            name,
            "--input",
            url,
            "--output",
            output,
            "--image-size",
            str(image_size),
            "--workers",
            str(workers),
            "--no-progress",
            *salt,
        ],
        accept=STANDARDIZE_OK,
    )
    return ShardSet.open(output).manifest


def merge_shard_sets(inputs: list[str], output: str) -> dict:
    run_mammo(["data", "merge", "--output", output, "--no-progress", *inputs])
    return ShardSet.open(output).manifest


def whole_numbers(value: Any) -> Any:
    """KFP passes the numbers in a dict as JSON numbers, so 2 arrives as 2.0: make such floats ints again,
    at any depth (a job's replica counts)."""
    if isinstance(value, dict):
        return {key: whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [whole_numbers(item) for item in value]
    return int(value) if isinstance(value, float) and value.is_integer() else value


def train_flags(epochs: int, settings: dict) -> list[str]:
    """``--epochs N`` and one flag per setting (``{"batch_size": 8}`` -> ``--batch-size 8``)."""
    if "epochs" in settings:
        raise ValueError("give the epochs of a stage through the pipeline's <stage>_epochs parameter, not its settings")
    flags = ["--epochs", str(epochs)]
    for name, value in whole_numbers(settings).items():
        if value is True:
            flags.append(f"--{name.replace('_', '-')}")
        elif value is not False:
            flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags


def train_stage(
    stage: str, shards: Artifact, model: Artifact, init: Artifact | None, epochs: int, settings: dict, placement: dict
) -> dict:
    """Train one stage on the step's machines (``placement``: processes and nodes, or the Kubernetes job
    that runs it there); returns the last epoch's metrics. The job's machines read and write the
    artifacts at their URLs; a step that trains here, at their local paths. A step started again (a
    machine lost, the job restarted) resumes from its last checkpoint, as ``--resume`` does."""
    placement = whole_numbers(placement)
    job = placement.get("job")
    where = operator.attrgetter("uri" if job else "path")
    args = ["train", stage, "--data", where(shards), "--out", where(model), *train_flags(epochs, settings)]
    args += ["--init", where(init)] if init else []
    args += [] if "resume" in settings else ["--resume"]  # a step the platform restarts goes on from its checkpoint
    if job:
        from mammolibs.pipeline.launcher import run_job

        run_job(job, args, f"mammoflow-{stage}")
    else:
        run_mammo(args, placement["processes"], nodes=placement["nodes"])
    return json.loads(storage.read_text(storage.join(where(model), METRICS)).splitlines()[-1])


def evaluate_models(data: str, unet: str, classifier: str, out: str) -> dict:
    """Evaluate on the test split (the validation split when the test split is empty); returns the metrics.
    The operating point is stored beside the classifier, where ``mammo predict`` finds it."""
    split = "test" if ShardSet.open(data).counts["split"].get("test") else "val"
    run_mammo(
        [
            "evaluate",
            "--data",
            data,
            "--unet",
            unet,
            "--classifier",
            classifier,
            "--out",
            out,
            "--split",
            split,
            "--no-progress",
        ]
    )
    return json.loads(storage.read_text(storage.join(out, "metrics.json")))


def predict_images(images: str, unet: str, classifier: str, out: str) -> dict:
    """``mammo predict --input`` of a folder or URL of images (rejects are listed, not failures); returns
    how many images were predicted and rejected."""
    run_mammo(
        ["predict", "--input", images, "--unet", unet, "--classifier", classifier, "--out", out, "--no-progress"],
        accept=(0, 3),
    )
    lines = {
        name: storage.read_text(storage.join(out, name)).splitlines() for name in ("findings.jsonl", "rejects.jsonl")
    }
    return {"predicted": len(lines["findings.jsonl"]), "rejected": len(lines["rejects.jsonl"])}


def recipe_schedule(parameters: dict) -> dict[str, dict]:
    """Each recipe step's settings from the pipeline's parameters: ``<step>_epochs`` and the settings group
    the step names (:class:`mammolibs.train.Step`)."""
    return {
        step: {**whole_numbers(parameters.get(spec.settings) or {}), "epochs": parameters[f"{step}_epochs"]}
        for step, spec in RECIPE.items()
    }


def generalize(shard_sets: list[str], out: str, parameters: dict) -> dict:
    """``mammo generalize`` of the per-source shard sets, with the pipeline's epochs and settings of each
    recipe step (:func:`recipe_schedule`)."""
    schedule = recipe_schedule(parameters)
    run_mammo(["generalize", *shard_sets, "--out", out, "--schedule", json.dumps(schedule)])
    return json.loads(storage.read_text(storage.join(out, "generalization.json")))


def scalar_metrics(metrics: dict) -> dict[str, float]:
    """The numbers of every group (``all`` and each source) flattened for KFP's Metrics artifact, e.g.
    ``all.segmentation.dice.mean`` or ``busi.image_level.malignant_vs_rest.auroc``."""
    flat: dict[str, float] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key not in ("confusion_matrix", "warning"):
                    walk(f"{prefix}.{key}", inner)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[prefix] = float(value)

    for name, group in [("all", metrics["overall"]), *metrics["sources"].items()]:
        walk(name, group)
    return flat
