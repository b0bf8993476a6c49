"""Standardize real files into shards: counts add up, form is fixed, nothing identifying is written."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pydicom
import pytest

from mammolibs.data.manifest import read_manifest, split_of
from mammolibs.data.pseudonyms import pseudonym_key
from mammolibs.data.shard_set import ShardSet
from mammolibs.data.shards import iter_shard
from mammolibs.data.standard_form import fit_to_square
from mammolibs.data.standardize import sample_key, standardize


def test_fit_to_square_keeps_aspect_ratio_and_maps_boxes_back():
    image = np.zeros((400, 200), dtype=np.float32)
    image[100:140, 48:88] = 1.0
    square, placement = fit_to_square(image, 100)
    assert square.shape == (100, 100) and placement.scale == 0.25 and placement.left == 25
    rows, cols = np.nonzero(square > 0.5)
    box = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
    assert placement.to_original(box) == [48, 100, 88, 140]


def test_real_sources_become_fixed_size_shards_with_a_manifest(small_shards, mias_subset, dicom_dir):
    manifest = read_manifest(small_shards)
    assert manifest["inputs"] == 24 + 8 == manifest["written"] + manifest["rejected"]
    assert manifest["counts"]["source"] == {"mias": 24, "dicom": 8}
    assert sum(manifest["counts"]["split"].values()) == manifest["written"]
    samples = [s for split in ("train", "val", "test") for s in ShardSet.open(small_shards).samples(split)]
    assert len(samples) == manifest["written"]
    assert all(s.image.shape == (64, 64) and s.mask.shape == (64, 64) for s in samples)
    assert all(0.0 <= s.image.min() and s.image.max() <= 1.0 for s in samples)
    by_film = {
        film: s
        for s in samples
        for film in ("mdb011", "mdb012", "mdb216")
        if s.key == sample_key("mias", film, pseudonym_key(os.environ["MAMMOFLOW_SALT"]))
    }
    assert by_film["mdb012"].label == "benign" and by_film["mdb012"].mask.sum() > 0
    assert by_film["mdb216"].meta["localized"] is False
    assert by_film["mdb011"].meta["patient"] == by_film["mdb012"].meta["patient"]


def test_splits_are_patient_level_and_stable(small_shards):
    samples = [s for split in ("train", "val", "test") for s in ShardSet.open(small_shards).samples(split)]
    split_by_patient: dict[str, set] = {}
    for s in samples:
        split_by_patient.setdefault(s.meta["patient"], set()).add(s.meta["split"])
        assert s.meta["split"] == split_of(s.meta["patient"])
    assert all(len(splits) == 1 for splits in split_by_patient.values())


def test_shard_checksums_match_the_manifest(small_shards):
    import hashlib

    for shard in read_manifest(small_shards)["shards"]:
        with open(f"{small_shards}/{shard['name']}", "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == shard["sha256"]
        assert sum(1 for _ in iter_shard(f"{small_shards}/{shard['name']}")) == shard["samples"]


def test_no_patient_identifier_reaches_any_output(dicom_dir, tmp_path):
    identifiers = set()
    for path in sorted(dicom_dir.rglob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        identifiers |= {str(ds.PatientID), str(ds.get("PatientName", "")), str(ds.get("StudyInstanceUID", ""))}
    identifiers.discard("")
    out = tmp_path / "shards"
    standardize([("dicom", str(dicom_dir))], str(out), image_size=32, progress=False)
    written = b"".join(p.read_bytes() for p in out.iterdir())
    for identifier in identifiers:
        assert identifier.encode() not in written, identifier


def test_bad_inputs_are_rejected_by_name_and_nothing_is_lost(dicom_dir, mias_dir, tmp_path):
    folder = tmp_path / "dicoms"
    folder.mkdir()
    good = sorted(dicom_dir.rglob("*.dcm"))[:2]
    for path in good:
        shutil.copy(path, folder / path.name)
    (folder / "truncated.dcm").write_bytes(good[0].read_bytes()[:4000])
    (folder / "not-a-dicom.dcm").write_text("hello")
    ds = pydicom.dcmread(good[0])
    del ds.PixelData
    ds.save_as(folder / "no-pixels.dcm")
    out = tmp_path / "out"
    result = standardize([("dicom", str(folder))], str(out), image_size=32, progress=False)
    assert (result.inputs, result.written, result.rejected) == (5, 2, 3)
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert sorted(r["file"] for r in rejects) == ["no-pixels.dcm", "not-a-dicom.dcm", "truncated.dcm"]  # relative
    assert all(r["reason"].startswith(r["file"] + ":") and str(tmp_path) not in r["reason"] for r in rejects)
    assert (
        read_manifest(str(out))["rejected"] == 3
        and sum(len(ShardSet.open(str(out)).shards(split)) for split in ("train", "val", "test")) >= 1
    )


def test_an_unreadable_source_is_one_reject_saying_what_to_do(tmp_path):
    (tmp_path / "empty").mkdir()
    result = standardize(
        [("mias", str(tmp_path / "empty")), ("busi", str(tmp_path / "absent"))], str(tmp_path / "out"), progress=False
    )
    assert (result.inputs, result.written, result.rejected) == (2, 0, 2)
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert "Info.txt" in rejects[0]["reason"] and "no such folder" in rejects[1]["reason"]


def test_unknown_label_and_mask_size_mismatch_are_refused_by_name():
    from mammolibs.data.sample import RawSample, RejectedInput
    from mammolibs.data.standardize import standardize_sample

    image = np.random.default_rng(0).random((40, 30)).astype(np.float32)
    with pytest.raises(RejectedInput, match="a.png: unknown label 'suspicious'"):
        standardize_sample(RawSample(image, None, "suspicious", "x", "p"), 16, b"key", "a.png")
    with pytest.raises(RejectedInput, match="b.png: mask shape"):
        standardize_sample(RawSample(image, np.zeros((10, 10), bool), "benign", "x", "p"), 16, b"key", "b.png")
    with pytest.raises(RejectedInput, match="c.png: image is constant"):
        standardize_sample(RawSample(np.ones((8, 8), np.float32), None, "normal", "x", "p"), 16, b"key", "c.png")
