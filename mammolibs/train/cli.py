"""The command line shared by the four training scripts: flags, YAML config, then :func:`fit`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from typing import TYPE_CHECKING

import yaml

from mammolibs.data import AUGMENTATIONS
from mammolibs.logs import add_verbosity_flags, configure_logging
from mammolibs.models.catalog import DEFAULT_WIDTH, MODEL_NAMES
from mammolibs.train import STAGE_SPECS
from mammolibs.train.config import DEFAULT_PATCH, PRECISIONS, TrainConfig

if TYPE_CHECKING:
    from mammolibs.train.engine import TrainResult

DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}
TUNABLE = [  # flag, type, meaning; defaults come from TrainConfig
    ("--batch-size", int, "samples per step on each replica (a GPU, a CPU process or a TPU core)"),
    ("--lr", float, "peak learning rate of AdamW, cosine decay"),
    ("--weight-decay", float, "AdamW weight decay"),
    (
        "--width",
        int,
        "base channel width of segmentation models (ignored by resnet18); by default the --init "
        f"checkpoint's, else {DEFAULT_WIDTH}",
    ),
    (
        "--patch-size",
        int,
        "side of the mammogram patches that encoder, autoencoder and finetune see (finetune: about "
        "half on a lesion; whole films predicted by sliding window); ultrasound frames are resized "
        "whole to it; 0, or a side not below the image's: whole images. By default the --init "
        f"checkpoint's, else {DEFAULT_PATCH}",
    ),
    ("--augment", str, "finetune's augmentation: " + "; ".join(f"{k}: {v}" for k, v in AUGMENTATIONS.items())),
    ("--snip-size", int, "side of classifier snips in pixels"),
    ("--seed", int, "random seed"),
    ("--max-steps", int, "cap on steps per epoch, 0 = no cap"),
    (
        "--workers",
        int,
        "DataLoader worker processes per training process; worth it where views augment on the CPU "
        "(encoder, classifier), not for reading alone (0: read in the training process)",
    ),
    ("--precision", str, "auto (bf16 on TPU and GPU, fp32 on CPU), fp32, bf16, or fp16 (CUDA, with a grad scaler)"),
    (
        "--xla-cache",
        str,
        "torch-xla (PJRT_DEVICE) only: local folder of the persistent compilation cache, so a resumed or "
        "restarted run loads its compiled programs instead of compiling again; empty: <out>/xla-cache for a "
        "local --out, else ~/.cache/mammoflow/xla; off: no cache",
    ),
    ("--log-every", int, "steps between reading the loss: TensorBoard scalars, log lines, non-finite check"),
    (
        "--checkpoint-every",
        int,
        "steps between checkpoints/latest.pt (also written at each epoch's end); 0 = epochs only",
    ),
]
CHOICES = {"--augment": list(AUGMENTATIONS), "--precision": list(PRECISIONS)}


def get_args_parser(stage: str, prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=f"mammoflow training stage '{stage}'. Runs unchanged on CPU, one GPU, several GPUs or "
        "CPU processes (torchrun --nproc_per_node=N), and TPU (PJRT_DEVICE=TPU: every local core, SPMD).",
        epilog="Writes checkpoints/{latest,best,final}.pt, tensorboard/, metrics.jsonl and config.json under --out. "
        "A killed run continues exactly where it was with the same command plus --resume.",
    )
    parser.add_argument("--config", help="YAML file of defaults (keys are these flags' names with _); flags win")
    parser.add_argument("--data", help="URL of standardized shards (the --output of 'mammo standardize')")
    parser.add_argument("--out", help="URL for checkpoints, TensorBoard logs, metrics.jsonl and config.json")
    parser.add_argument(
        "--epochs",
        "--it",
        type=int,
        default=None,
        help=f"passes over the training split (--it is the older name) [default {DEFAULTS['epochs']}]",
    )
    parser.add_argument(
        "--init",
        "--pretrain",
        "--encoder",
        "--autoencoder",
        dest="init",
        default=None,
        help=f"weights to start from: {STAGE_SPECS[stage].init}. --pretrain, --encoder and "
        "--autoencoder are older names of this flag",
    )
    parser.add_argument(
        "--resume", action="store_true", default=None, help="continue from <out>/checkpoints/latest.pt when it exists"
    )
    parser.add_argument(
        "--model",
        choices=STAGE_SPECS[stage].models(),
        default=None,
        help=f"the network [default: the --init checkpoint's, else {STAGE_SPECS[stage].default_model}]: "
        + "; ".join(f"{name}: {MODEL_NAMES[name][1]}" for name in STAGE_SPECS[stage].models()),
    )
    for flag, kind, text in TUNABLE:
        default = DEFAULTS[flag[2:].replace("-", "_")]
        parser.add_argument(
            flag,
            type=kind,
            default=None,
            choices=CHOICES.get(flag),
            help=text if default is None else f"{text} [default {default}]",
        )
    parser.add_argument(
        "--compile", action="store_true", default=None, help="torch.compile the model (CUDA; XLA compiles anyway)"
    )
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        default=None,
        help="no progress bar or progress log lines (a terminal gets a bar, a log file plain lines)",
    )
    add_verbosity_flags(parser)
    return parser


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """Defaults <- YAML file <- command-line flags; unknown YAML keys and missing URLs fail loudly."""
    known = {f.name for f in fields(TrainConfig)}
    values: dict = {}
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            values = yaml.safe_load(f) or {}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SystemExit(f"{args.config}: unknown keys {unknown}; allowed: {sorted(known)}")
    values.update({k: v for k, v in vars(args).items() if k in known and v is not None})
    missing = [k for k in ("data", "out") if not values.get(k)]
    if missing:
        raise SystemExit(
            "missing " + ", ".join(f"--{m}" for m in missing) + ": say where the shards are and where to write"
        )
    return TrainConfig(**values)


def main(stage: str, argv: list[str] | None = None, prog: str | None = None) -> TrainResult:
    """Parse ``argv`` for ``stage`` and train it (``prog``: the command's name in usage lines)."""
    parser = get_args_parser(stage, prog)
    args = parser.parse_args(argv)
    from mammolibs.train.engine import fit  # after --help, which needs no torch

    configure_logging(args.verbosity)
    try:
        result = fit(stage, resolve_config(args))
    except (FileNotFoundError, ValueError) as err:  # bad data, folders or checkpoints: one line, exit status 2
        print(f"{parser.prog}: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"{stage}: final checkpoint at {result.final_checkpoint}")
    return result
