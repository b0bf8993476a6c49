"""Bad arguments and odd names get one clear line and the right exit status, never a locked folder or
a name read as something else."""

from __future__ import annotations

import json
import shutil

import pytest

from mammolibs.cli import main
from tests.conftest import free_port


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--image-size", "0"),
        ("--image-size", "-64"),
        ("--image-size", "big"),
        ("--samples-per-shard", "0"),
        ("--workers", "-1"),
    ],
)
def test_sizes_and_counts_below_one_are_bad_arguments(flag, value, mias_subset, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as raised:
        main(["standardize", "--source", "mias", "--input", str(mias_subset), "--output", str(out), flag, value])
    assert raised.value.code == 2
    assert f"argument {flag}:" in capsys.readouterr().err
    assert not out.exists()  # the output is not locked to a bad size


def test_a_file_name_with_a_double_colon_is_a_name_not_a_protocol_chain(dicom_dir, tmp_path, capsys):
    folder = tmp_path / "dicoms"
    folder.mkdir()
    first = sorted(dicom_dir.rglob("*.dcm"))[0]
    shutil.copy(first, folder / "memory::scan.dcm")
    assert (
        main(
            [
                "standardize",
                "--source",
                "dicom",
                "--input",
                str(folder),
                "--output",
                str(tmp_path / "out"),
                "--image-size",
                "64",
                "--no-progress",
            ]
        )
        == 0
    )
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["inputs"] == manifest["written"] == 1


def test_a_source_whose_every_input_is_rejected_says_input_is_probably_wrong(mias_subset, busi_dir, tmp_path, capsys):
    status = main(
        [
            "standardize",
            "--source",
            "mias",
            "--input",
            str(busi_dir),
            "--source",
            "busi",
            "--input",
            str(mias_subset),
            "--source",
            "mias",
            "--input",
            str(mias_subset),
            "--output",
            str(tmp_path / "out"),
            "--image-size",
            "32",
            "--no-progress",
        ]
    )
    assert status == 3
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("every input of")]
    assert len(lines) == 2  # the two wrong pairs, not the right one
    assert f"--source mias --input {busi_dir} was rejected (1), e.g." in lines[0] and "Info.txt" in lines[0]
    assert f"--source busi --input {mias_subset} was rejected (1)" in lines[1] and "normal/benign/malignant" in lines[1]
    assert all("--input is probably not a" in line for line in lines)


def test_an_output_that_cannot_be_written_is_one_line(mias_subset, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert (
        main(
            [
                "standardize",
                "--source",
                "mias",
                "--input",
                str(mias_subset),
                "--output",
                str(blocker / "shards"),
                "--image-size",
                "32",
                "--no-progress",
            ]
        )
        == 2
    )
    error = capsys.readouterr().err.strip()
    assert error.startswith("mammo standardize:") and str(blocker) in error and "you may write there" in error
    assert "\n" not in error and "Traceback" not in error


def test_an_unreachable_storage_service_is_one_line_in_seconds(tmp_path, monkeypatch, capsys):
    port = free_port()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MAMMOFLOW_NETWORK_TIMEOUT", "2")
    assert main(["data", "inspect", "gs://lab-bucket/shards"]) == 2
    error = capsys.readouterr().err.strip()
    assert (
        error.startswith(
            "mammo data: gs://lab-bucket/shards/manifest.json: cannot reach the storage service at "
            f"127.0.0.1:{port} within 2 s"
        )
        and "\n" not in error
    )
    status = main(
        [
            "standardize",
            "--source",
            "mias",
            "--input",
            "gs://lab-bucket/raw/mias",
            "--output",
            str(tmp_path / "out"),
            "--no-progress",
        ]
    )
    assert status == 1  # nothing written: the source is one reject, and the terminal says why
    error = capsys.readouterr().err
    assert "every input of --source mias --input gs://lab-bucket/raw/mias was rejected" in error
    assert "cannot reach the storage service" in error
