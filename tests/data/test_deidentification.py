"""No patient data leaves standardize: every attribute of the DICOM PS3.15 Basic Profile, and every
other text attribute of the DICOM dictionary except the few standardize keeps on purpose, is
filled with a marker string, and no marker may appear in any byte written or logged."""

from __future__ import annotations

import json
import logging
import re
import shutil

import pydicom
import pytest
from pydicom.datadict import DicomDictionary
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from mammolibs.cli import main
from mammolibs.data.shards import iter_shard
from mammolibs.data.validate import SPLITS
from mammolibs.data.vocabulary import VOCABULARY
from tests.data.layouts import film, write_dicom

KEPT = {"Modality", "ImageLaterality", "Laterality", "ViewPosition", "SpecificCharacterSet"}
"""Kept or needed to decode text; none is in the Basic Profile."""
TEXT_VRS = {"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT", "DS", "IS", "UI"}


def _marker(vr: str, number: int) -> str:
    if vr == "UI":
        return f"1.2.999.{number:05d}.7"
    if vr in ("DS", "IS"):
        return f"9{number:05d}7"
    return f"MRK{number:05d}X"


def _fill_every_attribute(ds: Dataset) -> list[str]:
    """Put a unique marker in every text attribute and one nested item in every sequence."""
    markers = []
    for number, (tag, (vr, _, _, _, keyword)) in enumerate(sorted(DicomDictionary.items())):
        group = tag >> 16
        if group in (0x0000, 0x0002, 0x0028, 0x7FE0) or keyword in KEPT or not keyword:
            continue
        if vr == "SQ":
            item = Dataset()
            item.PatientName = _marker("PN", 90000 + number % 9999)
            markers.append(str(item.PatientName))
            ds.add_new(tag, "SQ", [item])
        elif vr in TEXT_VRS:
            markers.append(_marker(vr, number))
            ds.add_new(tag, vr, markers[-1])
    block = ds.private_block(0x0009, "ACME MAMMO", create=True)
    block.add_new(0x01, "LO", "MRKPRIVATEX")
    return markers + ["MRKPRIVATEX"]


@pytest.fixture
def lenient_pydicom():
    """Marker strings are not valid dates or ages; let pydicom write and read them as they are."""
    from pydicom import config

    before = config.settings.writing_validation_mode, config.settings.reading_validation_mode
    config.settings.writing_validation_mode = config.settings.reading_validation_mode = config.IGNORE
    yield
    config.settings.writing_validation_mode, config.settings.reading_validation_mode = before


def test_no_marker_of_any_identifying_attribute_reaches_shards_manifest_logs_or_rejects(
    tmp_path, caplog, capsys, lenient_pydicom
):
    source = tmp_path / "dicoms"
    path = write_dicom(source / "case" / "film.dcm", film(lesion=(60, 30, 8))[0])
    ds = pydicom.dcmread(path)
    markers = _fill_every_attribute(ds)
    ds.save_as(path)
    assert len(markers) > 2000 and b"MRK00" in path.read_bytes()  # the test can see a leak
    damaged = source / "case" / "damaged.dcm"
    shutil.copy(path, damaged)
    damaged.write_bytes(path.read_bytes()[:-500])  # same header, truncated pixels: a reject

    caplog.set_level(logging.DEBUG)
    out = tmp_path / "out"
    status = main(
        [
            "standardize",
            "--source",
            "dicom",
            "--input",
            str(source),
            "--output",
            str(out),
            "--image-size",
            "32",
            "--no-progress",
        ]
    )
    printed = capsys.readouterr()
    assert status == 3 and "2 inputs: 1 written, 1 rejected" in printed.out
    assert main(["data", "inspect", str(out)]) == 0
    written = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    text = (printed.out + printed.err + capsys.readouterr().out + caplog.text).encode()
    assert b"damaged.dcm" in written and b"shard-" in written  # the rejects report and the manifest are there
    leaked = [m for m in markers if m.encode() in written or m.encode() in text]
    assert not leaked, f"{len(leaked)} identifying values leaked, e.g. {leaked[:5]}"


def test_names_and_free_text_never_leave_standardize(tmp_path, caplog, capsys):
    """A folder named after a patient, free text in ViewPosition and an odd laterality: with
    --redact-paths no trace of them is written or logged; without it rejects name inputs relative to
    --input; and every field a shard carries is one of the forms below."""
    source = tmp_path / "dicoms"
    case = source / "Doe^Jane_19700101"
    path = write_dicom(case / "film.dcm", film(lesion=(60, 30, 8))[0], ViewPosition="DOE^JANE", ImageLaterality="Q")
    (case / "damaged.dcm").write_bytes(path.read_bytes()[:-500])
    caplog.set_level(logging.DEBUG)
    argv = ["standardize", "--source", "dicom", "--input", str(source), "--image-size", "32", "--no-progress"]
    assert main([*argv, "--output", str(tmp_path / "plain")]) == 3
    [reject] = [json.loads(line) for line in (tmp_path / "plain" / "rejects.jsonl").read_text().splitlines()]
    assert reject["file"] == "Doe^Jane_19700101/damaged.dcm" and str(tmp_path) not in json.dumps(reject)

    caplog.clear()
    capsys.readouterr()
    out = tmp_path / "redacted"
    assert main([*argv, "--output", str(out), "--redact-paths"]) == 3
    printed = capsys.readouterr()
    written = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("mammolibs"))
    for secret in ("Doe^Jane", "DOE^JANE", "19700101", "damaged.dcm", "film.dcm"):
        assert secret.encode() not in written and secret not in printed.out + printed.err + logged, secret
    [reject] = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert re.fullmatch(r"file-[0-9a-f]{16}", reject["file"]) and reject["reason"].startswith(reject["file"] + ": ")

    [shard] = sorted(out.glob("shard-*.tar"))
    [sample] = list(iter_shard(str(shard)))
    meta = sample.meta
    assert set(meta) <= {
        "label",
        "source",
        "patient",
        "split",
        "laterality",
        "localized",
        "original_size",
        "crop",
        "flipped",
        "scale",
        "label_only",
        "lesions",
        *VOCABULARY,
    }
    assert (meta["label"], meta["source"], meta["laterality"], meta["modality"]) == ("unknown", "dicom", "", "MG")
    assert "view" not in meta and re.fullmatch(r"[0-9a-f]{16}", meta["patient"]) and meta["split"] in SPLITS
    assert (
        isinstance(meta["localized"], bool) and isinstance(meta["flipped"], bool) and isinstance(meta["scale"], float)
    )
    assert all(isinstance(v, int) for v in meta["original_size"] + meta["crop"])
    assert re.fullmatch(r"dicom-[0-9a-f]{16}", sample.key)
    index = json.loads(shard.with_name(shard.name[:-4] + ".index.json").read_text())
    assert set(index) == {"name", "split", "samples", "sha256", "contents"}
    span = index["contents"][0]["span"]
    assert index["contents"] == [
        {"key": sample.key, "label": "unknown", "source": "dicom", "localized": False, "span": [0, span[1]]}
    ]


def test_no_header_value_or_unredacted_path_reaches_a_reject_or_a_log(tmp_path, caplog, capfd, lenient_pydicom):
    """A folder whose name holds a ':' and identifying text after it, a numeric attribute holding a
    name, a size that is not a number: with --redact-paths none of it is written, printed or logged,
    pydicom's own warnings included."""
    case = tmp_path / "dicoms" / "Doe^Jane:MRN123456"
    good = write_dicom(case / "film.dcm", film(lesion=(60, 30, 8))[0])
    for name, tag, vr, value in (
        ("frames.dcm", 0x00280008, "IS", b"MRN654321 "),  # NumberOfFrames: text where a number belongs
        ("rows.dcm", 0x00280010, "US", b"MRN777"),  # Rows: six bytes of text where two bytes of number belong
    ):
        dataset = pydicom.dcmread(good)
        dataset[tag] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)
        dataset.save_as(case / name)
    caplog.set_level(logging.DEBUG)
    argv = ["standardize", "--source", "dicom", "--input", str(tmp_path / "dicoms"), "--image-size", "32"]
    assert main([*argv, "--output", str(tmp_path / "out"), "--redact-paths", "--no-progress"]) == 3
    printed = capfd.readouterr()
    written = b"".join(p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file())
    text = printed.out + printed.err + caplog.text
    assert "2 rejected" in printed.out
    for secret in ("Doe^Jane", "MRN123456", "MRN654321", "MRN777", "frames.dcm", "rows.dcm"):
        assert secret.encode() not in written and secret not in text, (secret, text[-2000:])
