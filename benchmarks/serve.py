"""Benchmark of ``mammo serve`` under load: concurrent clients POST real images (mini-MIAS films and BUSI
frames, multipart, as the page sends them) to the server on 127.0.0.1, PyTorch against ONNX Runtime
(``mammo export``) in the same run, and PyTorch on CUDA where there is a GPU.

    python benchmarks/serve.py       # writes benchmarks/results/serve.{md,png} (serve-cuda.* with a GPU)
    python benchmarks/serve.py --unet RUN --classifier RUN   # other models (e.g. demo-output's)

Reports, per backend and for 1, 4 and 16 concurrent clients: images/s, p50/p95 latency and the
server's peak memory; then the server's memory over 1,000 requests (it must stay flat), and 64
clients against a short queue (beyond capacity: 503 at once, never an error or unbounded memory).
Without ``--unet``, models of the default architecture are trained for one epoch on a few real images
(speed does not depend on how well they learned).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.serve.conftest import Server  # noqa: E402  (the same server process the tests start)

CLIENTS = (1, 4, 16)


def real_images(data: Path) -> list[tuple[str, bytes]]:
    """Four mini-MIAS films (1024 x 1024 PGM) and four BUSI frames (PNG), as uploads."""
    films = sorted((data / "mias").glob("mdb*.pgm"))[:4]
    frames = sorted(
        p for p in (data / "busi" / "Dataset_BUSI_with_GT" / "benign").glob("*.png") if "_mask" not in p.name
    )[:4]
    return [(p.name, p.read_bytes()) for p in films + frames]


def train_models(work: Path, data: Path, image_size: int) -> tuple[str, str]:
    """The default U-Net and classifier, one epoch on 24 films and 24 frames: the models served."""
    import shutil

    os.environ.setdefault("MAMMOFLOW_SALT", "benchmark-of-serving-salt")
    from mammolibs.data.standardize import standardize
    from mammolibs.train.cli import main

    subset = work / "busi" / "Dataset_BUSI_with_GT"
    for label in ("benign", "malignant", "normal"):
        (subset / label).mkdir(parents=True)
        for image in sorted(
            p for p in (data / "busi" / "Dataset_BUSI_with_GT" / label).glob("*.png") if "_mask" not in p.name
        )[:8]:
            for found in image.parent.glob(f"{image.stem}*.png"):
                shutil.copy(found, subset / label)
    shards = str(work / "shards")
    standardize(
        [("mias", str(data / "mias")), ("busi", str(work / "busi"))], shards, image_size=image_size, progress=False
    )
    common = ["--data", shards, "--epochs", "1", "--no-progress", "--batch-size", "8"]
    main("finetune", common + ["--out", str(work / "finetune")])
    main("classifier", common + ["--out", str(work / "classifier")])
    return str(work / "finetune"), str(work / "classifier")


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident, peak resident) memory of a process, in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def load(server: Server, images: list, clients: int, requests_total: int, time_limit: float) -> dict:
    """``clients`` threads sending images in turn until ``requests_total`` answers or ``time_limit`` s."""
    latencies, statuses, sent = [], [], iter(range(requests_total))
    deadline = time.perf_counter() + time_limit

    def client(_):
        with requests.Session() as session:
            for index in sent:
                if time.perf_counter() > deadline:
                    return
                name, data = images[index % len(images)]
                start = time.perf_counter()
                answer = session.post(f"{server.url}/v1/predict", files={"file": (name, data)}, timeout=300)
                latencies.append(time.perf_counter() - start)
                statuses.append(answer.status_code)

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    elapsed = time.perf_counter() - start
    ok = [t for t, s in zip(latencies, statuses) if s == 200]
    quantiles = statistics.quantiles(ok, n=20) if len(ok) > 1 else [float("nan")] * 19
    return {
        "clients": clients,
        "requests": len(statuses),
        "ok": len(ok),
        "busy": statuses.count(503),
        "other": len(statuses) - len(ok) - statuses.count(503),
        "images_per_s": len(ok) / elapsed,
        "p50_ms": 1000 * statistics.median(ok) if ok else float("nan"),
        "p95_ms": 1000 * quantiles[18],
        "peak_mb": memory_mb(server.process.pid)[1],
    }


def variants(unet: str, classifier: str, exported: str) -> list[tuple[str, tuple[str, str], list[str]]]:
    """(label, models, server flags) of each way to serve: PyTorch on the CPU (the baseline), ONNX Runtime,
    and PyTorch on CUDA where there is a GPU."""
    import torch

    found = [
        ("PyTorch, CPU", (unet, classifier), ["--backend", "torch", "--device", "cpu"]),
        ("ONNX Runtime, CPU", (exported, exported), ["--backend", "onnx"]),
    ]
    if torch.cuda.is_available():
        found.append(
            (f"PyTorch, {torch.cuda.get_device_name()}", (unet, classifier), ["--backend", "torch", "--device", "cuda"])
        )
    return found


def serve(unet: str, classifier: str, extra: list[str] = ()) -> Server:
    return Server(["--unet", unet, "--classifier", classifier, *extra])


def run(args) -> str:
    data = Path(args.data)
    images = real_images(data)
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        work = Path(scratch)
        unet, classifier = (args.unet, args.classifier) if args.unet else train_models(work, data, args.image_size)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "mammolibs.cli",
                "export",
                "--unet",
                unet,
                "--classifier",
                classifier,
                "--out",
                str(work / "onnx"),
            ],
            check=True,
            capture_output=True,
        )
        rows = []
        for variant, (u, c), flags in variants(unet, classifier, str(work / "onnx")):
            server = serve(u, c, flags)
            try:
                load(server, images, 1, len(images), args.time_limit)  # warm-up: first calls allocate
                for clients in CLIENTS:
                    rows.append({"backend": variant, **load(server, images, clients, args.requests, args.time_limit)})
                    print(rows[-1], flush=True)
            finally:
                server.stop()
        server = serve(unet, classifier, ["--device", "cpu"])
        try:
            load(server, images, 4, 100, 600)
            after_100 = memory_mb(server.process.pid)[0]
            soak = load(server, images, 4, args.soak, 3600)
            after_soak = memory_mb(server.process.pid)[0]
        finally:
            server.stop()
        server = serve(unet, classifier, ["--queue", "8"])
        try:
            flood = load(server, images, 64, 256, args.time_limit)
            alive = requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
        finally:
            server.stop()
    return report(rows, after_100, after_soak, soak, flood, alive, args)


def report(rows, after_100, after_soak, soak, flood, alive, args) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [
        "# Serving benchmark",
        "",
        f"`python benchmarks/serve.py{''.join(' ' + a for a in sys.argv[1:])}` on {platform.processor() or platform.machine()}, {os.cpu_count()} "
        f"cores, Python {platform.python_version()}; server `mammo serve` on 127.0.0.1 (1 worker, torch's threads), "
        f"clients POST real mini-MIAS films (1024 x 1024 PGM) and BUSI frames (PNG) in turn, multipart; "
        f"{args.requests} requests per row (or {args.time_limit:g} s).",
        "",
        "| served by | clients | answered | images/s | p50 latency (ms) | p95 latency (ms) | server peak memory (MiB) |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r['backend']} | {r['clients']} | {r['ok']}/{r['requests']} | {r['images_per_s']:.2f} | {r['p50_ms']:.0f} | "
            f"{r['p95_ms']:.0f} | {r['peak_mb']:.0f} |"
            for r in rows
        ),
        "",
    ]
    tables = {}
    for row in rows:
        tables.setdefault(row["backend"], {})[row["clients"]] = row
    baseline = tables["PyTorch, CPU"]
    lines += [
        f"{variant} against PyTorch on the CPU, images/s: "
        + ", ".join(f"{n} client(s) {table[n]['images_per_s'] / baseline[n]['images_per_s']:.2f}x" for n in CLIENTS)
        for variant, table in tables.items()
        if table is not baseline
    ] + [""]
    growth = after_soak - after_100
    lines += [
        f"Memory over {soak['requests'] + 100} requests (PyTorch on the CPU, 4 clients): {after_100:.0f} MiB after 100, "
        f"{after_soak:.0f} MiB after {soak['requests'] + 100} ({growth:+.0f} MiB); all answered: {soak['ok'] == soak['requests']}.",
        "",
        f"Beyond capacity (64 clients, queue of 8): {flood['ok']} answered, {flood['busy']} told 503 (busy), "
        f"{flood['other']} other answers; peak memory {flood['peak_mb']:.0f} MiB; healthy afterwards: {alive}.",
    ]
    out = REPO / "benchmarks" / "results"
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for backend, table in tables.items():
        axes[0].plot(CLIENTS, [table[n]["images_per_s"] for n in CLIENTS], marker="o", label=backend)
        axes[1].plot(CLIENTS, [table[n]["p95_ms"] for n in CLIENTS], marker="o", label=backend)
    axes[0].set(xlabel="concurrent clients", ylabel="images/s", title="Throughput", xscale="log")
    axes[1].set(xlabel="concurrent clients", ylabel="p95 latency (ms)", title="Latency", xscale="log")
    for axis in axes:
        axis.set_xticks(CLIENTS, [str(n) for n in CLIENTS])
        axis.legend()
    figure.tight_layout()
    name = "serve-cuda" if len(tables) > 2 else "serve"  # with a GPU's row, beside the CPU-only report
    figure.savefig(out / f"{name}.png", dpi=100)
    text = "\n".join(lines + ["", f"![throughput and latency]({name}.png)", ""])
    (out / f"{name}.md").write_text(text)
    return text


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="folder holding mias/ and busi/")
    parser.add_argument("--unet", help="U-Net run folder to serve [default: trained here for one epoch]")
    parser.add_argument("--classifier", help="classifier run folder to serve (with --unet)")
    parser.add_argument("--image-size", type=int, default=256, help="standard image side of the models trained here")
    parser.add_argument("--requests", type=int, default=48, help="requests per row of the table")
    parser.add_argument("--time-limit", type=float, default=120, help="seconds at most per row")
    parser.add_argument("--soak", type=int, default=900, help="requests after the first 100 in the memory check")
    parser.add_argument("--scratch", default=None, help="folder for the models and exports made here")
    args = parser.parse_args(argv)
    if bool(args.unet) != bool(args.classifier):
        parser.error("give --unet and --classifier together")
    print(run(args))


if __name__ == "__main__":
    main()
