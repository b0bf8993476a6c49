"""The four stages, chained as the pipeline chains them, on real films and DICOMs for a few steps."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mammolibs.data.images import read_grey
from mammolibs.data.standard_form import breast_region
from mammolibs.evaluate.evaluation import evaluate
from mammolibs.inference.chain import load_models
from mammolibs.inference.predict import predict
from mammolibs.models import create_model
from mammolibs.train.checkpoints import load_model
from mammolibs.train.cli import get_args_parser, main
from tests.conftest import REPO


def _rows(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("stage", ["encoder", "autoencoder", "finetune", "classifier"])
def test_each_stage_writes_reloadable_checkpoints_logs_and_finite_losses(runs, stage):
    out = runs / stage
    for which in ("latest", "best", "final"):
        assert (out / "checkpoints" / f"{which}.pt").stat().st_size > 0
    model, checkpoint = load_model(str(out))
    assert checkpoint["stage"] == stage and checkpoint["step"] > 0 and "optimizer" in checkpoint
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert json.loads((out / "config.json").read_text())["width"] == 4
    assert all(math.isfinite(row["train_loss"]) for row in _rows(out))


def test_autoencoder_started_from_the_encoder(runs):
    encoder = torch.load(runs / "encoder" / "checkpoints" / "final.pt", weights_only=True)["model"]
    autoencoder = torch.load(runs / "autoencoder" / "checkpoints" / "final.pt", weights_only=True)["model"]
    fresh = create_model("basic_unet", width=4).state_dict()  # what a U-Net starting from scratch holds
    for key in ("conv_0.conv_0.conv.weight", "down_4.convs.conv_1.conv.weight"):
        pretrained = encoder[f"net.{key}"]
        assert (autoencoder[f"net.{key}"] - pretrained).abs().mean() < 0.5 * (fresh[key] - pretrained).abs().mean()


def test_classifier_started_from_the_autoencoder_encoder(runs):
    autoencoder = torch.load(runs / "autoencoder" / "checkpoints" / "final.pt", weights_only=True)
    classifier = torch.load(runs / "classifier" / "checkpoints" / "final.pt", weights_only=True)
    assert (classifier["model_name"], classifier["model_role"]) == ("basic_unet", "classifier")
    fresh = create_model("basic_unet", width=4).state_dict()
    key = "conv_0.conv_0.conv.weight"
    pretrained = autoencoder["model"][f"net.{key}"]
    assert (classifier["model"][f"net.{key}"] - pretrained).abs().mean() < 0.5 * (fresh[key] - pretrained).abs().mean()


def test_finetune_overfits_a_little(runs):
    rows = _rows(runs / "finetune")
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]


def test_evaluate_writes_metrics_in_range(runs, small_shards, tmp_path):
    metrics = evaluate(
        small_shards, str(runs / "finetune"), str(runs / "classifier"), str(tmp_path / "eval"), split="test"
    )
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    overall = metrics["overall"]
    seg = overall["segmentation"]
    assert seg["lesion_images"] > 0 and 0.0 <= seg["dice"]["mean"] <= 1.0
    assert 0.0 <= seg["iou"]["mean"] <= seg["dice"]["mean"]
    assert set(metrics["sources"]) == {"mias"}  # the DICOMs are unlabelled: not scored
    assert metrics["sources"]["mias"]["images"] == overall["images"]
    lesions = overall["lesion_level"]
    assert lesions["cases"] > lesions["positives"] > 0
    assert metrics["unet"]["url"].endswith("finetune/checkpoints/best.pt")
    point = json.loads((runs / "classifier" / "operating_point.json").read_text())
    assert (
        point == metrics["operating_point"]
        and point["unet_threshold"] in [0.1 * i for i in range(1, 10)]
        or point["unet_threshold"] == pytest.approx(round(point["unet_threshold"], 1))
    )
    page = (tmp_path / "eval" / "report.html").read_text()
    assert "Figures per source" in page and "not a medical device" in page


def test_predict_writes_an_overlay_and_lesions_in_original_pixels(runs, mias_subset, tmp_path):
    point = tmp_path / "point.json"  # U-Net threshold 0: every pixel is lesion, one finding, kept whatever its class
    point.write_text(json.dumps({"unet_threshold": 0.0, "lesion_threshold": 0.0, "malignancy_threshold": 0.5}))
    report = predict(
        str(mias_subset / "mdb012.pgm"),
        load_models(str(runs / "finetune"), str(runs / "classifier"), operating_point=str(point)),
        str(tmp_path),
    )
    assert len(report["lesions"]) == 1
    lesion = report["lesions"][0]
    top, bottom, left, right = breast_region(read_grey(str(mias_subset / "mdb012.pgm")))
    assert lesion["box"] == [left, top, right, bottom] and 0.0 <= lesion["malignancy"] <= 1.0
    assert report["malignancy"] == lesion["malignancy"]
    assert report["called_malignant"] == (lesion["malignancy"] >= report["operating_point"]["malignancy_threshold"])
    assert sum(lesion["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    from PIL import Image

    assert Image.open(tmp_path / "mdb012.overlay.png").size == (1024, 1024)  # the original film, full size
    mask = np.asarray(Image.open(tmp_path / report["mask"]))
    assert mask.shape == (1024, 1024) and set(np.unique(mask)) == {0, 255}  # binary, at the original's resolution
    rows, columns = np.nonzero(mask)
    assert [columns.min(), rows.min(), columns.max() + 1, rows.max() + 1] == lesion["box"]  # the finding's pixels
    assert json.loads((tmp_path / "mdb012.lesions.json").read_text())["lesions"] == report["lesions"]


def test_help_explains_every_flag():
    parser = get_args_parser("finetune")
    for action in parser._actions:
        assert action.help, action.option_strings
    text = parser.format_help()
    for alias in ("--pretrain", "--encoder", "--autoencoder", "--it"):
        assert alias in text
    assert all(flag in text for flag in ("--data", "--out", "--epochs", "--batch-size", "--lr", "--init", "--resume"))


def test_missing_locations_fail_with_what_to_set():
    with pytest.raises(SystemExit, match="--data"):
        main("encoder", ["--out", "somewhere"])


def test_a_train_script_given_a_missing_folder_says_so_in_one_line(tmp_path):
    script = REPO / "train" / "unet" / "finetune.py"
    done = subprocess.run(
        [sys.executable, str(script), "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"finetune.py: {tmp_path / 'absent'}/manifest.json not found: run "
        f"'mammo standardize --output {tmp_path / 'absent'}' first"
    )


def test_onnx_export_matches_pytorch_and_predicts_the_same(runs, mias_subset, tmp_path):
    import onnx
    import onnxruntime

    from mammolibs.inference.export import export_onnx

    paths = export_onnx(str(runs / "finetune"), str(runs / "classifier"), str(tmp_path / "onnx"))
    for role, stage in (("unet", "finetune"), ("classifier", "classifier")):
        model, checkpoint = load_model(str(runs / stage))
        exported = onnx.load(paths[role])
        meta = json.loads({p.key: p.value for p in exported.metadata_props}["mammoflow"])
        assert meta["image_size"] == checkpoint["image_size"] and "unet_threshold" in meta["operating_point"]
        session = onnxruntime.InferenceSession(paths[role], providers=["CPUExecutionProvider"])
        batch = torch.rand(5, 1, meta["input_side"], meta["input_side"])  # another batch size than exported with
        with torch.no_grad():
            expected = model(batch).numpy()
        assert np.abs(session.run(None, {"image": batch.numpy()})[0] - expected).max() < 1e-4
    film = str(mias_subset / "mdb012.pgm")
    by_torch = predict(film, load_models(str(runs / "finetune"), str(runs / "classifier")), str(tmp_path / "torch"))
    exported = load_models(str(tmp_path / "onnx"), str(tmp_path / "onnx"))
    assert exported.backend == "onnx" and exported.cards[0]["run"] == "finetune"
    by_onnx = predict(film, exported, str(tmp_path / "onnx-out"))
    assert by_onnx["malignancy"] == pytest.approx(by_torch["malignancy"], abs=1e-4)
    assert [f["box"] for f in by_onnx["lesions"]] == [f["box"] for f in by_torch["lesions"]]
    fake = tmp_path / "fake.onnx"
    fake.write_bytes((runs / "finetune" / "config.json").read_bytes())
    with pytest.raises(ValueError, match="not an ONNX file written by 'mammo export'"):
        load_models(str(fake), str(tmp_path / "onnx"), backend="onnx")
