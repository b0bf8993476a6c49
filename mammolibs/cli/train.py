"""``mammo train STAGE``: the training scripts' command line."""

from __future__ import annotations

import argparse

from mammolibs.train import STAGE_SPECS


def _train(args: argparse.Namespace) -> int:
    from mammolibs.train.cli import main as train_main

    train_main(args.stage, args.flags, prog=f"mammo train {args.stage}")
    return 0


def add_train_command(commands: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """``mammo train STAGE``."""
    tr = commands.add_parser(
        "train",
        help="run one training stage (the train/ scripts' command line)",
        description="Run a training stage: 'mammo train STAGE --help' lists its flags. The same "
        "as the scripts under train/; under torchrun: torchrun --nproc-per-node=N -m mammolibs.cli "
        "train STAGE ...",
    )
    tr.add_argument(
        "stage",
        choices=tuple(STAGE_SPECS),
        help="; ".join(f"{name}: {spec.learns}" for name, spec in STAGE_SPECS.items()),
    )
    tr.add_argument("flags", nargs=argparse.REMAINDER, help="the stage's flags, e.g. --data shards/ --out runs/encoder")
    tr.set_defaults(run=_train)
