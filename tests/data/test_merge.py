"""``mammo data merge``: shard sets standardized per source become one set that training reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mammolibs.cli import main
from mammolibs.data.merge import merge_shard_sets
from mammolibs.data.standardize import standardize
from mammolibs.data.stream import split_shards


@pytest.fixture(scope="module")
def per_source(mias_subset, dicom_dir, tmp_path_factory) -> dict[str, str]:
    """The MIAS subset and the DICOMs, each standardized on its own (small shards, so there are several)."""
    root = tmp_path_factory.mktemp("per-source")
    sets = {}
    for name, folder in (("mias", mias_subset), ("dicom", dicom_dir)):
        sets[name] = str(root / name)
        standardize([(name, str(folder))], sets[name], image_size=64, samples_per_shard=4, progress=False)
    return sets


def files(folder: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir())}


def test_merged_set_adds_up_and_is_read_like_one_standardized_set(per_source, mias_subset, dicom_dir, tmp_path, capsys):
    out = str(tmp_path / "merged")
    assert main(["data", "merge", "--output", out, "--no-progress", per_source["mias"], per_source["dicom"]]) == 0
    assert "2 shard sets merged: 32 samples" in capsys.readouterr().out
    merged = json.loads((tmp_path / "merged" / "manifest.json").read_text())
    together = str(tmp_path / "together")
    standardize(
        [("mias", str(mias_subset)), ("dicom", str(dicom_dir))],
        together,
        image_size=64,
        samples_per_shard=4,
        progress=False,
    )
    direct = json.loads((tmp_path / "together" / "manifest.json").read_text())
    for field in ("counts", "counts_by_split_source_label", "written", "inputs", "rejected", "image_size", "format"):
        assert merged[field] == direct[field], field
    assert merged["merged_from"] == [per_source["mias"], per_source["dicom"]]
    names = [s["name"] for s in merged["shards"]]
    assert (
        len(names)
        == len(set(names))
        == sum(len(json.loads(Path(u, "manifest.json").read_text())["shards"]) for u in per_source.values())
    )
    for split in ("train", "val", "test"):
        keys = {e["key"] for s in split_shards(out, split) for e in s["contents"]}
        assert keys == {e["key"] for s in split_shards(together, split) for e in s["contents"]}

    before = files(out)
    merge_shard_sets([per_source["mias"], per_source["dicom"]], out, progress=False)  # a retried step
    assert files(out) == before


def test_merge_refuses_what_would_corrupt_the_set(per_source, mias_subset, tmp_path, capsys):
    with pytest.raises(ValueError, match="the same source was standardized twice"):
        merge_shard_sets([per_source["mias"], per_source["mias"]], str(tmp_path / "twice"), progress=False)
    other = str(tmp_path / "mias-128")
    standardize([("mias", str(mias_subset))], other, image_size=128, samples_per_shard=4, progress=False)
    with pytest.raises(ValueError, match="standardize every source with the same --image-size"):
        merge_shard_sets([per_source["dicom"], other], str(tmp_path / "sizes"), progress=False)
    damaged = tmp_path / "damaged"
    standardize([("mias", str(mias_subset))], str(damaged), image_size=64, samples_per_shard=4, progress=False)
    shard = sorted(damaged.glob("shard-train-*.tar"))[0]
    shard.write_bytes(shard.read_bytes()[:-512])
    with pytest.raises(ValueError, match=f"{shard.name} does not match the SHA-256 in its index"):
        merge_shard_sets([str(damaged), per_source["dicom"]], str(tmp_path / "out"), progress=False)
    assert main(["data", "merge", "--output", str(tmp_path / "none"), str(tmp_path / "absent")]) == 2
    assert "run 'mammo standardize --output" in capsys.readouterr().err


def test_outputs_that_overlap_their_inputs_are_refused_and_the_inputs_kept(per_source, mias_subset, tmp_path, capsys):
    mias = per_source["mias"]
    before = files(mias)
    for output in (mias, f"{mias}/merged", str(Path(mias).parent), f"{mias}/../{Path(mias).name}/"):
        with pytest.raises(ValueError, match="overlaps the input"):
            merge_shard_sets([mias, per_source["dicom"]], output, progress=False)
        assert main(["data", "merge", mias, per_source["dicom"], "--output", output]) == 2
        assert "overlaps the input" in capsys.readouterr().err
    assert files(mias) == before  # nothing of the input touched
    (tmp_path / "link").symlink_to(mias_subset)
    for output in (str(mias_subset / "shards"), str(tmp_path / "link" / "shards")):  # inside the folder read
        with pytest.raises(ValueError, match="overlaps the input"):
            standardize([("mias", str(mias_subset))], output, image_size=32, progress=False)
        assert not (mias_subset / "shards").exists()


def test_one_writer_at_a_time_and_a_crashed_writers_lock_is_taken_over(mias_subset, tmp_path):
    import os
    import socket
    import subprocess

    out = tmp_path / "out"
    out.mkdir()
    writer = subprocess.Popen(["sleep", "60"])  # another standardize, still running
    lock = out / ".mammoflow-writer.lock"
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": writer.pid, "since": 0}))
    try:
        with pytest.raises(ValueError, match=f"is being written by process {writer.pid}; wait for it"):
            standardize([("mias", str(mias_subset))], str(out), image_size=32, progress=False)
        assert not list(out.glob("shard-*"))  # nothing written beside it
    finally:
        writer.kill()
        writer.wait()
    result = standardize([("mias", str(mias_subset))], str(out), image_size=32, progress=False)  # its lock is stale
    assert result.written > 0 and not lock.exists() and os.listdir(out)


def test_a_merge_stopped_half_way_leaves_no_manifest_to_trust(per_source, tmp_path):
    out = str(tmp_path / "merged")
    merge_shard_sets([per_source["mias"], per_source["dicom"]], out, progress=False)
    broken = tmp_path / "dicom-copy"
    broken.mkdir()
    for path in Path(per_source["dicom"]).iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    shard = sorted(broken.glob("shard-*.tar"))[-1]
    shard.write_bytes(shard.read_bytes()[:-100])  # the last shard read fails, after others are written
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        merge_shard_sets([per_source["mias"], str(broken)], out, progress=False)
    assert not (tmp_path / "merged" / "manifest.json").exists()  # no manifest over shards it does not list
    assert main(["data", "inspect", out]) == 2
