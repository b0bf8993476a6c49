"""The quality benchmark's report: figures over seeds and folds, intervals, goals, convergence flags."""

from __future__ import annotations

import json

import pytest

from benchmarks import quality


def _group(dice: float, auroc: float, normal_flagged: float | None = None) -> dict:
    return {
        "segmentation": {
            "dice": {"mean": dice, "ci95": [dice - 0.05, dice + 0.05]},
            "normal_images_with_findings": normal_flagged,
        },
        "detection": {"points": {"0.5": 0.9}},
        "image_level": {
            "malignant_vs_benign": {"auroc": auroc, "auroc_ci95": [auroc - 0.1, auroc + 0.1]},
            "malignant_vs_rest": {"sensitivity": 0.5, "specificity": 0.9},
        },
        "lesion_level": None,
    }


def _run(seed: int, experiment: str, group: str, sources: dict[str, tuple[float, float]], gain: float = 0.0) -> dict:
    point = {"unet_threshold": 0.5, "lesion_threshold": 0.3, "malignancy_threshold": 0.5, "tradeoff": []}
    metrics = {
        arm: {
            "overall": {},
            "sources": {s: _group(d + (0.1 if arm == "recipe" else 0.0), a) for s, (d, a) in sources.items()},
            "scanners": {f"{s} GE LOGIQ 7": {**_group(d / 2, a), "images": 9} for s, (d, a) in sources.items()},
            "operating_point": point,
        }
        for arm in quality.ARMS
    }
    curve = {
        "values": [0.1, 0.2, 0.3, 0.3 + gain],
        "best": 0.3 + gain,
        "last_fifth_gain": gain,
        "converged": gain <= 0.01,
        "seconds": 300.0,
    }
    return {
        "seed": seed,
        "experiment": experiment,
        "group": group,
        "metrics": metrics,
        "curves": {"recipe U-Net": curve},
        "pretraining_curves": {"encoder": {**curve, "seconds": 60.0}},
    }


def test_figures_are_averaged_over_folds_then_seeds_and_the_goals_read_the_recipe(tmp_path):
    runs = [
        _run(0, "BUSI -> BUS-BRA", "across", {"bus-bra": (0.60, 0.70)}),
        _run(1, "BUSI -> BUS-BRA", "across", {"bus-bra": (0.70, 0.80)}, gain=0.05),
        _run(0, "within, fold 1 of 2", "within", {"busi": (0.5, 0.6), "bus-bra": (0.7, 0.8)}),
        _run(0, "within, fold 2 of 2", "within", {"busi": (0.7, 0.8), "bus-bra": (0.9, 0.9)}),
    ]
    across = "BUSI -> BUS-BRA (another hospital)"
    assert quality.values(runs, across, "recipe", quality.FIGURES["Dice"]) == pytest.approx([0.7, 0.8])
    assert quality.cell(runs, across, "recipe", "Dice") == "0.750 ± 0.050 [0.70, 0.80]"
    assert quality.values(
        runs, "within BUSI + BUS-BRA: BUSI", "no pretraining", quality.FIGURES["Dice"]
    ) == pytest.approx([0.6])
    assert quality.values(runs, "BUS-BRA -> BUSI (another hospital)", "recipe", quality.FIGURES["Dice"]) == []
    goals = {text: (value, met) for text, value, met in quality.goals(runs)}
    assert goals["BUSI -> BUS-BRA Dice >= 0.75"] == (pytest.approx(0.75), True)
    assert goals["within: BUSI Dice >= 0.78"] == (pytest.approx(0.7), False)
    margin = goals[f"{across}: recipe Dice ahead of every peer and of no pretraining by >= 0.03"]
    assert margin == (pytest.approx(0.1), True)
    assert goals["pretraining ahead of no pretraining by >= 0.02 Dice across datasets"] == (pytest.approx(0.1), True)

    result = {
        "mode": "standard",
        "note": "a note",
        "image_size": 64,
        "schedule": {},
        "folds": 2,
        "machine": "CPU",
        "command": "python benchmarks/quality.py",
        "wall_seconds": 600.0,
        "training_seconds": quality.training_seconds(runs),
        "runs": runs,
    }
    (tmp_path / "quality-standard.json").write_text(json.dumps(result))
    quality.write_report(tmp_path)
    report = (tmp_path / "quality.md").read_text()
    assert "## standard mode: 64 px, 2 seed(s)" in report and "## quick mode: not run yet" in report
    assert "3 of 4 training runs converged" in report and "seed 1, BUSI -> BUS-BRA: recipe U-Net" in report
    assert "| BUSI -> BUS-BRA Dice >= 0.75 | 0.750 | yes |" in report
    assert result["training_seconds"] == {0: 60 + 3 * 300, 1: 60 + 300}  # seed 0 trained three experiments
    assert "10.0 min this invocation. Training (pretraining included, scoring not) took 16.0 min for seed 0, " in report
    assert "6.0 min for seed 1; less wall time than that means this invocation reused runs" in report
    assert "| GE LOGIQ 7 (9) | 0.325 / 0.750 |" in report  # per scanner: Dice / AUROC, means over seeds
    assert (tmp_path / "quality.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "quality-curves.png").read_bytes()[:4] == b"\x89PNG"


def test_a_run_still_gaining_in_its_last_fifth_of_epochs_is_not_converged(tmp_path):
    (tmp_path / "benchmark-seconds.json").write_text("12.5")
    rows = [
        {"epoch": e, "val_dice": d} for e, d in enumerate([0.2, 0.5, 0.6, 0.62, 0.64, 0.65, 0.655, 0.66, 0.7, 0.75], 1)
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    found = quality.curve(str(tmp_path), "finetune")
    assert found["last_fifth_gain"] == pytest.approx(0.75 - 0.66) and not found["converged"]
    rows[-2:] = [{"epoch": 9, "val_dice": 0.665}, {"epoch": 10, "val_dice": None}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    found = quality.curve(str(tmp_path), "finetune")
    assert found["converged"] and found["best"] == 0.665 and found["seconds"] == 12.5
