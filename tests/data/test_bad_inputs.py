"""A corpus of broken inputs: each is skipped with its file and reason in rejects.jsonl, the run goes
on, the summary and exit status say so, and inputs == written + rejected."""

from __future__ import annotations

import json
import os

import numpy as np
import pydicom
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML

from mammolibs.cli import main
from mammolibs.data.images import MAX_INPUT_BYTES
from tests.data.layouts import film, write_csv, write_dicom

EXPECTED = {
    "truncated.dcm": "cannot be decoded",
    "not-a-dicom.dcm": "not a readable DICOM",
    "mpeg2.dcm": "MPEG2",
    "no-pixels.dcm": "no pixel data",
    "bomb.dcm": "refused before decoding",
    "bomb.png": "refused before decoding",
    "constant.png": "image is constant",
    "wrong-size.png": "mask shape",
    "unknown-label.png": "unknown label 'suspicious'",
    "absent.png": "cannot be read",
    "no-mask.png": "mask is missing",
    "benign (2).png": "no '_mask.png'",
    "nowhere": "cannot be read",
}


def _dicom_corpus(folder):
    good = write_dicom(folder / "good.dcm", film(lesion=(50, 40, 8))[0])
    (folder / "truncated.dcm").write_bytes(good.read_bytes()[:-3000])
    (folder / "not-a-dicom.dcm").write_text("this is a text file with a .dcm name")
    ds = pydicom.dcmread(good)
    ds.file_meta.TransferSyntaxUID = MPEG2MPML  # a video syntax no installed decoder handles
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(64)])
    ds.save_as(folder / "mpeg2.dcm", enforce_file_format=True)
    ds = pydicom.dcmread(good)
    del ds.PixelData
    ds.save_as(folder / "no-pixels.dcm", enforce_file_format=True)
    ds = pydicom.dcmread(good)
    ds.Rows = ds.Columns = 60000
    ds.save_as(folder / "bomb.dcm", enforce_file_format=True)


def _csv_corpus(folder):
    image, mask = film(lesion=(50, 40, 8))
    grey = (image // 16).astype(np.uint8)
    for name, array in (
        ("good.png", grey),
        ("constant.png", np.full((90, 60), 7, np.uint8)),
        ("wrong-size.png", grey),
        ("unknown-label.png", grey),
        ("no-mask.png", grey),
    ):
        Image.fromarray(array).save(folder / name)
    Image.fromarray(mask.astype(np.uint8) * 255).save(folder / "good_mask.png")
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(folder / "small_mask.png")
    Image.new("1", (12000, 9000)).save(folder / "bomb.png")  # a few kB that would decode to 108 M pixels
    write_csv(
        folder / "labels.csv",
        ["image", "label", "mask"],
        [
            ["good.png", "malignant", "good_mask.png"],
            ["constant.png", "normal", ""],
            ["wrong-size.png", "benign", "small_mask.png"],
            ["unknown-label.png", "suspicious", ""],
            ["absent.png", "normal", ""],
            ["no-mask.png", "benign", "no-mask_mask.png"],
            ["bomb.png", "unknown", ""],
        ],
    )


def _busi_corpus(folder):
    benign = folder / "Dataset_BUSI_with_GT" / "benign"
    benign.mkdir(parents=True)
    image, mask = film(lesion=(50, 40, 8))
    Image.fromarray((image // 16).astype(np.uint8)).convert("RGB").save(benign / "benign (1).png")
    Image.fromarray(mask).save(benign / "benign (1)_mask.png")
    Image.fromarray((image // 16).astype(np.uint8)).save(benign / "benign (2).png")  # its mask is missing


def test_every_kind_of_bad_input_is_one_named_reject_and_nothing_is_lost(tmp_path, capsys):
    for name, write in (("dicoms", _dicom_corpus), ("clinic", _csv_corpus), ("busi", _busi_corpus)):
        (tmp_path / name).mkdir()
        write(tmp_path / name)
    out = tmp_path / "out"
    status = main(
        [
            "standardize",
            "--source",
            "dicom",
            "--input",
            str(tmp_path / "dicoms"),
            "--source",
            "csv",
            "--input",
            str(tmp_path / "clinic"),
            "--source",
            "busi",
            "--input",
            str(tmp_path / "busi"),
            "--source",
            "mias",
            "--input",
            str(tmp_path / "nowhere"),
            "--output",
            str(out),
            "--image-size",
            "32",
            "--no-progress",
            "--workers",
            "2",
        ]
    )
    printed = capsys.readouterr()
    inputs = 6 + 7 + 2 + 1
    assert status == 3 and f"{inputs} inputs: 3 written, {len(EXPECTED)} rejected" in printed.out
    assert "rejects.jsonl" in printed.err
    rejects = {
        r["file"].rsplit("/", 1)[-1]: r for r in map(json.loads, (out / "rejects.jsonl").read_text().splitlines())
    }
    assert sorted(rejects) == sorted(EXPECTED)
    for name, reason in EXPECTED.items():
        assert name in rejects[name]["reason"] and reason in rejects[name]["reason"], rejects[name]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"] == inputs == manifest["written"] + manifest["rejected"]


def test_special_and_oversized_files_are_named_rejects_before_a_byte_is_read(tmp_path):
    folder = tmp_path / "dicoms"
    folder.mkdir()
    write_dicom(folder / "good.dcm", film()[0])
    (folder / "zero.dcm").symlink_to("/dev/zero")  # read forever
    os.mkfifo(folder / "pipe.dcm")  # blocks forever
    with open(folder / "huge.dcm", "wb") as sparse:  # over the limit, yet takes no disk
        sparse.truncate(MAX_INPUT_BYTES + 1)
    (tmp_path / "clinic").mkdir()
    (tmp_path / "clinic" / "labels.csv").symlink_to("/dev/zero")  # a table is an input like any other
    out = tmp_path / "out"
    flags = ["--source", "dicom", "--input", str(folder), "--source", "csv", "--input", str(tmp_path / "clinic")]
    status = main(["standardize", *flags, "--output", str(out), "--image-size", "32", "--no-progress"])
    assert status == 3
    rejects = {r["file"].rsplit("/", 1)[-1]: r["reason"] for r in map(json.loads, (out / "rejects.jsonl").open())}
    assert set(rejects) == {"zero.dcm", "pipe.dcm", "huge.dcm", "clinic"}
    assert all("not a regular file" in rejects[name] for name in ("zero.dcm", "pipe.dcm", "clinic"))
    assert f"over the {MAX_INPUT_BYTES:,}-byte limit" in rejects["huge.dcm"]
