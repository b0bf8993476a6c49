"""Each source reader on real files in their published layouts."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from mammolibs.data.images import read_dicom
from mammolibs.data.readers import get_reader, reader_names
from mammolibs.data.readers.mias import parse_info
from mammolibs.data.sample import RejectedInput, truth_mask
from mammolibs.data.shards import committed_shards, decode_meta, read_shard
from mammolibs.data.standardize import standardize
from mammolibs.data.vocabulary import VOCABULARY


def _by_key(source: str, folder) -> dict:
    return {item.key: item for item in get_reader(source)(str(folder))}


def test_registry_knows_every_builtin_reader():
    assert {"mias", "busi", "dicom"} <= set(reader_names())
    with pytest.raises(KeyError, match="choose one of"):
        get_reader("nope")


def test_mias_reads_every_film_with_labels_patients_and_laterality(mias_dir):
    items = _by_key("mias", mias_dir)
    assert len(items) == 100
    normal, benign = items["mdb011"].load(), items["mdb012"].load()
    assert normal.label == "normal" and not normal.mask.any()
    assert benign.label == "benign" and benign.image.shape == (1024, 1024)
    assert normal.patient_id == benign.patient_id  # films 2k-1 and 2k are one patient
    assert (normal.laterality, benign.laterality) == ("R", "L")
    assert items["mdb110"].load().label == "malignant"


def test_mias_circle_has_its_origin_at_the_bottom_left(mias_dir):
    sample = _by_key("mias", mias_dir)["mdb012"].load()  # mdb012 F CIRC B 471 458 40
    rows, cols = np.nonzero(sample.mask)
    assert abs(cols.mean() - 471) < 1 and abs(rows.mean() - (1023 - 458)) < 1
    assert abs(sample.mask.sum() - np.pi * 40**2) / (np.pi * 40**2) < 0.02


def test_mias_film_with_several_abnormalities_has_one_region_each(mias_dir):
    sample = _by_key("mias", mias_dir)["mdb226"].load()  # three calcification clusters
    assert ndimage.label(sample.mask)[1] == 3 and sample.label == "benign"


def test_mias_calcification_without_coordinates_is_label_only(mias_dir):
    sample = _by_key("mias", mias_dir)["mdb216"].load()  # mdb216 D CALC M *NOTE 3*
    assert sample.mask is None and sample.label == "malignant"


def test_mias_info_parser_reads_lines_with_and_without_coordinates():
    films = parse_info("mdb001 G CIRC B 535 425 197\nmdb003 D NORM \nmdb233 G CALC M *NOTE 3*\n")
    assert films["mdb001"][0]["centre"] == (535, 425, 197)
    assert films["mdb003"][0]["class"] == "NORM" and films["mdb233"][0]["centre"] is None


def test_mias_film_missing_from_info_is_rejected_with_its_name(tmp_path, mias_dir):
    (tmp_path / "Info.txt").write_text("mdb003 D NORM\n")
    (tmp_path / "mdb004.pgm").write_bytes((mias_dir / "mdb004.pgm").read_bytes())
    [item] = get_reader("mias")(str(tmp_path))
    with pytest.raises(RejectedInput, match="mdb004.pgm.*no line in Info.txt"):
        item.load()


def test_busi_reads_every_image_and_unions_its_masks(busi_dir, busi_counts):
    items = _by_key("busi", busi_dir)
    assert len(items) == sum(busi_counts.values())
    labels = [key.split("-")[0] for key in items]
    assert {label: labels.count(label) for label in busi_counts} == busi_counts
    sample = items["benign-100"].load()  # has _mask.png and _mask_1.png
    folder = busi_dir / "Dataset_BUSI_with_GT" / "benign"
    first = np.asarray(__import__("PIL.Image").Image.open(folder / "benign (100)_mask.png").convert("L")) > 0
    second = np.asarray(__import__("PIL.Image").Image.open(folder / "benign (100)_mask_1.png").convert("L")) > 0
    assert np.array_equal(sample.mask, first | second) and (sample.mask & ~first).any()
    assert sample.image.ndim == 2 and sample.label == "benign"  # RGB file of grey content -> one channel
    assert not items["normal-1"].load().mask.any()


def test_dicom_folder_decodes_real_rle_mammograms_keeping_16_bits(dicom_dir):
    items = list(get_reader("dicom")(str(dicom_dir)))
    assert len(items) == 8
    sample = items[0].load()
    assert sample.label == "unknown" and sample.mask is None and sample.laterality in ("L", "R")
    assert sample.image.max() > 255 and len(np.unique(sample.image)) > 256  # more than 8 bits of grey
    assert sample.patient_id and "PatientName" not in sample.meta


def _rewritten(source, tmp_path, **changes) -> str:
    ds = pydicom.dcmread(source)
    ds.decompress()
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    path = tmp_path / "changed.dcm"
    ds.save_as(path)
    return str(path)


def test_dicom_monochrome1_is_inverted(dicom_dir, tmp_path):
    source = sorted(dicom_dir.rglob("*.dcm"))[0]
    original, _ = read_dicom(str(source))
    inverted, _ = read_dicom(_rewritten(source, tmp_path, PhotometricInterpretation="MONOCHROME1"))
    np.testing.assert_allclose(inverted, original.max() - original)


def test_dicom_window_is_applied(dicom_dir, tmp_path):
    source = sorted(dicom_dir.rglob("*.dcm"))[0]
    windowed, _ = read_dicom(_rewritten(source, tmp_path, WindowCenter=20000, WindowWidth=10000))
    original, _ = read_dicom(str(source))
    assert len(np.unique(windowed)) < len(np.unique(original))
    assert np.all(windowed[original <= 15000] == windowed.min()) and np.all(
        windowed[original >= 25000] == windowed.max()
    )


def test_truncated_dicom_is_rejected_naming_the_file(dicom_dir, tmp_path):
    source = sorted(dicom_dir.rglob("*.dcm"))[0]
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(source.read_bytes()[:5000])
    [item] = get_reader("dicom")(str(tmp_path))
    with pytest.raises(RejectedInput, match="broken.dcm"):
        item.load()


def test_dicom_compressed_as_jpeg_2000_decodes_to_the_same_pixels(dicom_dir, tmp_path):
    from pydicom.uid import JPEG2000Lossless

    source = sorted(dicom_dir.rglob("*.dcm"))[0]
    ds = pydicom.dcmread(source)
    ds.decompress()
    ds.compress(JPEG2000Lossless)
    ds.save_as(tmp_path / "j2k.dcm")
    [item] = get_reader("dicom")(str(tmp_path))
    original, _ = read_dicom(str(source))
    np.testing.assert_array_equal(item.load().image, original)


def test_bus_bra_reads_every_row_with_its_patient_label_mask_and_scanner(busbra_dir, busbra_rows):
    items = _by_key("bus-bra", busbra_dir.parent)  # the folder above BUSBRA/ is accepted too
    assert sorted(items) == sorted(row["ID"] for row in busbra_rows)
    rows = {row["ID"]: row for row in busbra_rows}
    for image_id in ("bus_0001-l", "bus_0002-r", sorted(rows)[-1]):
        sample, row = items[image_id].load(), rows[image_id]
        assert sample.image.shape == (int(row["Height"]), int(row["Width"]))
        expected = np.asarray(__import__("PIL.Image").Image.open(busbra_dir / "Masks" / f"mask_{image_id[4:]}.png"))
        assert np.array_equal(sample.mask, (expected if expected.ndim == 2 else expected[..., 0]) > 0)
        assert sample.label == row["Pathology"] and sample.patient_id == f"bus-bra-{int(row['Case'])}"
        assert sample.laterality == {"left": "L", "right": "R", "single": ""}[row["Side"]]
        assert sample.meta["modality"] == "US" and sample.meta["birads"] == row["BIRADS"]
        assert sample.meta["scanner"] and row["Device"].upper().startswith(sample.meta["scanner"])
        x, y, w, h = (int(v) for v in row["BBOX"].strip("[]").split(","))
        rows_, cols = np.nonzero(sample.mask)  # the published box encloses the mask
        assert x - 2 <= cols.min() and cols.max() <= x + w + 2 and y - 2 <= rows_.min() and rows_.max() <= y + h + 2


def test_bus_bra_standardized_keeps_a_patients_images_in_one_split_and_only_vocabulary_metadata(
    busbra_dir, busbra_rows, tmp_path
):
    result = standardize(
        [("bus-bra", str(busbra_dir))], str(tmp_path / "out"), image_size=32, workers=2, progress=False
    )
    assert result.inputs == result.written == len(busbra_rows) and result.rejected == 0
    labels = result.manifest["counts"]["label"]
    assert labels == {p: sum(row["Pathology"] == p for row in busbra_rows) for p in ("benign", "malignant")}
    splits: dict[str, set[str]] = {}
    scanners = set()
    for shard in committed_shards(str(tmp_path / "out")):
        for key, parts in read_shard(f"{tmp_path / 'out'}/{shard['name']}").items():
            meta = decode_meta(parts, key)
            splits.setdefault(meta["patient"], set()).add(meta["split"])
            scanners.add(meta["scanner"])
            assert meta["histology"] in VOCABULARY["histology"] and "bus_" not in json.dumps(meta)
    assert len(splits) == len({row["Case"] for row in busbra_rows})  # one pseudonym per Case
    assert all(len(s) == 1 for s in splits.values())
    assert scanners == VOCABULARY["scanner"]


def test_a_normal_image_without_an_outline_is_segmentation_truth_and_a_lesion_without_one_is_label_only():
    empty = truth_mask("normal", None, (3, 4))
    assert empty is not None and empty.shape == (3, 4) and empty.dtype == bool and not empty.any()
    assert truth_mask("benign", None, (3, 4)) is None and truth_mask("unknown", None, (3, 4)) is None
    outlined = np.ones((3, 4), dtype=bool)
    assert truth_mask("malignant", outlined, (3, 4)) is outlined
