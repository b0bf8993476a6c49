"""Standardize survives kill -9: rerunning finishes the job with no duplicate or lost sample, and
rerunning a finished job writes nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mammolibs.data.manifest import read_manifest
from mammolibs.data.shards import committed_shards
from mammolibs.data.standardize import standardize


def _keys(out: Path) -> list[str]:
    return [entry["key"] for shard in committed_shards(str(out)) for entry in shard["contents"]]


def _command(busi_dir: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mammolibs.cli",
        "standardize",
        "--source",
        "busi",
        "--input",
        str(busi_dir),
        "--output",
        str(out),
        "--image-size",
        "128",
        "--samples-per-shard",
        "8",
        "--no-progress",
    ]


def test_a_run_killed_mid_way_finishes_on_rerun_without_duplicates_or_losses(busi_dir, busi_counts, tmp_path):
    images = sum(busi_counts.values())
    out = tmp_path / "out"
    process = subprocess.Popen(_command(busi_dir, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list(out.glob("*.index.json"))) < 3 and time.time() < deadline and process.poll() is None:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "manifest.json").exists(), "the run finished before it could be killed"
    committed_before = len(_keys(out))
    assert 0 < committed_before < images

    rerun = subprocess.run(_command(busi_dir, out), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    keys = _keys(out)
    assert len(keys) == len(set(keys)) == images
    manifest = read_manifest(str(out))
    assert manifest["inputs"] == manifest["written"] == images and manifest["rejected"] == 0
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]

    clean = tmp_path / "clean"
    standardize([("busi", str(busi_dir))], str(clean), image_size=128, samples_per_shard=8, progress=False)
    assert set(_keys(clean)) == set(keys)

    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = subprocess.run(_command(busi_dir, out), capture_output=True, text=True)
    assert again.returncode == 0 and "0 new shard(s)" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # nothing rewritten


def test_a_shard_without_its_index_is_redone_and_temporary_files_removed(mias_subset, tmp_path):
    out = tmp_path / "out"
    standardize([("mias", str(mias_subset))], str(out), image_size=32, samples_per_shard=4, progress=False)
    first = sorted(out.glob("shard-train-*.index.json"))[-1]
    first.unlink()  # as if killed between writing the tar and its index
    (out / "shard-val-00000.tar.tmp-1234abcd").write_bytes(b"partial")
    (out / "manifest.json").unlink()
    result = standardize([("mias", str(mias_subset))], str(out), image_size=32, samples_per_shard=4, progress=False)
    keys = _keys(out)
    assert len(keys) == len(set(keys)) == result.written == 24 and result.new_shards == 1
    assert not list(out.glob("*.tmp-*"))
    assert all((out / s["name"]).exists() for s in json.loads((out / "manifest.json").read_text())["shards"])


def test_other_settings_are_refused_for_an_existing_output(mias_subset, tmp_path):
    import pytest

    standardize([("mias", str(mias_subset))], str(tmp_path), image_size=32, progress=False)
    with pytest.raises(ValueError, match="other image_size"):
        standardize([("mias", str(mias_subset))], str(tmp_path), image_size=64, progress=False)


def test_a_rejected_file_once_fixed_gets_in_on_rerun(tmp_path):
    from PIL import Image

    from tests.data.layouts import film, write_csv

    write_csv(tmp_path / "clinic" / "labels.csv", ["image", "label"], [["a.png", "normal"], ["b.png", "normal"]])
    Image.fromarray((film()[0] // 16).astype("uint8")).save(tmp_path / "clinic" / "a.png")
    first = standardize([("csv", str(tmp_path / "clinic"))], str(tmp_path / "out"), image_size=32, progress=False)
    assert (first.written, first.rejected) == (1, 1)
    Image.fromarray((film(seed=1)[0] // 16).astype("uint8")).save(tmp_path / "clinic" / "b.png")
    second = standardize([("csv", str(tmp_path / "clinic"))], str(tmp_path / "out"), image_size=32, progress=False)
    assert (second.inputs, second.written, second.rejected, second.new_shards) == (2, 2, 0, 1)
    assert (tmp_path / "out" / "rejects.jsonl").read_text() == ""
