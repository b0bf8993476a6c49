"""Benchmark of the training loader: images/s streamed from shards against a per-file PNG folder read with
Pillow (how notebook and seed projects load), the same 512 x 512 16-bit images and masks, in one process.

    python benchmarks/loader.py          # writes benchmarks/results/loader.{md,png}

Images: the real mini-MIAS films and BUSI ultrasound images (``MAMMOFLOW_SHARED_DATA``, default
../shared/data) standardized to 512 px. The PNG folder holds the same pixels, saved by Pillow with
its default settings. Batches of 8 images and masks, as each side hands them to the device: the
PNG folder as float32, mammoflow as 16-bit pixels and 8-bit masks (floats are made on the device,
``mammolibs.data.views.unpack_batch``). Each sample is read by a range read at the byte span its shard
index gives, so worker processes read only the samples of their own batches, and hand them over
through reused shared slots (``mammolibs.data.loader``). Goals: shards >= 10x with
no worker processes, >= 8x with 2.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mammolibs.data.loader import StreamLoader  # noqa: E402
from mammolibs.data.shards import iter_shard  # noqa: E402
from mammolibs.data.standardize import standardize  # noqa: E402
from mammolibs.data.stream import ShardStream, replica_parts, split_shards  # noqa: E402
from mammolibs.data.views import SegmentationView  # noqa: E402

IMAGE_SIZE, BATCH = 512, 8
GOALS = {0: 10.0, 2: 8.0}  # DataLoader workers -> shards / PNG folder


class PngFolder(Dataset):
    """The baseline: one ``<n>.png`` (16-bit) and ``<n>.mask.png`` per sample, opened with Pillow."""

    def __init__(self, folder: Path, rounds: int = 1):
        self.images, self.rounds = sorted(folder.glob("*[0-9].png")), rounds

    def __len__(self) -> int:
        return len(self.images) * self.rounds

    def __getitem__(self, index: int):
        path = self.images[index % len(self.images)]
        image = np.asarray(Image.open(path), dtype=np.float32) / 65535.0
        mask = (np.asarray(Image.open(path.with_suffix(".mask.png"))) > 0).astype(np.float32)
        return torch.from_numpy(image)[None], torch.from_numpy(mask)[None]


def build(work: Path, data: Path) -> tuple[str, Path]:
    """Shards of every mini-MIAS film and BUSI image at 512 px, and the same pixels as PNG files."""
    shards = str(work / "shards")
    standardize(
        [("mias", str(data / "mias")), ("busi", str(data / "busi"))],
        shards,
        image_size=IMAGE_SIZE,
        workers=os.cpu_count() or 1,
        progress=False,
    )
    pngs = work / "png"
    pngs.mkdir()
    number = 0
    for split in ("train", "val", "test"):
        for shard in split_shards(shards, split):
            for sample in iter_shard(os.path.join(shards, shard["name"])):
                Image.fromarray((sample.image * 65535).round().astype(np.uint16)).save(pngs / f"{number}.png")
                Image.fromarray((sample.mask * 255).astype(np.uint8)).save(pngs / f"{number}.mask.png")
                number += 1
    return shards, pngs


def rate(loader, count_images: int) -> float:
    """Images/s of one pass, timed from its first batch: worker start-up (once per epoch in training, a
    large part of a pass this short) is left out on both sides."""
    batches = iter(loader)
    first = next(batches)[0].shape[0]
    start = time.perf_counter()
    seen = sum(batch[0].shape[0] for batch in batches)
    assert first + seen == count_images, (first + seen, count_images)
    return seen / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per loader; the median is reported [3]")
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="times each pass reads every image (a pass as long as an epoch of a few thousand images; worker "
        "start-up is paid once a pass on both sides) [4]",
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader workers to measure [0 2]")
    parser.add_argument(
        "--data",
        default=os.environ.get("MAMMOFLOW_SHARED_DATA", str(REPO.parent / "shared" / "data")),
        help="folder holding mias/ and busi/ in their published layouts",
    )
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="folder for the report")
    args = parser.parse_args(argv)
    if not (Path(args.data) / "mias").is_dir():
        raise SystemExit(f"{args.data}: no mias/ folder there; pass --data or set MAMMOFLOW_SHARED_DATA")
    work = Path(tempfile.mkdtemp(prefix="mammoflow-bench-"))
    results = {}
    try:
        shards, pngs = build(work, Path(args.data))
        every_shard = [shard for split in ("train", "val", "test") for shard in split_shards(shards, split)]
        view = _AllSamples()  # every sample of every split, as the baseline reads every file
        count = sum(len(shard["contents"]) for shard in every_shard)
        stream = ShardStream(
            shards,
            replica_parts(every_shard, view, 0, 1),
            view,
            BATCH,
            0,
            0,
            shuffle=True,
            steps=count * args.rounds // BATCH,  # reshuffled at each round
        )
        folder = PngFolder(pngs, args.rounds)
        assert len(folder) == count * args.rounds
        for workers in args.workers:
            ours = StreamLoader(stream, workers)
            theirs = DataLoader(folder, batch_size=BATCH, shuffle=True, num_workers=workers, drop_last=True)
            results[workers] = (
                statistics.median(rate(theirs, stream.steps * BATCH) for _ in range(args.repeats)),
                statistics.median(rate(ours, stream.steps * BATCH) for _ in range(args.repeats)),
            )
        sizes = (
            sum(f.stat().st_size for f in pngs.iterdir()),
            sum(f.stat().st_size for f in Path(shards).glob("*.tar")),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(Path(args.out), count, args.rounds, results, sizes)
    return 0


class _AllSamples(SegmentationView):
    """Image and mask of every sample (the benchmark reads what the PNG folder holds, all of it)."""

    def __init__(self):
        super().__init__(augment="none")

    def keep(self, entry):
        return True


def report(out: Path, count: int, rounds: int, results: dict, sizes: tuple[int, int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    figure, axis = plt.subplots(figsize=(6, 3.6))
    labels = list(results)
    x = np.arange(len(labels))
    axis.bar(x - 0.2, [results[w][0] for w in labels], 0.4, label="PNG folder, Pillow", color="#999")
    axis.bar(x + 0.2, [results[w][1] for w in labels], 0.4, label="mammoflow shards", color="#2a7")
    axis.set_xticks(x, [f"{w} workers" for w in labels])
    axis.set_ylabel("images / s (512 x 512, 16-bit, + mask)")
    axis.set_title("training loader: " + ", ".join(f"{results[w][1] / results[w][0]:.2f}x" for w in labels))
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / "loader.png", dpi=110)
    lines = [
        "# Benchmark: training loader",
        "",
        f"Command: `python benchmarks/loader.py` on {platform.processor() or platform.machine()}, {os.cpu_count()} CPU "
        f"cores, Python {platform.python_version()}. {count} real mini-MIAS films and BUSI images standardized to {IMAGE_SIZE} px "
        f"(16-bit image + 8-bit mask), batches of {BATCH}, shuffled; a pass reads every image {rounds} times "
        "(`--rounds`), timed from its first batch; worker processes start once a pass on both sides.",
        "",
        "| DataLoader workers | PNG folder + Pillow, images/s | shards, images/s | ratio | goal |",
        "|---|---|---|---|---|",
        *[
            f"| {w} | {base:.1f} | {ours:.1f} | {ours / base:.2f}x | {_goal(w, ours / base)} |"
            for w, (base, ours) in results.items()
        ],
        "",
        f"On disk: PNG folder {sizes[0] / 1e6:.1f} MB, shards {sizes[1] / 1e6:.1f} MB.",
        "",
        "![loader benchmark](loader.png)",
    ]
    (out / "loader.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _goal(workers: int, ratio: float) -> str:
    goal = GOALS.get(workers)
    return "" if goal is None else f">= {goal:g}x, {'met' if ratio >= goal else 'NOT met'}"


if __name__ == "__main__":
    raise SystemExit(main())
