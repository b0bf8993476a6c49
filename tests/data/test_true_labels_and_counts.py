"""Labels and counts that are true: malformed mini-MIAS coordinates are rejected (not silently made
label-only), a lesion lost in the crop and resize is kept label-only and said so, and every file of a
BUSI folder is an input, read or rejected, so ``inputs == written + rejected`` always holds; a film with
benign and malignant findings is kept, malignant, each lesion with its own class."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from mammolibs.data.shards import iter_shard
from mammolibs.data.snips import labelled_lesions, make_snips
from mammolibs.data.standardize import LOST_MASK, standardize


def rejects(out: Path) -> dict[str, str]:
    lines = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    return {Path(r["file"]).name: r["reason"] for r in lines}


def samples(out: Path) -> list:
    return [s for shard in sorted(out.glob("shard-*.tar")) for s in iter_shard(str(shard))]


def test_malformed_mias_coordinates_are_rejected_and_lost_lesions_kept_label_only(mias_dir, tmp_path, caplog):
    folder = tmp_path / "mias"
    folder.mkdir()
    lines = {
        "mdb003": "mdb003 G CIRC B -535 425 197",  # negative
        "mdb004": "mdb004 G CIRC B 522.5 280 69",  # decimal
        "mdb007": "mdb007 D NORM 1 2",  # a normal film with coordinates
        "mdb008": "mdb008 D CIRC M 200 300",  # no radius
        "mdb034": "mdb034 D CIRC M 200 300 " + "9" * 5000,  # a number no film has (Python refuses to read it)
        "mdb012": "mdb012 F CIRC B 471 458 40",  # as published
        "mdb033": "mdb033 F NORM",
        "mdb011": "mdb011 F CIRC B 471 458 0",
    }  # radius 0: one pixel, gone at 64 px
    for film in lines:
        shutil.copy(mias_dir / f"{film}.pgm", folder)
    (folder / "Info.txt").write_text("\n".join(lines.values()) + "\n")
    (folder / "mdb012 copy.pgm").write_bytes((folder / "mdb012.pgm").read_bytes())
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        result = standardize([("mias", str(folder))], str(out), image_size=64, progress=False)
    assert result.inputs == result.written + result.rejected == 9
    found = rejects(out)
    assert set(found) == {"mdb003.pgm", "mdb004.pgm", "mdb007.pgm", "mdb008.pgm", "mdb034.pgm", "mdb012 copy.pgm"}
    assert "malformed coordinates '200 300 9999" in found["mdb034.pgm"] and len(found["mdb034.pgm"]) < 300
    for film, coordinates in (("mdb003", "-535 425 197"), ("mdb004", "522.5 280 69"), ("mdb008", "200 300")):
        assert f"malformed coordinates '{coordinates}'" in found[f"{film}.pgm"]
    assert "extra fields '1 2'" in found["mdb007.pgm"] and "not a mini-MIAS film name" in found["mdb012 copy.pgm"]
    assert sorted(s.label for s in samples(out)) == ["benign", "benign", "normal"]
    lost = [s for s in samples(out) if s.meta.get("label_only")]
    assert len(lost) == 1 and lost[0].label == "benign" and not lost[0].meta["localized"] and not lost[0].mask.any()
    assert lost[0].meta["label_only"] == LOST_MASK and "mdb011.pgm kept label-only" in caplog.text
    kept = [s for s in samples(out) if s.label == "benign" and s.meta["localized"]]
    assert len(kept) == 1 and kept[0].mask.any()


def test_every_file_of_a_busi_folder_is_read_or_rejected(busi_dir, tmp_path):
    published = busi_dir / "Dataset_BUSI_with_GT"
    root = tmp_path / "in" / "Dataset_BUSI_with_GT"
    for label in ("benign", "malignant", "normal"):
        (root / label).mkdir(parents=True)
        for image in sorted(p for p in (published / label).glob("*.png") if "_mask" not in p.name)[:2]:
            for found in (published / label).glob(f"{image.stem}*.png"):  # the image and its masks
                shutil.copy(found, root / label)
    benign = root / "benign"
    first, second = sorted(p.stem for p in benign.glob("*.png") if "_mask" not in p.name)
    shutil.copy(benign / f"{first}.png", benign / f"{first} copy.png")
    shutil.copy(benign / f"{second}.png", benign / "Benign (1018).PNG")  # another case: read
    shutil.copy(benign / f"{second}_mask.png", benign / "Benign (1018)_mask.PNG")
    shutil.copy(benign / f"{second}_mask.png", benign / "benign (1099)_mask.png")  # a mask without its image
    (benign / "extra").mkdir()
    shutil.copy(benign / f"{first}.png", benign / "extra" / "benign (1).png")
    (root / "notes.txt").write_text("scanned in 2018")
    (benign / ".DS_Store").write_bytes(b"\0")
    result = standardize([("busi", str(tmp_path / "in"))], str(tmp_path / "out"), image_size=64, progress=False)
    images = 7  # six published images and Benign (1018).PNG
    assert result.written == images
    assert result.inputs == result.written + result.rejected == images + 4
    found = rejects(tmp_path / "out")
    assert set(found) == {f"{first} copy.png", "benign (1099)_mask.png", "benign (1).png", "notes.txt"}
    assert (
        "not a BUSI file name" in found[f"{first} copy.png"]
        and "not a BUSI file name" in found["benign (1099)_mask.png"]
    )
    assert "not in a normal/benign/malignant folder" in found["benign (1).png"] + found["notes.txt"]


def test_a_film_with_benign_and_malignant_findings_is_malignant_and_each_lesion_keeps_its_class(mias_dir, tmp_path):
    folder = tmp_path / "mias"
    folder.mkdir()
    shutil.copy(mias_dir / "mdb012.pgm", folder)
    (folder / "Info.txt").write_text("mdb012 F CIRC B 471 458 25\nmdb012 F SPIC M 471 580 25\n")
    out = tmp_path / "out"
    result = standardize([("mias", str(folder))], str(out), image_size=128, progress=False)
    assert (result.written, result.rejected) == (1, 0)
    [sample] = samples(out)
    assert sample.label == "malignant" and sample.meta["localized"]
    assert sorted(lesion["label"] for lesion in sample.meta["lesions"]) == ["benign", "malignant"]
    found = labelled_lesions(sample)
    assert sorted(label for _, label in found) == ["benign", "malignant"]
    benign_box = next(box for box, label in found if label == "benign")
    malignant_box = next(box for box, label in found if label == "malignant")
    assert benign_box[1] > malignant_box[1]  # the benign lesion is lower on the film (Info.txt counts y upwards)
    assert sorted(label for _, label in make_snips([sample], size=32) if label) == [1, 2]  # benign, malignant
