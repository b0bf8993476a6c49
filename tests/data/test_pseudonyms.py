"""Pseudonyms that hold against an attacker: no public default salt, a random salt kept only where the
user says, short salts refused, and patient hashes that knowing the scheme and the id space does not undo."""

from __future__ import annotations

import hashlib
import json
import logging
import stat

import numpy as np
import pytest
from PIL import Image

from mammolibs.cli import main
from mammolibs.data.pseudonyms import SALT_VARIABLE, pseudonym, pseudonym_key
from mammolibs.data.shards import iter_shard
from mammolibs.data.standardize import standardize
from tests.data.layouts import film, write_csv

PATIENTS = [f"{number:06d}" for number in (123456, 654321, 100200)]


@pytest.fixture()
def clinic(tmp_path):
    """A clinic's own folder: three patients with six-digit ids (a space of a million)."""
    folder = tmp_path / "clinic"  # outputs go beside it, never inside
    folder.mkdir()
    for index, patient in enumerate(PATIENTS):
        Image.fromarray((film(seed=index)[0] // 16).astype(np.uint8)).save(folder / f"{index}.png")
    write_csv(
        folder / "labels.csv",
        ["image", "label", "patient_id"],
        [[f"{index}.png", "normal", patient] for index, patient in enumerate(PATIENTS)],
    )
    return folder


def written(out) -> dict:
    samples = [s for shard in sorted(out.glob("shard-*.tar")) for s in iter_shard(str(shard))]
    return {s.key: s.meta["patient"] for s in samples}


def every_byte(out) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file())


def test_without_a_salt_each_run_gets_a_random_one_kept_nowhere(clinic, tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(SALT_VARIABLE)
    with caplog.at_level(logging.WARNING):
        standardize([("csv", str(clinic))], str(tmp_path / "a"), image_size=32, progress=False)
    assert "no salt given" in caplog.text and "--salt-file" in caplog.text
    standardize([("csv", str(clinic))], str(tmp_path / "b"), image_size=32, progress=False)
    first, second = written(tmp_path / "a"), written(tmp_path / "b")
    assert len(first) == len(second) == 3 and not set(first.values()) & set(second.values())
    with pytest.raises(ValueError, match="other salt_check"):  # a rerun cannot silently mix two salts
        standardize([("csv", str(clinic))], str(tmp_path / "a"), image_size=32, progress=False)


def test_the_old_public_scheme_and_the_id_space_do_not_reveal_patients(clinic, tmp_path, monkeypatch):
    monkeypatch.delenv(SALT_VARIABLE)
    standardize([("csv", str(clinic))], str(tmp_path / "out"), image_size=32, progress=False)
    stored = set(written(tmp_path / "out").values())
    for guess in ("mammoflow", "", "salt", "secret"):  # public defaults an attacker would try first
        key = pseudonym_key(guess) if guess else b""
        for patient in PATIENTS:
            assert hashlib.sha256(f"{guess}:{patient}".encode()).hexdigest()[:16] not in stored
            assert pseudonym(patient, key) not in stored
    settings = json.loads((tmp_path / "out" / "standardize.json").read_text())
    assert set(settings) == {"image_size", "salt_check", "samples_per_shard"}
    for patient in PATIENTS:
        assert patient.encode() not in every_byte(tmp_path / "out")


def test_a_salt_file_is_made_once_private_and_reused(clinic, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(SALT_VARIABLE)
    salt_file = tmp_path / "secrets" / "salt"
    argv = [
        "standardize",
        "--source",
        "csv",
        "--input",
        str(clinic),
        "--image-size",
        "32",
        "--no-progress",
        "--salt-file",
        str(salt_file),
    ]
    assert main([*argv, "--output", str(tmp_path / "a")]) == 0
    salt = salt_file.read_text()
    assert len(salt) >= 32 and stat.S_IMODE(salt_file.stat().st_mode) == 0o600
    assert main([*argv, "--output", str(tmp_path / "b")]) == 0
    assert main([*argv, "--output", str(tmp_path / "a")]) == 0  # a rerun resumes: same salt
    assert salt_file.read_text() == salt and written(tmp_path / "a") == written(tmp_path / "b")
    assert salt.encode() not in every_byte(tmp_path / "a")


@pytest.mark.parametrize(
    "flags, complaint",
    [(["--salt", "hospital"], "at least 16 random"), (["--salt", "x" * 20, "--salt-file", "salt"], "not both")],
)
def test_weak_or_doubled_salts_are_bad_arguments(flags, complaint, clinic, tmp_path, capsys):
    assert (
        main(["standardize", "--source", "csv", "--input", str(clinic), "--output", str(tmp_path / "out"), *flags]) == 2
    )
    error = capsys.readouterr().err
    assert complaint in error and "Traceback" not in error and not (tmp_path / "out").exists()
