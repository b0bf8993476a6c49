"""Benchmark of ``mammo serve`` under load: concurrent clients POST real images (mini-MIAS films and BUSI
frames, multipart, as the page sends them) to the server on 127.0.0.1, PyTorch against ONNX Runtime
(``mammo export``) in the same run, and PyTorch on CUDA where there is a GPU.

    python benchmarks/serve.py       # writes benchmarks/results/serve.{md,png} (serve-cuda.* with a GPU)
    python benchmarks/serve.py --unet RUN --classifier RUN   # other models (e.g. demo-output's)
    python benchmarks/serve.py --abuse-only                  # only the abuse run: serve-abuse.md

Reports, per backend and for 1, 4 and 16 concurrent clients: images/s, p50/p95 latency and the
server's peak memory; then the server's memory over 1,000 requests (it must stay flat), 64
clients against a short queue (beyond capacity: 503 at once, never an error or unbounded memory),
and an abuse run: real clients alongside slow clients (a byte a second), stalled bodies (100 MB sent,
then nothing) and field floods (100,000 tiny fields), against the same real clients on a quiet server
(goals: real clients keep >= 90% success and p95 under 3x quiet, the server's peak memory within 2x
quiet, /healthz always answering).
Without ``--unet``, models of the default architecture are trained for one epoch on a few real images
(speed does not depend on how well they learned).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
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


ATTACKERS = {"slow clients": 32, "stalled bodies": 8, "field floods": 2}
"""Abusive connections kept open at once through the abuse run, each reconnecting when the server drops it."""


def slow_client(port: int, stop: threading.Event, answers: list) -> None:
    """A body announced at 1 MB and sent one byte a second."""
    head = f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
    while not stop.is_set():
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            try:
                connection.sendall(f"{head}Content-Length: 1000000\r\n\r\n".encode())
                while not stop.wait(1.0):
                    connection.sendall(b" ")
            except OSError:
                answers.append(_answer(connection))


def stalled_body(port: int, stop: threading.Event, answers: list) -> None:
    """100 MB of a 130 MB body sent at once, then nothing."""
    head = f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
    chunk = b" " * 2**20
    while not stop.is_set():
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            try:
                connection.sendall(f"{head}Content-Length: {130 * 2**20}\r\n\r\n".encode())
                for _ in range(100):
                    connection.sendall(chunk)
                answers.append(_answer(connection))
            except OSError:
                answers.append(_answer(connection))


def field_flood(url: str, stop: threading.Event, answers: list) -> None:
    """Multipart uploads of 100,000 tiny fields (about 6 MB), one after the other."""
    fields = [(f"f{i}", (None, "x")) for i in range(100_000)]
    while not stop.is_set():
        try:
            answers.append(requests.post(f"{url}/v1/predict", files=fields, timeout=60).status_code)
        except requests.RequestException:
            answers.append(None)


def _answer(connection: socket.socket) -> int | None:
    """The status the server answered on ``connection`` (``None`` when it closed without one)."""
    try:
        connection.settimeout(10)
        first = connection.recv(64).split(b" ")
        return int(first[1]) if len(first) > 1 and first[1].isdigit() else None
    except OSError:
        return None


def abuse(unet: str, classifier: str, images: list, args) -> dict:
    """Real clients' figures on a quiet server and on one under the attackers of :data:`ATTACKERS`."""
    found = {}
    for phase in ("quiet", "attacked"):
        server = serve(unet, classifier, ["--device", "cpu"])
        stop, answers, health = threading.Event(), {name: [] for name in ATTACKERS}, []
        try:
            load(server, images, 1, len(images), args.time_limit)  # warm-up, as in the quiet rows
            threads = []
            if phase == "attacked":
                for name, count in ATTACKERS.items():
                    target = {"slow clients": slow_client, "stalled bodies": stalled_body, "field floods": field_flood}
                    where = server.url if name == "field floods" else server.port
                    threads += [
                        threading.Thread(target=target[name], args=(where, stop, answers[name]), daemon=True)
                        for _ in range(count)
                    ]
            threads.append(threading.Thread(target=_watch_health, args=(server.url, stop, health), daemon=True))
            for thread in threads:
                thread.start()
            time.sleep(5 if phase == "attacked" else 0)  # the attack under way before the real clients come
            real = load(server, images, 4, args.abuse_requests, args.time_limit * 3)
            stop.set()
            for thread in threads:
                thread.join(timeout=40)
            found[phase] = {
                **real,
                "success": real["ok"] / max(1, real["requests"]),
                "healthy": sum(health) / max(1, len(health)),
                "attackers": {name: _tally(got) for name, got in answers.items() if phase == "attacked"},
            }
            print(phase, found[phase], flush=True)
        finally:
            stop.set()
            server.stop()
    return found


def worst_input(unet: str, classifier: str) -> dict:
    """The server's memory before and after one prediction of the largest image it accepts: a 16-bit
    grey PNG of exactly the pixel limit (a smooth gradient: small to send, whole to decode)."""
    import io

    import numpy as np
    from PIL import Image

    from mammolibs.data.images import MAX_PIXELS

    side = int(MAX_PIXELS**0.5)
    row = np.linspace(0, 65535, side).astype(np.uint16)
    picture = io.BytesIO()
    Image.fromarray(np.broadcast_to(row, (side, side)).copy()).save(picture, "PNG")
    server = serve(unet, classifier, ["--device", "cpu"])
    try:
        before = memory_mb(server.process.pid)[1]
        answer = requests.post(
            f"{server.url}/v1/predict", files={"file": ("largest.png", picture.getvalue())}, timeout=600
        )
        return {
            "side": side,
            "upload_mb": len(picture.getvalue()) / 2**20,
            "status": answer.status_code,
            "before_mb": before,
            "peak_mb": memory_mb(server.process.pid)[1],
        }
    finally:
        server.stop()


def _watch_health(url: str, stop: threading.Event, health: list) -> None:
    while not stop.wait(0.5):
        try:
            health.append(requests.get(f"{url}/healthz", timeout=2).status_code == 200)
        except requests.RequestException:
            health.append(False)


def _tally(statuses: list) -> str:
    counts: dict[str, int] = {}
    for status in statuses:
        counts[str(status or "closed")] = counts.get(str(status or "closed"), 0) + 1
    return ", ".join(f"{n} x {status}" for status, n in sorted(counts.items())) or "none"


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
        abused = {**abuse(unet, classifier, images, args), "worst": worst_input(unet, classifier)}
        (REPO / "benchmarks" / "results" / "serve-abuse.md").write_text(
            "\n".join(["# Serving benchmark: abuse", "", *abuse_lines(abused)])
        )
        if args.abuse_only:
            return "\n".join(abuse_lines(abused))
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


def abuse_lines(abused: dict) -> list[str]:
    """The abuse run's table and its goals."""
    quiet, attacked, worst = abused["quiet"], abused["attacked"], abused["worst"]
    goals = [
        ("real clients' success >= 90%", f"{attacked['success']:.0%}", attacked["success"] >= 0.9),
        (
            "real clients' p95 under 3x quiet",
            f"{attacked['p95_ms'] / quiet['p95_ms']:.2f}x",
            attacked["p95_ms"] < 3 * quiet["p95_ms"],
        ),
        (
            "server's peak memory within 2x quiet",
            f"{attacked['peak_mb'] / quiet['peak_mb']:.2f}x",
            attacked["peak_mb"] <= 2 * quiet["peak_mb"],
        ),
        ("/healthz answered throughout", f"{attacked['healthy']:.0%}", attacked["healthy"] == 1.0),
    ]
    return [
        f"`python benchmarks/serve.py{''.join(' ' + a for a in sys.argv[1:])}` on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores. 4 real clients (PyTorch, CPU) on a quiet server, then on one that {', '.join(f'{n} {name}' for name, n in ATTACKERS.items())} "
        "keep busy (each reconnecting when dropped): slow clients send a 1 MB body a byte a second, stalled bodies "
        "send 100 MB of a 130 MB body and stop, field floods post 100,000 tiny multipart fields. Server limits "
        "at their defaults.",
        "",
        "| server | real requests answered | p50 latency (ms) | p95 latency (ms) | peak memory (MiB) | /healthz answered |",
        "|---|---|---|---|---|---|",
        *(
            f"| {phase} | {r['ok']}/{r['requests']} ({r['success']:.0%}) | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | "
            f"{r['peak_mb']:.0f} | {r['healthy']:.0%} |"
            for phase, r in (("quiet", quiet), ("attacked", attacked))
        ),
        "",
        "What the attackers were answered: "
        + "; ".join(f"{name}: {tally}" for name, tally in attacked["attackers"].items())
        + " (408: too slow, 413: too many parts, 503: memory for bodies full).",
        "",
        f"The largest image accepted ({worst['side']} x {worst['side']} 16-bit PNG, {worst['upload_mb']:.1f} MB sent, "
        f"answered {worst['status']}): the server's peak memory went from {worst['before_mb']:.0f} to "
        f"{worst['peak_mb']:.0f} MiB, {worst['peak_mb'] - worst['before_mb']:.0f} MiB for one request.",
        "",
        "| goal | measured | met |",
        "|---|---|---|",
        *(f"| {goal} | {value} | {'yes' if met else 'NO'} |" for goal, value, met in goals),
        "",
    ]


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
        "",
        "Under abuse (slow clients, stalled bodies, field floods beside real clients): `serve-abuse.md`.",
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
    parser.add_argument("--abuse-requests", type=int, default=96, help="real clients' requests in each abuse phase")
    parser.add_argument(
        "--abuse-only",
        action="store_true",
        help="only the abuse run (writes serve-abuse.md; serve.md is left as it is)",
    )
    parser.add_argument("--scratch", default=None, help="folder for the models and exports made here")
    args = parser.parse_args(argv)
    if bool(args.unet) != bool(args.classifier):
        parser.error("give --unet and --classifier together")
    print(run(args))


if __name__ == "__main__":
    main()
