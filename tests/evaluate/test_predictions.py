"""Predictions a person can check: readable probabilities, the modality, full-resolution overlays, and
batch prediction over a folder or a gs:// URL that resumes and lists its rejects."""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from mammolibs.cli import main as mammo
from mammolibs.data.images import MAX_INPUT_BYTES
from mammolibs.inference.batch import predict_folder
from mammolibs.inference.chain import load_models
from mammolibs.inference.predict import choose_modality, readable


@pytest.mark.parametrize(
    "probability, text",
    [(0.5, "50%"), (0.123456, "12.3%"), (1e-4, "0.01%"), (1e-6, "<0.01%"), (0.99999, ">99.99%"), (0.0, "<0.01%")],
)
def test_probabilities_read_as_people_read_them(probability, text):
    assert readable(probability) == text


def test_the_modality_is_taken_as_asked_or_declared_or_from_the_shape():
    film, frame = np.zeros((1024, 800)), np.zeros((470, 560))
    assert choose_modality(film, "auto", None) == ("MG", None)
    modality, warning = choose_modality(frame, "auto", None)
    assert modality == "US" and "wider than tall" in warning and "modality MG" in warning
    assert choose_modality(frame, "MG", None) == ("MG", None)
    assert choose_modality(film, "auto", "US") == ("US", None)  # a DICOM saying so
    with pytest.raises(ValueError, match="choose one of auto, MG, US"):
        choose_modality(film, "CT", None)


@pytest.fixture
def image_folder(mias_dir, busi_dir, tmp_path):
    """Real images under awkward names and a sub-folder, and one file that is no image."""
    folder = tmp_path / "scans"
    (folder / "second visit").mkdir(parents=True)
    shutil.copy(mias_dir / "mdb012.pgm", folder)
    shutil.copy(mias_dir / "mdb069.pgm", folder / "odd;name $1.pgm")
    shutil.copy(busi_dir / "Dataset_BUSI_with_GT" / "benign" / "benign (100).png", folder / "second visit")
    (folder / "notes.png").write_text("not an image")
    return folder


def test_a_folder_is_predicted_resumably_with_its_rejects(runs, image_folder, tmp_path, capsys):
    out = tmp_path / "predictions"
    flags = [
        "predict",
        "--input",
        str(image_folder),
        "--unet",
        str(runs / "finetune"),
        "--classifier",
        str(runs / "classifier"),
        "--out",
        str(out),
        "--no-progress",
    ]
    assert mammo(flags) == 3  # done, with rejects
    assert "4 images: 3 predicted, 0 done before, 1 rejected" in capsys.readouterr().out
    lines = [json.loads(line) for line in (out / "findings.jsonl").read_text().splitlines()]
    assert [line["image"] for line in lines] == ["mdb012.pgm", "odd;name $1.pgm", "second visit/benign (100).png"]
    [reject] = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert (
        reject["file"] == "notes.png"
        and "not a readable image" in reject["reason"]
        and str(image_folder) not in reject["reason"]
    )
    for line in lines:
        overlay = out / line["overlay"]
        assert re.fullmatch(r"overlays/[A-Za-z0-9_.-]+\.png", line["overlay"]) and overlay.parent == out / "overlays"
        assert Image.open(overlay).size == (line["width"], line["height"])  # the original, full size
        mask = Image.open(out / line["mask"])
        assert line["mask"].startswith("masks/") and mask.mode == "L" and mask.size == (line["width"], line["height"])
    assert lines[2]["modality"] == "US" and lines[0]["modality"] == "MG"
    written = {p.name: p.stat().st_mtime_ns for p in (out / "overlays").iterdir()}

    shutil.copy(image_folder / "mdb012.pgm", image_folder / "notes.png")  # the reject fixed
    assert mammo(flags) == 0
    assert "4 images: 1 predicted, 3 done before, 0 rejected" in capsys.readouterr().out
    assert all((out / "overlays" / name).stat().st_mtime_ns == when for name, when in written.items())  # not redone
    assert len((out / "findings.jsonl").read_text().splitlines()) == 4 and (out / "rejects.jsonl").read_text() == ""


def test_only_regular_files_within_the_size_limit_are_read_and_the_rest_are_named_rejects(runs, mias_dir, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    shutil.copy(mias_dir / "mdb012.pgm", folder)
    (folder / "zero.png").symlink_to("/dev/zero")  # would read forever
    os.mkfifo(folder / "pipe.dcm")  # would block forever
    with open(folder / "huge.png", "wb") as sparse:  # over the limit, yet takes no disk
        sparse.truncate(MAX_INPUT_BYTES + 1)
    models = load_models(str(runs / "finetune"), str(runs / "classifier"))
    result = predict_folder(str(folder), models, str(tmp_path / "out"), progress=False)
    assert (result.inputs, result.predicted, result.rejected) == (4, 1, 3)
    reasons = {r["file"]: r["reason"] for r in map(json.loads, (tmp_path / "out" / "rejects.jsonl").open())}
    assert "not a regular file" in reasons["zero.png"] and "not a regular file" in reasons["pipe.dcm"]
    assert f"over the {MAX_INPUT_BYTES:,}-byte limit" in reasons["huge.png"]


def test_outputs_never_land_in_the_input_nor_on_each_other(runs, mias_dir, tmp_path, capsys):
    folder = tmp_path / "scans"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    shutil.copy(mias_dir / "mdb012.pgm", folder / "a" / "scan.pgm")
    shutil.copy(mias_dir / "mdb069.pgm", folder / "b" / "scan.pgm")
    chain = ["--unet", str(runs / "finetune"), "--classifier", str(runs / "classifier")]
    for out in (folder / "predictions", folder, tmp_path):  # inside the input, the input, holding the input
        assert mammo(["predict", "--input", str(folder), *chain, "--out", str(out), "--no-progress"]) == 2
        assert "overlaps the input" in capsys.readouterr().err
    assert sorted(p.name for p in folder.rglob("*")) == ["a", "b", "scan.pgm", "scan.pgm"]  # nothing written
    out = tmp_path / "one-by-one"
    assert (
        mammo(["predict", str(folder / "a" / "scan.pgm"), str(folder / "b" / "scan.pgm"), *chain, "--out", str(out)])
        == 2
    )
    assert "would both write scan.*" in capsys.readouterr().err and not out.exists()


def test_a_gcs_folder_is_predicted_into_gcs(runs, mias_dir, gcs_bucket):
    bucket, client = gcs_bucket
    for film in ("mdb012.pgm", "mdb069.pgm"):
        client.bucket(bucket).blob(f"scans/{film}").upload_from_filename(str(mias_dir / film))
    models = load_models(str(runs / "finetune"), str(runs / "classifier"))
    result = predict_folder(f"gs://{bucket}/scans", models, f"gs://{bucket}/predictions", progress=False)
    assert (result.inputs, result.predicted, result.rejected) == (2, 2, 0)
    found = client.bucket(bucket).blob("predictions/findings.jsonl").download_as_text().splitlines()
    assert [json.loads(line)["image"] for line in found] == ["mdb012.pgm", "mdb069.pgm"]
    assert predict_folder(f"gs://{bucket}/scans", models, f"gs://{bucket}/predictions", progress=False).skipped == 2
