"""The ``mammo`` command line: standardize, evaluate, predict; every flag explained."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from mammolibs import __version__
from mammolibs.cli import get_parser, main
from tests.conftest import REPO


def test_every_subcommand_flag_has_help():
    parser = get_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(subcommands) == {
        "standardize",
        "data",
        "train",
        "evaluate",
        "generalize",
        "predict",
        "serve",
        "export",
        "pipeline",
    }
    parsers = list(subcommands.values())
    while parsers:  # nested ones too: data inspect, pipeline submit
        sub = parsers.pop()
        assert all(action.help for action in sub._actions), sub.prog
        parsers += [p for a in sub._actions if isinstance(a, argparse._SubParsersAction) for p in a.choices.values()]


def test_standardize_command_writes_shards_and_reports_counts(mias_subset, tmp_path, capsys):
    out = tmp_path / "shards"
    code = main(
        [
            "standardize",
            "--source",
            "mias",
            "--input",
            str(mias_subset),
            "--output",
            str(out),
            "--image-size",
            "32",
            "--no-progress",
        ]
    )
    assert code == 0
    assert "24 inputs: 24 written, 0 rejected" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["image_size"] == 32


def test_unknown_source_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit):
        main(["standardize", "--source", "ddsm", "--input", "x", "--output", "y"])
    assert "mias" in capsys.readouterr().err


def test_train_runs_a_stage_with_that_stages_flags(small_shards, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "finetune", "--help"])
    assert capsys.readouterr().out.startswith("usage: mammo train finetune")
    out = tmp_path / "classifier"
    assert (
        main(
            [
                "train",
                "classifier",
                "--data",
                small_shards,
                "--out",
                str(out),
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (out / "checkpoints" / "final.pt").stat().st_size > 0
    assert json.loads((out / "config.json").read_text())["batch_size"] == 8


def test_evaluate_without_shards_says_what_to_run(tmp_path, capsys):
    code = main(["evaluate", "--data", str(tmp_path), "--unet", "u", "--classifier", "c", "--out", str(tmp_path)])
    assert code == 2 and "mammo standardize" in capsys.readouterr().err


def test_data_inspect_prints_counts_and_draws_a_contact_sheet(small_shards, tmp_path, capsys):
    from PIL import Image

    sheet = tmp_path / "sheet.png"
    assert main(["data", "inspect", small_shards, "--sheet", str(sheet), "--per-group", "2"]) == 0
    text = capsys.readouterr().out
    assert "32 samples written, 0 rejected" in text and "class balance" in text and str(sheet) in text
    picture = Image.open(sheet)  # a row per (source, label): mias normal/benign/malignant, dicom unknown
    assert picture.size == (2 * 160, 4 * 160)
    pixels = __import__("numpy").asarray(picture)
    assert ((pixels[..., 0] == 255) & (pixels[..., 1] == 40)).any()  # a lesion outlined in red


HELP_IMPORTS = """
import sys
from mammolibs.cli import get_parser, main
commands = next(a for a in get_parser()._actions if a.dest == "command").choices
helps = [[c, "--help"] for c in commands if c not in ("train", "data", "pipeline")]
helps += [["train", stage, "--help"] for stage in ("encoder", "autoencoder", "finetune", "classifier")]
helps += [["data", "merge", "--help"], ["data", "inspect", "--help"], ["pipeline", "submit", "--help"], ["--help"]]
for argv in helps:
    try:
        main(argv)
    except SystemExit:
        pass
print(sorted({m.split(".")[0] for m in sys.modules} & {"torch", "monai", "kfp", "onnx", "onnxruntime", "aiohttp"}))
"""


def test_help_answers_without_loading_torch_or_kfp():
    """Every --help answers from argparse alone: torch, MONAI, KFP, ONNX and aiohttp load only for work."""
    done = subprocess.run([sys.executable, "-c", HELP_IMPORTS], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-500:]
    assert " INFO " not in done.stderr and "WARNING" not in done.stderr  # no third-party lines in --help


def test_version_and_python_m():
    done = subprocess.run([sys.executable, "-m", "mammolibs", "--version"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0 and done.stdout.strip() == f"mammoflow {__version__}"


def test_quiet_keeps_only_warnings_and_verbose_adds_debugging(small_shards, tmp_path):
    def train(*flags: str) -> str:
        command = [
            sys.executable,
            "-m",
            "mammolibs",
            *flags,
            "train",
            "classifier",
            "--data",
            small_shards,
            "--out",
            str(tmp_path / flags[0] if flags else tmp_path / "plain"),
            "--epochs",
            "1",
            "--no-progress",
            "--max-steps",
            "1",  # the log lines are the point, not the training: one step of a small model
            "--model",
            "basic_unet",
            "--width",
            "4",
        ]
        return subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=True).stderr

    plain, quiet, verbose = train(), train("--quiet"), train("--verbose")
    assert "mammolibs.train.engine INFO classifier on cpu" in plain and " DEBUG " not in plain
    assert " INFO " not in quiet and "mammolibs" not in quiet
    assert "mammolibs.train.engine DEBUG classifier settings: {" in verbose
