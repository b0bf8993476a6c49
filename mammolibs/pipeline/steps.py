"""The work behind each pipeline component, kept here so that ``components/`` stays a few lines each."""
from __future__ import annotations

import json

from mammolibs.data.standardize import standardize
from mammolibs.train.cli import main as train_main


def parse_sources(sources: list[str]) -> list[tuple[str, str]]:
    """``["mias=/data/mias", "dicom=gs://b/cbis"]`` -> ``[("mias", "/data/mias"), ("dicom", ...)]``."""
    pairs = []
    for entry in sources:
        name, sep, folder = entry.partition("=")
        if not sep or not folder:
            raise ValueError(f"source {entry!r} must read NAME=FOLDER, e.g. mias=/data/mias")
        pairs.append((name, folder))
    return pairs


def standardize_step(sources: list[str], output: str, image_size: int, workers: int = 1) -> dict:
    result = standardize(parse_sources(sources), output, image_size=image_size, workers=workers, progress=False)
    if not result.written:
        raise ValueError(f"nothing was standardized from {sources}; see {output}/rejects.jsonl")
    return result.manifest


def train_step(stage: str, data: str, out: str, init: str | None, settings: dict) -> str:
    """Run one training stage with ``settings`` (flag name -> value) and return its final checkpoint."""
    argv = ["--data", data, "--out", out]  # no terminal in a pipeline step: progress comes as log lines
    for flag, value in settings.items():
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # KFP passes dict values as JSON numbers: 2 arrives as 2.0
        argv += [f"--{flag.replace('_', '-')}", str(value)]
    if init:
        argv += ["--init", init]
    return train_main(stage, argv).final_checkpoint


def evaluate_step(data: str, unet: str, classifier: str, out: str) -> dict:
    """Evaluate on the test split (the validation split when the test split is empty)."""
    from mammolibs.data.manifest import read_manifest
    from mammolibs.evaluate.metrics import evaluate

    splits = read_manifest(data)["counts"]["split"]
    metrics = evaluate(data, unet, classifier, out, split="test" if splits.get("test") else "val")
    print(json.dumps(metrics, indent=2))
    return metrics


def scalar_metrics(metrics: dict) -> dict[str, float]:
    """Flatten the numeric metrics for KFP's Metrics artifact (``segmentation.dice`` ...)."""
    return {f"{group}.{name}": float(value) for group in ("segmentation", "classification")
            for name, value in metrics[group].items() if isinstance(value, (int, float))}
