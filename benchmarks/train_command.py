"""Benchmark of the real training command against its step alone: does the data keep up?

    python benchmarks/train_command.py     # writes benchmarks/results/train_command-<device>.md

Runs the default finetune command (``mammo train finetune`` with its default settings but for
``--workers``) on real mini-MIAS films and BUSI frames standardized at 512 px, for ``--steps`` steps,
with 0 and 2 loader worker processes, and reads the images/s and the share of time spent waiting for
data that the engine logs (TensorBoard ``train/images_per_s`` and ``train/data_wait``, medians over
its log intervals). Baseline in the same run: the same step on ready tensors of the same shape
(``benchmarks/train_step.py``'s measurement). Goal: the command at >= 70% of the step alone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.train_step import device_name, measure  # noqa: E402
from mammolibs.data.standardize import standardize  # noqa: E402
from mammolibs.train import distributed  # noqa: E402
from mammolibs.train.allocator import keep_freed_memory  # noqa: E402
from mammolibs.train.config import DEFAULT_PATCH, TrainConfig  # noqa: E402

SHARED = Path(os.environ.get("MAMMOFLOW_SHARED_DATA", REPO.parent / "shared" / "data"))
GOAL = 0.7


def shards(work: Path, films: int, frames: int) -> str:
    """The first ``films`` mini-MIAS films and ``frames`` BUSI frames of each class at 512 px (kept)."""
    out = work / f"shards-{films}-{frames}"
    if (out / "manifest.json").exists():
        return str(out)
    folders = work / "inputs"
    mias = folders / "mias"
    mias.mkdir(parents=True, exist_ok=True)
    for film in sorted((SHARED / "mias").glob("mdb*.pgm"))[:films]:
        shutil.copy(film, mias)
    shutil.copy(SHARED / "mias" / "Info.txt", mias)
    busi = folders / "busi" / "Dataset_BUSI_with_GT"
    for label in ("benign", "malignant", "normal"):
        (busi / label).mkdir(parents=True, exist_ok=True)
        found = sorted(
            p for p in (SHARED / "busi" / "Dataset_BUSI_with_GT" / label).glob("*.png") if "_mask" not in p.name
        )
        for frame in found[:frames]:
            for part in frame.parent.glob(f"{frame.stem}*.png"):  # the frame and its masks
                shutil.copy(part, busi / label)
    standardize(
        [("mias", str(mias)), ("busi", str(busi.parent))],
        str(out),
        image_size=512,
        salt="train command benchmark on public data",  # public data: a fixed salt keeps the shards resumable
        workers=2,
        progress=False,
    )
    return str(out)


def run_command(data: str, workers: int, steps: int) -> dict[str, float]:
    """The finetune command's medians of images/s and data wait over its log intervals."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mammolibs.train.engine import fit

    with tempfile.TemporaryDirectory() as out:
        fit("finetune", TrainConfig(data=data, out=out, max_steps=steps, workers=workers, progress=False, log_every=5))
        events = EventAccumulator(str(Path(out) / "tensorboard")).Reload()
        speed = [e.value for e in events.Scalars("train/images_per_s")][1:]  # the first interval starts the loader
        wait = [e.value for e in events.Scalars("train/data_wait")][1:]
    return {"images_per_s": float(np.median(speed)), "data_wait": float(np.median(wait))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--films", type=int, default=100, help="mini-MIAS films [100: all]")
    parser.add_argument("--frames", type=int, default=60, help="BUSI frames of each class [60]")
    parser.add_argument("--steps", type=int, default=30, help="steps of each command run (one epoch) [30]")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="loader worker counts to run [0 2]")
    parser.add_argument("--work", default=str(REPO / "benchmarks" / "scratch" / "train_command"), help="shards (kept)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="folder for the report")
    args = parser.parse_args(argv)
    data = shards(Path(args.work), args.films, args.frames)
    runtime = distributed.start_runtime()
    if runtime.device.type == "cpu":
        keep_freed_memory()  # as the engine does on a CPU: both sides with the same allocator setting
    defaults = TrainConfig(data="", out="")
    step_args = argparse.Namespace(
        image_size=DEFAULT_PATCH, batch_size=defaults.batch_size, width=16, snip_size=64, steps=10, warmup=3
    )
    step = measure("finetune", "fp32 eager", runtime, step_args)["images_per_s"]
    commands = {workers: run_command(data, workers, args.steps) for workers in args.workers}
    lines = [
        f"# Benchmark: the finetune command against its step alone, {device_name(runtime)}",
        "",
        f"Command: `python benchmarks/train_command.py` ({args.films} mini-MIAS films and {args.frames} BUSI "
        f"frames of each class at 512 px; the finetune command's defaults: {DEFAULT_PATCH} px patches, batch "
        f"{defaults.batch_size}, width 16, strong augmentation; {args.steps} steps per run, medians over its "
        f"log intervals after the first). Step alone on ready tensors of that shape: **{step:.1f} images/s**. "
        f"Goal: the command at >= {GOAL:.0%} of it.",
        "",
        "| loader workers | command, images/s | share of the step alone | time waiting for data | goal |",
        "|---|---|---|---|---|",
    ]
    for workers, found in commands.items():
        share = found["images_per_s"] / step
        lines.append(
            f"| {workers} | {found['images_per_s']:.1f} | {share:.0%} | {found['data_wait']:.0%} | "
            f"{'met' if share >= GOAL else 'NOT met'} |"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    kind = runtime.device.type
    (out / f"train_command-{kind}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
