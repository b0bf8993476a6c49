"""The hostile corpus end to end: odd and hostile inputs (off-pattern BUSI names, malformed mini-MIAS
lines, a palette PNG, a folder named after a patient, a shard set whose index points outside it) go
through standardize, merge, inspect and training while every file the process opens is watched: nothing
is opened outside the folders given, inputs = written + rejected, and no marker reaches any output."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mammolibs.cli import main
from mammolibs.train.engine import TrainConfig, fit
from tests.data.layouts import film, write_dicom

MARKER = "Roe^Richard_19511231"
OPENED: list[tuple[str, str]] | None = None
"""While a list, every (path, mode) the process opens is appended (see :func:`_watch`)."""


def _watch(event: str, args: tuple) -> None:
    if event == "open" and OPENED is not None and isinstance(args[0], (str, Path)):
        OPENED.append((str(args[0]), str(args[1] or "r")))


sys.addaudithook(_watch)  # audit hooks cannot be removed: it records only while OPENED is a list


@pytest.fixture()
def watched():
    global OPENED
    OPENED = []
    yield OPENED
    OPENED = None


def corpus(root: Path, mias_dir: Path, busi_dir: Path) -> dict[str, Path]:
    """Raw folders of three sources, each with its odd and hostile members."""
    mias = root / "mias"
    mias.mkdir(parents=True)
    for film_name in ("mdb003", "mdb012", "mdb004"):
        shutil.copy(mias_dir / f"{film_name}.pgm", mias)
    (mias / "Info.txt").write_text("mdb003 D NORM\nmdb012 F CIRC B 471 458 40\nmdb004 D CIRC M 12.5 -3 9\n")
    (mias / "mdb012 (copy).pgm").write_bytes((mias / "mdb012.pgm").read_bytes())
    busi = root / "busi" / "Dataset_BUSI_with_GT"
    for label in ("benign", "normal"):
        (busi / label).mkdir(parents=True)
        image = sorted(p for p in (busi_dir / "Dataset_BUSI_with_GT" / label).glob("*.png") if "_mask" not in p.name)[0]
        for found in image.parent.glob(f"{image.stem}*.png"):
            shutil.copy(found, busi / label)
    palette = Image.fromarray((film()[0] // 16).astype(np.uint8), "P")
    palette.putpalette(np.repeat((255 - np.arange(256)).astype(np.uint8)[:, None], 3, axis=1).ravel().tolist())
    palette.save(busi / "benign" / "benign (901).png")
    Image.fromarray(((film(lesion=(60, 40, 9))[1] > 0) * 255).astype(np.uint8)).save(
        busi / "benign" / "benign (901)_mask.png"
    )
    shutil.copy(busi / "benign" / "benign (901).png", busi / "benign" / "benign (901) copy.png")
    dicoms = root / "dicoms" / MARKER
    write_dicom(dicoms / f"{MARKER}.dcm", film(seed=3)[0], PatientName=MARKER, ViewPosition=MARKER)
    (dicoms / "cut.dcm").write_bytes((dicoms / f"{MARKER}.dcm").read_bytes()[:-700])
    return {"mias": mias, "busi": root / "busi", "dicom": root / "dicoms"}


def test_the_hostile_corpus_stays_in_its_folders_and_adds_up(mias_dir, busi_dir, tmp_path, watched, capsys):
    given = tmp_path / "given"
    sources = corpus(given / "raw", mias_dir, busi_dir)
    secret = tmp_path / "not-given" / "secret.tar"
    secret.parent.mkdir()
    secret.write_bytes(b"SECRET" * 100)
    watched.clear()  # from here on, only what mammoflow opens
    out = given / "shards"
    argv = ["standardize", "--output", str(out), "--image-size", "64", "--no-progress", "--redact-paths"]
    for name, folder in sources.items():
        argv += ["--source", name, "--input", str(folder)]
    assert main(argv) == 3
    manifest = json.loads((out / "manifest.json").read_text())
    # mias: 3 films + 1 off-pattern; busi: 3 images (one a palette PNG) + 1 off-pattern; dicom: 2
    assert manifest["inputs"] == 10 == manifest["written"] + manifest["rejected"]
    assert (manifest["written"], manifest["rejected"]) == (6, 4)
    everything = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert MARKER.encode() not in everything and MARKER.split("^")[0].encode() not in everything
    assert MARKER not in capsys.readouterr().err

    index = sorted(out.glob("shard-train-*.index.json"))[0]
    hostile = json.loads(index.read_text())
    hostile["name"] = "../../not-given/secret.tar"
    index.write_text(json.dumps(hostile))
    assert main(["data", "merge", "--output", str(given / "merged"), "--no-progress", str(out)]) == 2
    capsys.readouterr()
    assert main(["data", "inspect", str(out)]) == 2  # every reader opens the set through ShardSet: refused too
    assert f"{index}: shard name '../../not-given/secret.tar' is not a name like" in capsys.readouterr().err
    with pytest.raises(ValueError, match="shard name '../../not-given/secret.tar' is not"):
        fit(
            "finetune",
            TrainConfig(
                data=str(out), out=str(given / "run"), epochs=1, batch_size=2, max_steps=1, width=4, progress=False
            ),
        )

    inside = [path for path, _ in watched if str(tmp_path) in path]
    assert inside and not [path for path in inside if not path.startswith(str(given))], (
        "opened outside the given folders"
    )
    assert not [path for path, mode in watched if "secret" in path]
    written_outside = [
        path
        for path, mode in watched
        if any(c in mode for c in "wax+")
        and str(tmp_path) not in path
        and "/tmp/" not in path
        and not path.startswith("/dev/")
    ]
    assert not written_outside, written_outside
