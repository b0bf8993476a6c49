"""The KFP pipeline compiles to YAML and runs for real with kfp.local on real files."""
from __future__ import annotations

import json

import yaml

from components import IMAGE
from mammolibs.pipeline.local import demo_sources, run_local, summarize_run
from mammolibs.pipeline.steps import parse_sources
from pipelines.mammoflow import main as pipeline_main
from pipelines.mammoflow import mammoflow

STEPS = ["standardize", "train-encoder", "train-autoencoder", "finetune-unet", "train-classifier", "evaluate"]


def test_pipeline_compiles_with_every_step_in_order(tmp_path):
    output = tmp_path / "mammoflow.yaml"
    pipeline_main(["compile", "--output", str(output)])
    spec = yaml.safe_load(output.read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == sorted(STEPS)
    assert tasks["train-autoencoder"]["dependentTasks"] == ["standardize", "train-encoder"]
    assert sorted(tasks["evaluate"]["dependentTasks"]) == ["finetune-unet", "standardize", "train-classifier"]
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {IMAGE}


def test_sources_are_name_equals_folder():
    assert parse_sources(["mias=/d/mias", "dicom=gs://b/x"]) == [("mias", "/d/mias"), ("dicom", "gs://b/x")]


def test_pipeline_runs_locally_end_to_end(mias_subset, tmp_path):
    sources = demo_sources(str(tmp_path), mias=str(mias_subset))
    tiny = {"epochs": 1, "batch_size": 4, "width": 4}
    run_local(mammoflow, {"sources": sources, "image_size": 64, "pretrain_settings": tiny,
                          "finetune_settings": tiny, "classifier_settings": {"epochs": 1, "batch_size": 8}},
              str(tmp_path / "kfp"))
    [run] = list((tmp_path / "kfp").iterdir())
    manifest = json.loads((run / "standardize" / "shards" / "manifest.json").read_text())
    assert manifest["counts"]["source"] == {"mias": 24, "dicom": 8}
    for step in ("train-encoder", "train-autoencoder", "finetune-unet", "train-classifier"):
        assert (run / step / "model" / "checkpoints" / "final.pt").stat().st_size > 0
        assert list((run / step / "model" / "tensorboard").glob("events.out.tfevents.*"))
    metrics = json.loads((run / "evaluate" / "report" / "metrics.json").read_text())
    assert 0.0 <= metrics["segmentation"]["dice"] <= 1.0 and metrics["classification"]["snips"] > 0
    summary = summarize_run(str(tmp_path / "kfp"))
    assert str(run / "evaluate" / "report" / "metrics.json") in summary and f"tensorboard --logdir {run}" in summary
