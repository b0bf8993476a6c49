"""``mammo evaluate``, ``predict``, ``--compare`` and ``generalize`` on real films and ultrasound images:
per-source figures, checkpoints checked before any work, the operating point stored and used, the
cross-dataset matrix."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from mammolibs.cli import main as mammo
from mammolibs.data.folds import fold_of, write_fold, write_source, write_split, write_test, write_unlabelled
from mammolibs.data.manifest import read_manifest
from mammolibs.data.shard_set import ShardSet
from mammolibs.data.shards import StandardSample, stack_images
from mammolibs.evaluate.evaluation import (
    MIN_CASES,
    choose_operating_point,
    choose_thresholds,
    evaluate,
    malignant_share,
)
from mammolibs.evaluate.generalization import generalization
from mammolibs.inference.chain import load_models
from mammolibs.inference.detector import Detector
from mammolibs.inference.predict import predict


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mammolibs.cli", *args], capture_output=True, text=True, timeout=300)


def test_a_classifier_given_as_unet_is_refused_in_one_line_before_any_work(runs, small_shards, tmp_path):
    started = time.perf_counter()
    done = run_cli(
        "evaluate",
        "--data",
        small_shards,
        "--unet",
        str(runs / "classifier"),
        "--classifier",
        str(runs / "classifier"),
        "--out",
        str(tmp_path),
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "stage 'classifier', but --unet takes 'finetune'" in line
    assert time.perf_counter() - started < 15 and not (tmp_path / "metrics.json").exists()


def test_checkpoints_of_another_image_size_or_damaged_are_refused(runs, small_shards, tmp_path):
    checkpoint = torch.load(runs / "finetune" / "checkpoints" / "best.pt", weights_only=True)
    torch.save({**checkpoint, "image_size": 256}, tmp_path / "big.pt")
    with pytest.raises(ValueError, match="trained on 256-pixel images, but the data has 64-pixel"):
        evaluate(small_shards, str(tmp_path / "big.pt"), str(runs / "classifier"), str(tmp_path / "out"))
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    done = run_cli(
        "evaluate",
        "--data",
        small_shards,
        "--unet",
        str(tmp_path / "broken.pt"),
        "--classifier",
        str(runs / "classifier"),
        "--out",
        str(tmp_path / "out"),
    )
    assert done.returncode == 2 and "broken.pt: not a readable mammoflow checkpoint" in done.stderr


def test_best_checkpoint_is_the_epoch_of_the_best_validation_dice(runs):
    rows = [json.loads(line) for line in (runs / "finetune" / "metrics.jsonl").read_text().splitlines()]
    best = torch.load(runs / "finetune" / "checkpoints" / "best.pt", weights_only=True)
    scored = [r for r in rows if r["val_dice"] is not None]
    assert scored, "the val split has lesion images: every epoch gets a Dice"
    top = max(scored, key=lambda r: r["val_dice"])
    assert best["validation"]["val_dice"] == top["val_dice"] and best["epoch"] == top["epoch"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(runs / "finetune" / "tensorboard")).Reload()
    assert [e.value for e in events.Scalars("epoch/val_dice")] == pytest.approx([r["val_dice"] for r in scored])


def test_evaluate_scores_each_source_and_stores_the_operating_point(
    runs, small_shards, busi_shards, busbra_shards, tmp_path
):
    out = tmp_path / "eval"
    stored = runs / "classifier" / "operating_point.json"
    before = stored.stat().st_mtime_ns if stored.exists() else None
    metrics = evaluate(
        [small_shards, busi_shards, busbra_shards],
        str(runs / "finetune"),
        str(runs / "classifier"),
        str(out),
        split="test",
        calibrate_on=[small_shards],
        save_operating_point=False,
    )
    assert set(metrics["sources"]) == {"mias", "busi", "bus-bra"}
    scanners = {f"bus-bra {name}": 6 for name in ("GE LOGIQ 5", "GE LOGIQ 7", "TOSHIBA APLIO 300", "U-SYSTEMS")}
    assert {name: group["images"] for name, group in metrics["scanners"].items()} == scanners  # BUS-BRA's four
    assert metrics["sources"]["bus-bra"]["images"] == 24
    busi = metrics["sources"]["busi"]
    test_busi = [s for s in ShardSet.open(busi_shards).samples("test")]
    assert busi["images"] == len(test_busi)
    assert busi["segmentation"]["normal_images"] == sum(s.label == "normal" for s in test_busi)
    assert metrics["overall"]["images"] == busi["images"] + metrics["sources"]["mias"]["images"] + 24
    assert metrics["operating_point"]["calibrated_on"] == [small_shards]
    assert (stored.stat().st_mtime_ns if stored.exists() else None) == before  # not saved: left as it was
    page = (out / "report.html").read_text()
    assert "<th>busi</th>" in page and "<th>mias</th>" in page and "segmentation-busi.png" in page
    assert "Figures per scanner" in page and "<th>bus-bra TOSHIBA APLIO 300</th>" in page
    assert (out / "segmentation-busi.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "tradeoff.png").read_bytes()[:4] == b"\x89PNG" and "tradeoff.png" in page
    assert (out / "dice-histogram.png").read_bytes()[:4] == b"\x89PNG" and "dice-histogram.png" in page
    three = metrics["overall"]["image_level"]["three_class"]
    assert sum(map(sum, three["confusion_matrix"]["matrix"])) == metrics["overall"]["images"]
    assert "Three classes, all sources" in page and "macro F1" in page
    share = malignant_share([ShardSet.open(small_shards)])  # a handful of validation films: the prior, said
    assert 0 < share < 1 and f"Malignancy threshold from the prior {share:.3f} (the training data&#x27;s" in page


def test_predict_uses_the_operating_point_stored_with_the_classifier(runs, small_shards, mias_subset, tmp_path):
    evaluate(small_shards, str(runs / "finetune"), str(runs / "classifier"), str(tmp_path / "eval"))
    stored = json.loads((runs / "classifier" / "operating_point.json").read_text())
    report = predict(
        str(mias_subset / "mdb012.pgm"), load_models(str(runs / "finetune"), str(runs / "classifier")), str(tmp_path)
    )
    assert report["operating_point"]["unet_threshold"] == stored["unet_threshold"]
    assert report["operating_point"]["malignancy_threshold"] == stored["malignancy_threshold"]
    (tmp_path / "strict.json").write_text(json.dumps({"unet_threshold": 0.0, "malignancy_threshold": 1.0}))
    strict = predict(
        str(mias_subset / "mdb012.pgm"),
        load_models(str(runs / "finetune"), str(runs / "classifier"), operating_point=str(tmp_path / "strict.json")),
        str(tmp_path),
    )
    assert len(strict["lesions"]) == 1 and strict["called_malignant"] is (strict["malignancy"] >= 1.0)
    for bad in (2, "0.5", True, None, [0.5]):  # out of range, or no number (it would fail every prediction later)
        (tmp_path / "bad.json").write_text(json.dumps({"unet_threshold": bad, "malignancy_threshold": 0.5}))
        with pytest.raises(ValueError, match=r"bad.json: thresholds must be numbers in \[0, 1\]"):
            load_models(str(runs / "finetune"), str(runs / "classifier"), operating_point=str(tmp_path / "bad.json"))


def test_compare_puts_runs_side_by_side(runs, small_shards, tmp_path):
    assert (
        mammo(
            [
                "evaluate",
                "--data",
                small_shards,
                "--out",
                str(tmp_path),
                "--no-save-operating-point",
                "--compare",
                str(runs),
                f"{runs / 'finetune'},{runs / 'classifier'}",
            ]
        )
        == 0
    )
    comparison = json.loads((tmp_path / "comparison.json").read_text())
    assert len(comparison["runs"]) == 2
    rows = comparison["figures"]
    first, second = (rows[f"{run} / all sources"] for run in comparison["runs"])
    assert first == second  # the same models on the same data
    assert (tmp_path / "run-1" / "report.html").exists() and "Models side by side" in (
        tmp_path / "comparison.html"
    ).read_text()


def test_folds_keep_patients_together_and_cover_everyone_once(small_shards, tmp_path):
    samples = [s for split in ("train", "val", "test") for s in ShardSet.open(small_shards).samples(split)]
    tested = []
    for fold in range(3):
        write_fold(small_shards, str(tmp_path / f"fold{fold}"), 3, fold)
        manifest = read_manifest(str(tmp_path / f"fold{fold}"))
        assert manifest["written"] == len(samples) and manifest["fold"]["fold"] == fold
        by_split = {
            split: ShardSet.open(str(tmp_path / f"fold{fold}")).samples(split) for split in ("train", "val", "test")
        }
        patients = {split: {s.meta["patient"] for s in found} for split, found in by_split.items()}
        assert not patients["test"] & (patients["train"] | patients["val"]) and not patients["train"] & patients["val"]
        assert all(fold_of(p, 3) == fold for p in patients["test"])
        tested += [s.key for s in by_split["test"]]
    assert sorted(tested) == sorted(s.key for s in samples)  # every sample tested exactly once


def test_copies_for_training_scoring_and_pretraining_keep_every_sample_and_its_bytes(small_shards, tmp_path):
    samples = {s.key: s for split in ("train", "val", "test") for s in ShardSet.open(small_shards).samples(split)}
    write_split(small_shards, str(tmp_path / "train"))
    write_test(small_shards, str(tmp_path / "test"))
    write_unlabelled(small_shards, str(tmp_path / "unlabelled"))
    training = {split: ShardSet.open(str(tmp_path / "train")).samples(split) for split in ("train", "val", "test")}
    assert not training["test"] and len(training["train"]) + len(training["val"]) == len(samples)
    patients = {split: {s.meta["patient"] for s in found} for split, found in training.items()}
    assert training["val"] and not patients["train"] & patients["val"]  # patients kept together
    scored = ShardSet.open(str(tmp_path / "test")).samples("test")
    assert sorted(s.key for s in scored) == sorted(samples)
    assert all(
        np.array_equal(s.image, samples[s.key].image) and s.meta["label"] == samples[s.key].label for s in scored
    )
    unlabelled = [
        s for split in ("train", "val", "test") for s in ShardSet.open(str(tmp_path / "unlabelled")).samples(split)
    ]
    assert len(unlabelled) == len(samples) and {s.label for s in unlabelled} == {"unknown"}
    assert read_manifest(str(tmp_path / "unlabelled"))["counts"]["label"] == {"unknown": len(samples)}
    with pytest.raises(ValueError, match="val fraction"):
        write_split(small_shards, str(tmp_path / "bad"), val_fraction=1.0)


def test_generalization_matrix_on_real_films_and_ultrasound(small_shards, busi_shards, tmp_path):
    mixed = str(tmp_path / "mias-only")
    write_source(small_shards, mixed, "mias")  # drop the unlabelled DICOMs: one source per set
    tiny = {  # the matrix's shape is checked here, not its figures: a few steps of each stage
        "encoder": {"epochs": 1, "batch_size": 4, "width": 4, "max_steps": 2},
        "autoencoder": {"epochs": 1, "batch_size": 4, "width": 4, "max_steps": 2},
        "finetune": {"epochs": 1, "batch_size": 4, "width": 4, "max_steps": 2},
        "classifier_encoder": {"epochs": 1, "batch_size": 4, "width": 4, "max_steps": 2, "model": "basic_unet"},
        "classifier": {"epochs": 1, "batch_size": 8, "snip_size": 32, "max_steps": 2},
    }  # (the classifier's own ResNet-18 would write 100 MB checkpoints for nothing checked here)
    summary = generalization([mixed, busi_shards], str(tmp_path / "matrix"), tiny)
    assert summary["sources"] == ["busi", "mias"]
    for figure, matrix in summary["matrices"].items():
        assert set(matrix) == {"busi", "mias", "all"} and all(set(row) == {"busi", "mias"} for row in matrix.values())
        # with two sources, the model that never saw mias is the one trained on busi alone
        assert summary["leave_one_source_out"][figure] == {
            "mias": matrix["busi"]["mias"],
            "busi": matrix["mias"]["busi"],
        }
    auroc = summary["matrices"]["AUROC malignant vs rest"]
    assert all(v is None or 0.0 <= v <= 1.0 for row in auroc.values() for v in row.values())
    assert summary["runs"]["all"]["trained_on"] == ["busi", "mias"]
    assert summary["runs"]["busi"]["operating_point"]["calibrated_on"] == [busi_shards]
    page = (tmp_path / "matrix" / "generalization.html").read_text()
    assert "trained on busi" in page and "never saw it" in page


def test_whole_image_baseline_trains_and_scores_images(runs, small_shards, tmp_path):
    from mammolibs.train.cli import main as train
    from tests.conftest import COMMON

    train("whole_image", ["--data", small_shards, "--out", str(tmp_path / "whole"), "--epochs", "2"] + COMMON)
    checkpoint = torch.load(tmp_path / "whole" / "checkpoints" / "final.pt", weights_only=True)
    assert checkpoint["stage"] == "whole_image" and checkpoint["model_kwargs"] == {"num_classes": 2}
    rows = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert all("val_auroc" in row for row in rows)
    metrics = evaluate(
        small_shards,
        str(runs / "finetune"),
        str(tmp_path / "whole"),
        str(tmp_path / "eval"),
        save_operating_point=False,
    )
    overall = metrics["overall"]
    assert overall["lesion_level"] is None  # no snips: the baseline scores whole images
    image = overall["image_level"]["malignant_vs_rest"]
    assert image["cases"] == overall["images"] > 0 and metrics["classifier"]["stage"] == "whole_image"


class _Brightness(torch.nn.Module):
    """'U-Net': bright pixels are lesion (logit = 20 * (pixel - 0.5))."""

    def forward(self, x):
        return 20 * (x - 0.5)


class _Contrast(torch.nn.Module):
    """'Snip classifier': a snip whose brightest pixel is dim (< 0.8) is normal tissue, else a lesion."""

    def forward(self, x):
        peak = x.flatten(1).max(dim=1).values
        return torch.stack([40 * (0.8 - peak), torch.zeros_like(peak), 40 * (peak - 0.8)], dim=1)


def _sample(label: str, value: float, box: tuple[int, int, int, int] | None) -> StandardSample:
    pixels, lesions = np.zeros((64, 64), np.uint16), np.zeros((64, 64), np.uint8)
    if box:
        pixels[box[1] : box[3], box[0] : box[2]] = int(value * 65535)
        lesions[box[1] : box[3], box[0] : box[2]] = label != "normal"
    meta = {"label": label, "localized": True, "source": "test", "modality": "US"}
    return StandardSample(f"{label}-{value}", pixels, lesions, meta)


def test_the_classifier_vets_findings_without_losing_the_lesions_the_unet_found():
    lesions = [_sample("malignant", 1.0, (10, 10, 30, 30)), _sample("benign", 0.95, (30, 30, 50, 44))]
    normals = [_sample("normal", 0.65, (20, 20, 40, 40)), _sample("normal", 0.7, (5, 40, 25, 60))]  # dim blobs
    detector = Detector(_Brightness(), _Contrast(), snip_size=32)
    chosen = choose_thresholds(detector, lesions + normals)
    assert chosen["unet_threshold"] == 0.5 and chosen["lesion_threshold"] == 0.95  # lesions sure, blobs not
    assert chosen["validation_dice"] == pytest.approx(1.0) and chosen["validation_normal_images_clean"] == 1.0
    curve = {point["lesion_threshold"]: point for point in chosen["tradeoff"]}  # the validation trade-off
    assert (curve[0.0]["lesions_found"], curve[0.0]["normal_images_flagged"]) == (1.0, 1.0)  # every blob a finding
    assert (curve[0.9]["lesions_found"], curve[0.9]["normal_images_flagged"]) == (1.0, 0.0)
    found = detector.find(stack_images(lesions + normals))
    assert [len(findings) for _, _, findings, _ in found] == [1, 1, 0, 0]
    doubtful = [_sample("benign", 0.78, (30, 30, 50, 44))]  # a true lesion the classifier finds 39% likely a lesion
    chosen = choose_thresholds(detector, lesions[:1] + doubtful + normals)
    assert chosen["lesion_threshold"] == 0.35 and chosen["validation_dice"] == pytest.approx(1.0)  # kept, blobs not


def test_a_malignancy_threshold_is_chosen_on_validation_only_with_enough_cases_of_each_class(caplog):
    detector = Detector(_Brightness(), _Contrast(), snip_size=32)
    few = [_sample("malignant", 1.0, (10, 10, 30, 30))] * 3 + [_sample("benign", 0.9, (30, 30, 50, 44))] * 30
    point = choose_operating_point(detector, few, 0.9, prior=0.3)
    assert point["malignancy_threshold"] == 0.3 and "3 malignant and 30 other" in caplog.text
    assert point["malignancy_threshold_from"].startswith("prior 0.300 (the training data's share of malignant")
    enough = few[:1] * MIN_CASES + few[3:]
    point = choose_operating_point(detector, enough, 0.9)
    assert point["malignancy_threshold_from"] == "validation split: 90% specificity"
    assert 0.5 < point["malignancy_threshold"] <= 1.0 and point["chosen_on"]["malignant"] == MIN_CASES
