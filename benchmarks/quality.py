"""Quality benchmark: does the default recipe find cancer better than a plain baseline trained with the
same CPU budget in the same run? Patient-level k-fold cross-validation on the real mini-MIAS films and
BUSI ultrasound images in ``../shared/data`` (``MAMMOFLOW_SHARED_DATA``).

    python benchmarks/quality.py                     # quick: 5 folds, 256 px films, 128 px patches, short schedules
    python benchmarks/quality.py --folds 3           # the first 3 folds of quick (about 46 min on 2 CPU cores)
    python benchmarks/quality.py --full              # 5 folds, 512 px films, 256 px patches, the pipeline's schedules
    python benchmarks/quality.py --generalization    # the matrix "trained on X -> scored on Y" (fold 0)

Arms, each fold, scored by ``mammo evaluate`` on the fold's held-out patients (operating point from
the training patients' val split):

- recipe: encoder -> autoencoder -> finetune (U-Net on lesion-balanced patches, strong augmentation,
  sliding-window inference) and autoencoder -> snip classifier, as the pipeline trains them;
- no encoder (ablation): autoencoder -> finetune and classifier, the same epochs without the encoder stage;
- no pretraining (ablation): the same U-Net and classifier from random weights, each for the time the
  recipe spent on it (the U-Net: its pretraining too);
- baseline: MONAI BasicUNet at its default width (32) from scratch on whole images with BCE + Dice and
  flips, for the recipe's U-Net time, and a MONAI ResNet-18 on whole images (benign vs malignant) for
  the recipe's classifier time.

Writes ``benchmarks/results/quality-<mode>.json`` and rebuilds ``quality.md`` and ``quality.png`` from
every mode's JSON there, so quick and full results stay side by side, labelled.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mammolibs.data.folds import write_fold  # noqa: E402
from mammolibs.data.merge import merge_shard_sets  # noqa: E402
from mammolibs.data.standardize import standardize  # noqa: E402
from mammolibs.evaluate.evaluation import evaluate  # noqa: E402
from mammolibs.evaluate.generalization import generalization  # noqa: E402
from mammolibs.evaluate.report import figure  # noqa: E402
from mammolibs.train.recipe import DEFAULT_EPOCHS, train_recipe, train_within  # noqa: E402

SHARED = Path(os.environ.get("MAMMOFLOW_SHARED_DATA", REPO.parent / "shared" / "data"))
SOURCES = {"mias": "mias", "busi": "busi"}  # reader -> folder under SHARED
ARMS = ("recipe", "no encoder", "no pretraining", "baseline")
PUBLIC_DATA_SALT = "quality benchmark on public data"
"""The benchmark's data are public, so its salt need not be secret: fixed, it keeps the folds the same."""
BASELINE_WIDTH = 32  # MONAI BasicUNet's default features (32, 32, 64, 128, 256, 32)
BASELINE = {"width": BASELINE_WIDTH, "patch_size": 0, "augment": "flip", "model": "basic_unet"}
MODES = {
    "quick": {
        "folds": 5,
        "image_size": 256,
        "schedule": {
            "encoder": {"epochs": 3, "batch_size": 16, "width": 16, "patch_size": 128},
            "autoencoder": {"epochs": 3, "batch_size": 8, "width": 16, "patch_size": 128},
            "finetune": {"epochs": 16, "batch_size": 8, "lr": 3e-3},
            "classifier": {"epochs": 12, "batch_size": 16},
            "whole_image": {"batch_size": 8},
        },
    },
    "full": {
        "folds": 5,
        "image_size": 512,
        "schedule": {
            **{
                stage: {"epochs": DEFAULT_EPOCHS[stage], "batch_size": 8, "width": 16, "patch_size": 256}
                for stage in ("encoder", "autoencoder")
            },
            "finetune": {"epochs": DEFAULT_EPOCHS["finetune"], "batch_size": 8, "lr": 3e-3},
            "classifier": {"epochs": DEFAULT_EPOCHS["classifier"], "batch_size": 16},
            "whole_image": {"batch_size": 8},
        },
    },
}
GOALS = [  # (text, arm, source, figure path, comparison, target)
    ("BUSI Dice >= 0.80", "recipe", "busi", ("segmentation", "dice", "mean"), ">=", 0.80),
    (
        "normal BUSI images with a false finding <= 10%",
        "recipe",
        "busi",
        ("segmentation", "normal_images_with_findings"),
        "<=",
        0.10,
    ),
    (
        "image-level benign/malignant AUROC >= 0.92 on BUSI",
        "recipe",
        "busi",
        ("image_level", "malignant_vs_benign", "auroc"),
        ">=",
        0.92,
    ),
    (
        "image-level benign/malignant AUROC >= 0.80 on mini-MIAS",
        "recipe",
        "mias",
        ("image_level", "malignant_vs_benign", "auroc"),
        ">=",
        0.80,
    ),
]
FIGURES = {  # row -> figure path in a group of metrics.json
    "Dice, mean": ("segmentation", "dice", "mean"),
    "Dice, median": ("segmentation", "dice", "median"),
    "IoU, mean": ("segmentation", "iou", "mean"),
    "normal images with a finding": ("segmentation", "normal_images_with_findings"),
    **{f"detection sensitivity @{rate} FP/image": ("detection", "points", rate) for rate in ("0.25", "0.5", "1", "2")},
    "image AUROC, malignant vs rest": ("image_level", "malignant_vs_rest", "auroc"),
    "image AUROC, malignant vs benign": ("image_level", "malignant_vs_benign", "auroc"),
    "sensitivity at the operating point": ("image_level", "malignant_vs_rest", "sensitivity"),
    "specificity at the operating point": ("image_level", "malignant_vs_rest", "specificity"),
    "lesion AUROC (snips)": ("lesion_level", "auroc"),
}
log = logging.getLogger("quality")


def standardized(work: Path, image_size: int) -> dict[str, str]:
    """One shard set per source (kept between runs: standardize skips what is done)."""
    sets = {}
    for reader, folder in SOURCES.items():
        if not (SHARED / folder).is_dir():
            raise SystemExit(
                f"{SHARED / folder} is absent: set MAMMOFLOW_SHARED_DATA to the folder holding mias/ and busi/"
            )
        out = str(work / f"shards-{reader}-{image_size}")
        standardize(
            [(reader, str(SHARED / folder))],
            out,
            image_size=image_size,
            salt=PUBLIC_DATA_SALT,
            workers=2,
            progress=False,
        )
        sets[reader] = out
    return sets


def run_fold(sets: dict[str, str], fold: int, folds: int, work: Path, schedule: dict) -> dict:
    """Every arm trained and scored on one fold; returns arm -> metrics, plus the seconds each took."""
    fold_sets = {s: str(work / f"fold{fold}" / f"data-{s}") for s in sets}
    for source, url in sets.items():
        write_fold(url, fold_sets[source], folds, fold)
    data = str(work / f"fold{fold}" / "data-all")
    merge_shard_sets(list(fold_sets.values()), data, progress=False)
    runs = work / f"fold{fold}"
    recipe = train_recipe(data, str(runs / "recipe"), schedule)
    spent = recipe["seconds"]
    unet_budget = sum(spent[s] for s in ("encoder", "autoencoder", "finetune"))
    classifier_budget = spent["classifier"]
    no_encoder = train_recipe(
        data, str(runs / "no-encoder"), schedule, stages=("autoencoder", "finetune", "classifier")
    )
    scratch = {"patch_size": schedule["encoder"].get("patch_size"), "width": schedule["encoder"].get("width")}
    no_pretraining = {
        "unet": train_within(
            "finetune",
            data,
            str(runs / "no-pretraining" / "finetune"),
            {**schedule["finetune"], **scratch},
            unet_budget,
        ),
        "classifier": train_within(
            "classifier",
            data,
            str(runs / "no-pretraining" / "classifier"),
            {**schedule["classifier"], **scratch},
            classifier_budget,
        ),
    }
    baseline = {
        "unet": train_within(
            "finetune", data, str(runs / "baseline" / "finetune"), {**schedule["finetune"], **BASELINE}, unet_budget
        ),
        "classifier": train_within(
            "whole_image", data, str(runs / "baseline" / "whole_image"), schedule["whole_image"], classifier_budget
        ),
    }
    seconds = {
        "recipe": {"unet": unet_budget, "classifier": spent["classifier"]},
        "no encoder": {
            "unet": sum(no_encoder["seconds"][s] for s in ("autoencoder", "finetune")),
            "classifier": no_encoder["seconds"]["classifier"],
        },
        **{
            arm: {part: trained[part]["seconds"] for part in ("unet", "classifier")}
            for arm, trained in (("no pretraining", no_pretraining), ("baseline", baseline))
        },
    }
    return {
        "metrics": score_fold(work, fold),
        "seconds": seconds,
        "epochs": {
            f"{arm} {part}": trained[part]["epochs"]
            for arm, trained in (("no pretraining", no_pretraining), ("baseline", baseline))
            for part in ("unet", "classifier")
        },
    }


def score_fold(work: Path, fold: int) -> dict:
    """``mammo evaluate`` of every arm's U-Net and classifier of one fold, on its test patients."""
    runs = work / f"fold{fold}"
    models = {
        "recipe": ("recipe/finetune", "recipe/classifier"),
        "no encoder": ("no-encoder/finetune", "no-encoder/classifier"),
        "no pretraining": ("no-pretraining/finetune", "no-pretraining/classifier"),
        "baseline": ("baseline/finetune", "baseline/whole_image"),
    }
    data = [str(runs / f"data-{source}") for source in SOURCES]
    return {
        arm: evaluate(
            data,
            str(runs / unet),
            str(runs / classifier),
            str(runs / "evaluations" / arm.replace(" ", "-")),
            seed=fold,
            save_operating_point=False,
        )
        for arm, (unet, classifier) in models.items()
    }


def aggregate(fold_metrics: list[dict]) -> dict:
    """arm -> group (all, mias, busi) -> figure -> {"mean", "sd", "folds": [...]}, from each fold's
    ``{arm: {"overall": ..., "sources": ...}}``."""
    table = {}
    for arm in ARMS:
        table[arm] = {}
        for group in ["all", *SOURCES]:
            table[arm][group] = {}
            for row, path in FIGURES.items():
                values = [
                    figure(f[arm]["overall"] if group == "all" else f[arm]["sources"].get(group), path)
                    for f in fold_metrics
                ]
                defined = [v for v in values if v is not None]
                table[arm][group][row] = {
                    "mean": float(np.mean(defined)) if defined else None,
                    "sd": float(np.std(defined)) if len(defined) > 1 else None,
                    "folds": values,
                }
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--full", action="store_true", help="5 folds, 512 px films, 256 px patches, the pipeline's default schedules"
    )
    parser.add_argument(
        "--generalization",
        action="store_true",
        help="instead of cross-validation: the cross-dataset matrix on fold 0's split",
    )
    parser.add_argument("--folds", type=int, help="folds to run (the first N of the mode's k) [all]")
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="score the trained runs of the last run in --work again (after a change to evaluation "
        "alone): keeps its training times, replaces its figures",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="only rebuild quality.md and quality.png from the JSON results in --out",
    )
    parser.add_argument(
        "--work", default=str(REPO / "benchmarks" / "scratch"), help="folder for shards, runs and evaluations"
    )
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="folder for the report")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    logging.getLogger("mammolibs.train.recipe").setLevel(logging.INFO)
    if args.report_only:
        write_report(Path(args.out))
        return 0
    mode = "full" if args.full else "quick"
    settings = MODES[mode]
    work = Path(args.work) / mode
    started = time.perf_counter()
    if args.rescore:
        path = Path(args.out) / f"quality-{mode}.json"
        result = json.loads(path.read_text())
        metrics = [score_fold(work, fold) for fold in range(result["folds_run"])]
        result["fold_metrics"] = [
            {arm: {k: m[arm][k] for k in ("overall", "sources", "operating_point")} for arm in ARMS} for m in metrics
        ]
        result["rescored_in_seconds"] = time.perf_counter() - started
        path.write_text(json.dumps(result, indent=2, default=str).replace(f"{REPO}/", ""))
        write_report(Path(args.out))
        return 0
    sets = standardized(work, settings["image_size"])
    result = {
        "mode": mode,
        "image_size": settings["image_size"],
        "schedule": settings["schedule"],
        "machine": machine(),
        "command": "python benchmarks/quality.py"
        + (" --full" if args.full else "")
        + (f" --folds {args.folds}" if args.folds else ""),
    }
    if args.generalization:
        fold_sets = []
        for source, url in sets.items():
            fold_sets.append(str(work / "generalization-data" / source))
            write_fold(url, fold_sets[-1], settings["folds"], 0)
        result["generalization"] = generalization(fold_sets, str(work / "generalization"), settings["schedule"])
        result["command"] += " --generalization"
        result["folds_of"] = settings["folds"]
        name = f"generalization-{mode}"
    else:
        folds = []
        for fold in range(args.folds or settings["folds"]):
            log.info("fold %d of %d", fold + 1, settings["folds"])
            folds.append(run_fold(sets, fold, settings["folds"], work, settings["schedule"]))
        result.update(
            folds_run=len(folds),
            folds_of=settings["folds"],
            fold_metrics=[
                {arm: {k: f["metrics"][arm][k] for k in ("overall", "sources", "operating_point")} for arm in ARMS}
                for f in folds
            ],
            seconds=[f["seconds"] for f in folds],
            epochs=[f["epochs"] for f in folds],
            test_images=[{g: s["images"] for g, s in f["metrics"]["recipe"]["sources"].items()} for f in folds],
        )
        name = f"quality-{mode}"
    result["wall_seconds"] = time.perf_counter() - started
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # paths under the repository are kept relative to it: the report names no machine's folders
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=str).replace(f"{REPO}/", ""))
    write_report(out)
    print((out / "quality.md").read_text())
    return 0


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU, {os.cpu_count()} cores ({platform.machine()}), torch {torch.__version__}"


def _cell(entry: dict) -> str:
    if entry["mean"] is None:
        return "n/a"
    return f"{entry['mean']:.3f}" + (f" ± {entry['sd']:.3f}" if entry["sd"] is not None else "")


def write_report(out: Path) -> None:
    """``quality.md`` and ``quality.png`` from every ``quality-*.json`` and ``generalization-*.json`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Quality benchmark: patient-level cross-validation on real mini-MIAS and BUSI",
        "",
        "Research software, not a medical device. Figures: mean ± sd over folds of `mammo evaluate` on each "
        "fold's held-out patients (Dice and IoU per lesion image; share of normal images with any finding; "
        "detection sensitivity at 0.25 to 2 false findings per image; image-level AUROC of the chain's malignancy; "
        "sensitivity/specificity at the operating point chosen on the training patients' val split for 90% "
        "specificity; lesion AUROC on snips cut from the true masks). Arms trained with the same CPU budget "
        "in the same run (see `benchmarks/quality.py`).",
        "",
    ]
    for mode in MODES:
        path = out / f"quality-{mode}.json"
        if path.exists():
            lines += report_mode(json.loads(path.read_text()))
        else:
            lines += [
                f"## {mode} mode: not run yet",
                "",
                f"`python benchmarks/quality.py{' --full' if mode == 'full' else ''}`"
                + (
                    " (5 folds, 512 px films, 256 px patches, the pipeline's default schedules) on a GPU, or in "
                    "the background on CPU: several hours per fold on 2 CPU cores, estimated from the quick "
                    "mode's epoch times."
                    if mode == "full"
                    else "."
                ),
                "",
            ]
    for mode in MODES:
        path = out / f"generalization-{mode}.json"
        if path.exists():
            lines += report_generalization(json.loads(path.read_text()))
    (out / "quality.md").write_text("\n".join(lines) + "\n")
    plot(out)


def report_mode(result: dict) -> list[str]:
    table = aggregate(result["fold_metrics"])
    seconds = result["seconds"]
    lines = [
        f"## {result['mode']} mode: {result['folds_run']} of {result['folds_of']} folds, {result['image_size']} px",
        "",
        f"Command: `{result['command']}` on {result['machine']}; {result['wall_seconds'] / 60:.1f} min in all. "
        f"Schedule (epochs and settings per stage): `{json.dumps(result['schedule'])}`. Test images per fold: "
        + "; ".join(", ".join(f"{g} {n}" for g, n in counts.items()) for counts in result["test_images"])
        + ".",
        "",
        "Training time per fold, seconds (U-Net / classifier): "
        + "; ".join(
            f"{arm} " + ", ".join(f"{s[arm]['unet']:.0f}/{s[arm]['classifier']:.0f}" for s in seconds) for arm in ARMS
        )
        + f". Epochs the same time bought: {json.dumps(result['epochs'])}."
        + (
            " Figures scored again on these trained runs after a change to evaluation alone (`--rescore`, "
            f"{result['rescored_in_seconds'] / 60:.1f} min)."
            if "rescored_in_seconds" in result
            else ""
        ),
        "",
    ]
    for group in ["all", *SOURCES]:
        lines += [
            f"### {'all sources' if group == 'all' else group}",
            "",
            "| figure | " + " | ".join(ARMS) + " |",
            "|---|" + "---|" * len(ARMS),
        ]
        lines += [f"| {row} | " + " | ".join(_cell(table[arm][group][row]) for arm in ARMS) + " |" for row in FIGURES]
        lines.append("")
    lines += ["### Goals", "", "| goal | measured | met |", "|---|---|---|"]
    for text, arm, group, path, comparison, target in GOALS:
        row = next(r for r, p in FIGURES.items() if p == path)
        value = table[arm][group][row]["mean"]
        met = value is not None and (value >= target if comparison == ">=" else value <= target)
        lines.append(f"| {text} | {'n/a' if value is None else f'{value:.3f}'} | {'yes' if met else 'NO'} |")
    for other, text in (
        ("baseline", "Dice >= baseline + 0.10 (all sources)"),
        ("no pretraining", "Dice >= no pretraining + 0.10 (all sources; what pretraining adds)"),
    ):
        recipe, theirs = (table[arm]["all"]["Dice, mean"]["mean"] for arm in ("recipe", other))
        gain = None if recipe is None or theirs is None else recipe - theirs
        lines.append(
            f"| {text} | {'n/a' if gain is None else f'{gain:+.3f}'} | "
            f"{'yes' if gain is not None and gain >= 0.10 else 'NO'} |"
        )
    lines += ["", "![quality](quality.png)", ""]
    return lines


def report_generalization(result: dict) -> list[str]:
    summary = result["generalization"]
    lines = [
        f"## Generalization ({result['mode']} mode, split of fold 1 of {result['folds_of']}, {result['image_size']} px)",
        "",
        f"Command: `{result['command']}` on {result['machine']}; {result['wall_seconds'] / 60:.1f} min. Rows: "
        "trained on; columns: scored on (test patients of each source); the last row scores each source with "
        "the model that never saw it.",
        "",
    ]
    for name, matrix in summary["matrices"].items():
        columns = summary["sources"]
        lines += [f"### {name}", "", "| trained on | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        for row, cells in matrix.items():
            lines.append(
                f"| {row} | " + " | ".join("n/a" if cells[c] is None else f"{cells[c]:.3f}" for c in columns) + " |"
            )
        unseen = summary["leave_one_source_out"][name]
        lines.append(
            "| never saw it | "
            + " | ".join("n/a" if unseen.get(c) is None else f"{unseen[c]:.3f}" for c in columns)
            + " |"
        )
        lines.append("")
    return lines


def plot(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [
        json.loads((out / f"quality-{m}.json").read_text()) for m in MODES if (out / f"quality-{m}.json").exists()
    ]
    if not results:
        return
    columns = ("Dice, mean", "image AUROC, malignant vs rest", "image AUROC, malignant vs benign")
    chart, axes = plt.subplots(
        len(results), len(columns), figsize=(4 * len(columns), 3.2 * len(results)), squeeze=False
    )
    for row, result in zip(axes, results):
        table = aggregate(result["fold_metrics"])
        for axis, column in zip(row, columns):
            x = np.arange(1 + len(SOURCES))
            for index, arm in enumerate(ARMS):
                cells = [table[arm][g][column] for g in ["all", *SOURCES]]
                axis.bar(
                    x + index * 0.27,
                    [c["mean"] or 0 for c in cells],
                    0.27,
                    yerr=[c["sd"] or 0 for c in cells],
                    label=arm,
                    capsize=2,
                )
            axis.set_xticks(x + 0.27, ["all", *SOURCES])
            axis.set_ylim(0, 1)
            axis.set_title(f"{column} ({result['mode']})", fontsize=9)
        row[0].legend(fontsize=7)
    chart.tight_layout()
    chart.savefig(out / "quality.png", dpi=100)
    plt.close(chart)


if __name__ == "__main__":
    sys.exit(main())
