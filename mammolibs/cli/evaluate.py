"""``mammo evaluate`` (one model, or several side by side) and ``mammo generalize`` (the matrix)."""

from __future__ import annotations

import argparse
import sys

from mammolibs.train import RECIPE, default_epochs


def _evaluate(args: argparse.Namespace) -> int:
    from mammolibs.evaluate.compare import compare
    from mammolibs.evaluate.evaluation import evaluate
    from mammolibs.evaluate.report import headline, warnings_of

    options = {
        "split": args.split,
        "calibrate_on": args.calibrate_on,
        "target_specificity": args.target_specificity,
        "seed": args.seed,
        "save_operating_point": not args.no_save_operating_point,
        "progress": not args.no_progress,
    }
    if args.compare:
        if args.unet or args.classifier:
            raise ValueError("give --compare RUN ... or --unet and --classifier, not both")
        result = compare(args.data, args.compare, args.out, **options)
        for row, figures in result["figures"].items():
            print(f"{row}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
        print(f"side by side in {args.out.rstrip('/')}/comparison.html")
        return 0
    if not (args.unet and args.classifier):
        raise ValueError("give --unet and --classifier (or --compare RUN ...)")
    metrics = evaluate(args.data, args.unet, args.classifier, args.out, **options)
    for name, group in [("all sources", metrics["overall"]), *metrics["sources"].items()]:
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in headline(group).items()))
    for warning in warnings_of(metrics):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"metrics in {args.out.rstrip('/')}/metrics.json, report in {args.out.rstrip('/')}/report.html")
    return 0


def _generalize(args: argparse.Namespace) -> int:
    from mammolibs.evaluate.generalization import generalization
    from mammolibs.train.recipe import check_schedule, default_schedule

    schedule = default_schedule()
    for stage, settings in _schedule(args.schedule).items():
        schedule.setdefault(stage, {}).update(settings)
    summary = generalization(args.shard_sets, args.out, check_schedule(schedule), split=args.split, seed=args.seed)
    for figure, matrix in summary["matrices"].items():
        print(figure)
        for name, cells in matrix.items():
            print(
                f"  trained on {name}: "
                + ", ".join(f"{s} {'n/a' if v is None else f'{v:.3f}'}" for s, v in cells.items())
            )
    print(f"matrices in {args.out.rstrip('/')}/generalization.html")
    return 0


def _schedule(text: str | None) -> dict:
    """A schedule from inline JSON or a YAML/JSON file: {step: {epochs: N, setting: value}}."""
    import yaml

    if not text:
        return {}
    if not text.lstrip().startswith("{"):
        with open(text, encoding="utf-8") as f:
            text = f.read()
    schedule = yaml.safe_load(text)
    if not isinstance(schedule, dict) or not all(isinstance(v, dict) for v in schedule.values()):
        raise ValueError('--schedule: expected {step: {setting: value}}, e.g. \'{"finetune": {"epochs": 5}}\'')
    return schedule


def add_evaluate_command(commands: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """``mammo evaluate``."""
    ev = commands.add_parser(
        "evaluate",
        formatter_class=fmt,
        help="score the U-Net -> classifier chain per source",
        description="Score the deployed chain (the U-Net finds lesions, the classifier scores "
        "them) on held-out patients, overall and per source: Dice/IoU, detection (FROC), "
        "image-level and lesion-level AUROC with bootstrap 95% intervals, sensitivity and "
        "specificity at an operating point chosen on the validation split. Writes metrics.json, "
        "operating_point.json, roc.png, segmentation sheets and report.html.",
    )
    ev.add_argument(
        "--data",
        required=True,
        nargs="+",
        help="URLs of standardized shard sets to score (several: "
        "one model scored on each source, e.g. one trained on CBIS-DDSM scored on INbreast)",
    )
    ev.add_argument("--unet", help="U-Net checkpoint (.pt) or the finetune stage's --out folder (its best.pt)")
    ev.add_argument(
        "--classifier",
        help="classifier checkpoint (.pt) or the --out folder of the classifier "
        "(snips) or whole_image stage (its best.pt)",
    )
    ev.add_argument(
        "--compare",
        nargs="+",
        metavar="RUN",
        help="score several models side by side instead: each RUN "
        "a folder holding finetune/ and classifier/, or UNET,CLASSIFIER",
    )
    ev.add_argument("--out", required=True, help="folder or URL for metrics.json, report.html and pictures")
    ev.add_argument("--split", default="test", choices=("train", "val", "test"), help="which split to score")
    ev.add_argument(
        "--calibrate-on",
        nargs="+",
        metavar="URL",
        help="shard sets whose val split sets the operating "
        "point [default: --data]; give the training data's when scoring a dataset the model never saw",
    )
    ev.add_argument(
        "--target-specificity",
        type=float,
        default=0.9,
        help="specificity (malignant vs rest, per image) the malignancy threshold is chosen for",
    )
    ev.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals and of normal-tissue snips")
    ev.add_argument(
        "--no-save-operating-point",
        action="store_true",
        help="do not store operating_point.json beside the classifier (mammo predict reads it there)",
    )
    ev.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    ev.set_defaults(run=_evaluate)


def add_generalize_command(commands: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """``mammo generalize``."""
    gen = commands.add_parser(
        "generalize",
        formatter_class=fmt,
        help="train on each source and all but one, score on every source: the matrix",
        description="Does the model work on a dataset it never saw? Trains the recipe (encoder, "
        "autoencoder, finetune, classifier) on each source alone, on all, and on all but one, "
        "then scores each model on every source's held-out patients. Writes "
        "generalization.json and generalization.html (matrices) and each run's report.",
    )
    gen.add_argument(
        "shard_sets",
        nargs="+",
        help="standardized shard sets: one per source, e.g. the 'mammo "
        "standardize' outputs for CBIS-DDSM, INbreast and VinDr-Mammo, or a merged set (split by source here)",
    )
    gen.add_argument("--out", required=True, help="folder or URL for merged data, runs, evaluations and the matrices")
    gen.add_argument(
        "--schedule",
        help="epochs and settings per step of the recipe over the defaults ("
        + ", ".join(f"{step} {default_epochs(step)}" for step in RECIPE)
        + ' epochs): inline JSON, e.g. \'{"finetune": {"epochs": 5, "batch_size": 4}}\', or a YAML file',
    )
    gen.add_argument("--split", default="test", choices=("val", "test"), help="which split of each source to score")
    gen.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals")
    gen.set_defaults(run=_generalize)
