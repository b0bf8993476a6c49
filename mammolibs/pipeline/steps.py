"""The work behind each pipeline component: the ``mammo`` command line, run in the step's container.

Each step runs ``python -m mammolibs.cli ...`` (under ``torchrun`` when a step has several GPUs), so a
pipeline step does exactly what the same command does on a workstation, and its log is that command's.
"""

from __future__ import annotations

import json
import subprocess
import sys

from mammolibs import storage
from mammolibs.data.shard_set import ShardSet
from mammolibs.train import RECIPE
from mammolibs.train.monitor import METRICS

STANDARDIZE_OK = (0, 3)
"""``mammo standardize`` exit statuses a step accepts: all written, or some rejected (see rejects.jsonl)."""


def parse_source(entry: str) -> tuple[str, str]:
    """``"mias=/data/mias"`` -> ``("mias", "/data/mias")``."""
    name, sep, url = entry.partition("=")
    if not sep or not name or not url:
        raise ValueError(f"source {entry!r} must read NAME=URL, e.g. mias=gs://bucket/mini-MIAS")
    return name, url


def mammo_command(args: list[str], processes: int = 1) -> list[str]:
    """The command line that runs ``mammo ARGS`` in this interpreter, under torchrun for several processes."""
    if processes > 1:
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={processes}",
            "-m",
            "mammolibs.cli",
            *args,
        ]
    return [sys.executable, "-m", "mammolibs.cli", *args]


def run_mammo(args: list[str], processes: int = 1, accept: tuple[int, ...] = (0,)) -> int:
    """Run ``mammo ARGS``; its output goes to the step's log. Fails, saying which command, unless its
    status is accepted."""
    command = mammo_command(args, processes)
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


def whole_numbers(settings: dict) -> dict:
    """KFP passes dict values as JSON numbers, so 2 arrives as 2.0: make such floats ints again."""
    return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in settings.items()}


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
    stage: str, data: str, out: str, init: str | None, epochs: int, settings: dict, processes: int = 1
) -> dict:
    """Train one stage with ``processes`` processes (one per GPU); returns the last epoch's metrics."""
    args = ["train", stage, "--data", data, "--out", out, *train_flags(epochs, settings)]
    run_mammo(args + (["--init", init] if init else []), processes)
    return json.loads(storage.read_text(storage.join(out, METRICS)).splitlines()[-1])


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
