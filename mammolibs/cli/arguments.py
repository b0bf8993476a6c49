"""Argument types and flags that several commands share."""

from __future__ import annotations

import argparse

from mammolibs.inference import BACKENDS

DEVICES = ("auto", "cpu", "cuda")
DEVICE_HELP = "where the PyTorch models run: cuda, cpu, or auto (cuda when there is one); ONNX runs on the CPU"


def positive_int(text: str) -> int:
    """An argparse type: a whole number above zero (``--image-size 0`` is refused, exit status 2)."""
    return _whole_number(text, least=1)


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number, zero or more."""
    return _whole_number(text, least=0)


def positive_float(text: str) -> float:
    """An argparse type: a finite number above zero (seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number above zero")
    return value


def _whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{value} must be {'above zero' if least == 1 else f'at least {least}'}")
    return value


def add_chain_flags(parser: argparse.ArgumentParser, default: str) -> None:
    """The models of the chain, as predict and serve take them (``default``: where they are when not given;
    empty: they must be given)."""
    where = f" [default: {default}]" if default else ""
    for flag, stage in (("--unet", "the finetune stage"), ("--classifier", "the classifier stage")):
        parser.add_argument(
            flag,
            required=not default,
            help=f"checkpoint (.pt) or --out folder of {stage}; or {flag[2:]}.onnx / the 'mammo export' folder{where}",
        )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="torch: the checkpoints in PyTorch; onnx: the exported files in onnxruntime; auto: onnx "
        "when both --unet and --classifier are exported files",
    )
    parser.add_argument("--device", choices=DEVICES, default="auto", help=DEVICE_HELP)
    parser.add_argument(
        "--operating-point",
        help="operating_point.json (or the evaluation folder holding it) [default: the one 'mammo evaluate' stored "
        "beside the classifier, or the one stored in the export; 0.5 thresholds without one]",
    )
