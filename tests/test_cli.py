"""The ``mammo`` command line: standardize, evaluate, predict; every flag explained."""
from __future__ import annotations

import argparse
import json

import pytest

from mammolibs.cli import get_parser, main


def test_every_subcommand_flag_has_help():
    parser = get_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(subcommands) == {"standardize", "data", "train", "evaluate", "generalize", "predict", "serve", "export", "pipeline"}
    parsers = list(subcommands.values())
    while parsers:  # nested ones too: data inspect, pipeline submit
        sub = parsers.pop()
        assert all(action.help for action in sub._actions), sub.prog
        parsers += [p for a in sub._actions if isinstance(a, argparse._SubParsersAction) for p in a.choices.values()]


def test_standardize_command_writes_shards_and_reports_counts(mias_subset, tmp_path, capsys):
    out = tmp_path / "shards"
    code = main(["standardize", "--source", "mias", "--input", str(mias_subset), "--output", str(out),
                 "--image-size", "32", "--no-progress"])
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
    assert main(["train", "classifier", "--data", small_shards, "--out", str(out), "--epochs", "1",
                 "--batch-size", "8", "--no-progress"]) == 0
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
