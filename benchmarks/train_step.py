"""Benchmark of the training step: images/s of each stage on the current device (CPU, CUDA or XLA).

    python benchmarks/train_step.py      # writes benchmarks/results/train_step-<device>.{md,png}

Each stage runs the engine's own step (forward, loss, backward, AdamW, scheduler) on batches of the
shape it trains on, after warm-up steps, and reports images/s and the CPU time per step (user and
system). Baseline: fp32 eager, measured in the same run. On a GPU also bf16 autocast + channels_last,
and the same + torch.compile (goal >= 2x); on XLA, fp32 and bf16; on a CPU, glibc's default allocator
against the engine's setting that keeps freed memory (:mod:`mammolibs.train.allocator`).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mammolibs.models import create_model  # noqa: E402
from mammolibs.train import distributed  # noqa: E402
from mammolibs.train.allocator import keep_freed_memory  # noqa: E402
from mammolibs.train.engine import TrainConfig, build_optimizer, train_step  # noqa: E402
from mammolibs.train.stages import STAGES  # noqa: E402

GLIBC_DEFAULT = "fp32 eager, glibc's default allocator"


def batch_for(stage: str, size: int, batch: int, snip: int) -> tuple[torch.Tensor, ...]:
    """Random tensors shaped as the stage's view makes them."""
    if stage == "classifier":
        return torch.rand(batch, 1, snip, snip), torch.randint(0, 3, (batch,))
    if stage == "whole_image":
        return torch.rand(batch, 1, size, size), torch.randint(0, 2, (batch,))
    if stage == "finetune":
        return (
            torch.rand(batch, 1, size, size),
            (torch.rand(batch, 1, size, size) > 0.9).float(),
            torch.randint(0, 3, (batch,)),
        )
    if stage == "autoencoder":
        return torch.rand(batch, 1, size, size), torch.rand(batch, 1, size, size), torch.randint(0, 3, (batch,))
    return torch.rand(batch, 1, size, size), torch.rand(batch, 1, size, size)


def measure(stage_name: str, variant: str, runtime, args) -> dict[str, float]:
    """Images/s of the timed steps, and the CPU time they took per step (user and system, s)."""
    stage = STAGES[stage_name]
    torch.manual_seed(0)
    name, kwargs = stage.model_spec(TrainConfig("unused", "unused", width=args.width))
    model = create_model(name, stage.role, **kwargs).to(runtime.device)
    batch = tuple(t.to(runtime.device) for t in batch_for(stage_name, args.image_size, args.batch_size, args.snip_size))
    if "channels_last" in variant:  # as the engine runs on a GPU
        model = model.to(memory_format=torch.channels_last)
        batch = tuple(t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in batch)
    if "compile" in variant:
        model = torch.compile(model)
    optimizer, scheduler = build_optimizer(model, TrainConfig(data="", out=""), runtime, args.steps + args.warmup)
    autocast = distributed.autocast(runtime, "fp32" if variant.startswith("fp32") else "bf16")
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            synchronize(runtime)
            start, used = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        train_step(stage, model, batch, optimizer, scheduler, scaler, autocast)
        distributed.step_done(runtime)
    synchronize(runtime)
    elapsed, now = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return {
        "images_per_s": args.steps * args.batch_size * runtime.replicas / elapsed,
        "user": (now.ru_utime - used.ru_utime) / args.steps,
        "system": (now.ru_stime - used.ru_stime) / args.steps,
    }


def synchronize(runtime) -> None:
    if runtime.device.type == "cuda":
        torch.cuda.synchronize()
    elif runtime.xla:
        import torch_xla

        torch_xla.sync(wait=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=256, help="image side in pixels [256]")
    parser.add_argument("--batch-size", type=int, default=8, help="images per step and replica [8]")
    parser.add_argument("--width", type=int, default=16, help="U-Net base width [16]")
    parser.add_argument("--snip-size", type=int, default=64, help="classifier snip side [64]")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per stage and variant [10]")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation, caches) [3]")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), help="stages to measure [all]")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="folder for the report")
    args = parser.parse_args(argv)
    runtime = distributed.start_runtime()
    if runtime.device.type == "cpu" and not runtime.xla:  # the allocator setting against glibc's default
        variants = [GLIBC_DEFAULT, "fp32 eager"]
    else:
        keep_freed_memory()
        variants = (
            ["fp32", "bf16"] if runtime.xla else ["fp32 eager", "bf16 channels_last", "bf16 channels_last compile"]
        )
    results: dict[str, dict[str, dict]] = {stage: {} for stage in args.stages}
    for variant in variants:  # variant by variant: the allocator setting cannot be taken back
        if variant == "fp32 eager" and GLIBC_DEFAULT in variants:
            keep_freed_memory()
        for stage in args.stages:
            results[stage][variant] = measure(stage, variant, runtime, args)
    report(Path(args.out), runtime, variants, results, args)
    return 0


def device_name(runtime) -> str:
    if runtime.device.type == "cuda":
        return torch.cuda.get_device_name(runtime.device)
    if runtime.xla:
        return runtime.describe()
    return f"CPU, {os.cpu_count()} cores ({platform.processor() or platform.machine()})"


def report(out: Path, runtime, variants: list[str], results: dict, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    kind = "xla" if runtime.xla else runtime.device.type
    figure, axis = plt.subplots(figsize=(7, 3.6))
    x = np.arange(len(results))
    width = 0.8 / len(variants)
    for index, variant in enumerate(variants):
        axis.bar(x + index * width, [results[s][variant]["images_per_s"] for s in results], width, label=variant)
    axis.set_xticks(x + width * (len(variants) - 1) / 2, list(results))
    axis.set_ylabel("images / s")
    axis.set_title(f"training step, {device_name(runtime)}")
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / f"train_step-{kind}.png", dpi=110)
    header = "| stage | " + " | ".join(f"{v}, images/s" for v in variants) + f" | best / {variants[0]} |"
    rows = [
        f"| {s} | "
        + " | ".join(f"{results[s][v]['images_per_s']:.1f}" for v in variants)
        + f" | {max(r['images_per_s'] for r in results[s].values()) / results[s][variants[0]]['images_per_s']:.2f}x |"
        for s in results
    ]
    cpu_header = "| stage | " + " | ".join(f"{v}: user / system s per step (system share)" for v in variants) + " |"
    cpu_rows = [
        f"| {s} | "
        + " | ".join(
            f"{r['user']:.2f} / {r['system']:.2f} ({r['system'] / max(r['user'] + r['system'], 1e-9):.0%})"
            for r in (results[s][v] for v in variants)
        )
        + " |"
        for s in results
    ]
    lines = [
        f"# Benchmark: training step on {device_name(runtime)}",
        "",
        f"Command: `python benchmarks/train_step.py` (torch {torch.__version__}). Images {args.image_size} px "
        f"(snips {args.snip_size} px), batch {args.batch_size} per replica, U-Net width {args.width}, "
        f"{args.steps} timed steps after {args.warmup} warm-up steps. Goal on a GPU: >= 2x over fp32 eager.",
        "",
        header,
        "|" + "---|" * (len(variants) + 2),
        *rows,
        "",
        "CPU time of this process during the timed steps (the kernel's share is page faults and unmapping of "
        "large buffers, and waiting threads):",
        "",
        cpu_header,
        "|" + "---|" * (len(variants) + 1),
        *cpu_rows,
        "",
        f"![train step benchmark](train_step-{kind}.png)",
    ]
    (out / f"train_step-{kind}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
