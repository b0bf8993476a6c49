"""Each source reader on fixtures written in that source's published layout (and real files where
the development data has them): labels, masks, laterality, splits, and the quirks of each release."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pydicom
import pytest
from PIL import Image

from mammolibs.data.readers import get_reader
from mammolibs.data.sample import RejectedInput
from mammolibs.data.standardize import standardize
from tests.data.layouts import (
    CBIS_COLUMNS,
    cbis_row,
    cbis_series,
    film,
    inbreast_xml,
    write_csv,
    write_dicom,
    write_xls,
    write_xlsx,
)


def _items(source: str, root) -> dict:
    return {item.key: item for item in get_reader(source)(str(root))}


def test_cbis_ddsm_joins_abnormalities_tells_masks_from_crops_and_fixes_small_size_mismatches(tmp_path):
    image, lesion_1 = film(lesion=(50, 30, 8))
    _, lesion_2 = film(lesion=(110, 40, 10))
    cbis_series(tmp_path, "Mass-Training_P_00001_LEFT_CC", "full mammogram images", image + lesion_2 * 900)
    # abnormality 1: series described; abnormality 2: undescribed, mask 2 px taller than the image (a real quirk)
    cbis_series(tmp_path, "Mass-Training_P_00001_LEFT_CC_1", "ROI mask images", lesion_1.astype(np.uint16) * 255)
    cbis_series(tmp_path, "Mass-Training_P_00001_LEFT_CC_1", "cropped images", image[40:60, 20:40], number=2)
    taller = np.vstack([lesion_2, np.zeros((2, lesion_2.shape[1]), bool)]).astype(np.uint16) * 255
    cbis_series(tmp_path, "Mass-Training_P_00001_LEFT_CC_2", "", taller)
    cbis_series(tmp_path, "Mass-Training_P_00001_LEFT_CC_2", "", image[100:120, 30:50], number=2)
    calc, calc_mask = film(right=True, lesion=(80, 90, 6), seed=1)
    cbis_series(tmp_path, "Calc-Test_P_00002_RIGHT_MLO", "full mammogram images", calc)
    cbis_series(tmp_path, "Calc-Test_P_00002_RIGHT_MLO_1", "ROI mask images", calc_mask.astype(np.uint16) * 255)
    write_csv(
        tmp_path / "mass_case_description_train_set.csv",
        CBIS_COLUMNS["mass"],
        [
            cbis_row("mass", "P_00001", "LEFT", "CC", 1, "BENIGN_WITHOUT_CALLBACK"),
            cbis_row("mass", "P_00001", "LEFT", "CC", 2, "MALIGNANT", assessment=5),
        ],
    )
    write_csv(
        tmp_path / "calc_case_description_test_set.csv",
        CBIS_COLUMNS["calc"],
        [cbis_row("calc", "P_00002", "RIGHT", "MLO", 1, "BENIGN", split="Test", assessment=3)],
    )

    items = _items("cbis-ddsm", tmp_path)
    assert sorted(items) == ["Calc-Test_P_00002_RIGHT_MLO", "Mass-Training_P_00001_LEFT_CC"]
    mass = items["Mass-Training_P_00001_LEFT_CC"].load()
    assert mass.image.shape == (160, 112) and mass.label == "malignant" and mass.laterality == "L"
    union = lesion_1 | lesion_2  # both ROI masks, not the crops; mask 2 resized from 162 rows to 160
    assert (mass.mask & union).sum() / (mass.mask | union).sum() > 0.9 and np.array_equal(mass.mask[:80], lesion_1[:80])
    assert (mass.official_split, mass.patient_id, mass.meta["view"], mass.meta["birads"]) == (
        "train",
        "P_00001",
        "CC",
        5,
    )
    calc = items["Calc-Test_P_00002_RIGHT_MLO"].load()
    assert (calc.label, calc.laterality, calc.official_split) == ("benign", "R", "test")
    assert np.array_equal(calc.mask, calc_mask) and calc.meta["abnormality"] == ["calcification"]


def test_cbis_ddsm_rejects_a_missing_mask_and_an_unknown_pathology(tmp_path):
    image, _ = film(lesion=(50, 30, 8))
    cbis_series(tmp_path, "Mass-Training_P_00003_LEFT_CC", "full mammogram images", image)
    cbis_series(tmp_path, "Mass-Training_P_00004_LEFT_CC", "full mammogram images", image)
    cbis_series(tmp_path, "Mass-Training_P_00004_LEFT_CC_1", "ROI mask images", image)
    write_csv(
        tmp_path / "mass_case_description_train_set.csv",
        CBIS_COLUMNS["mass"],
        [
            cbis_row("mass", "P_00003", "LEFT", "CC", 1, "MALIGNANT"),
            cbis_row("mass", "P_00004", "LEFT", "CC", 1, "UNSURE"),
        ],
    )
    items = _items("cbis-ddsm", tmp_path)
    with pytest.raises(RejectedInput, match="P_00003_LEFT_CC abnormality 1: ROI mask folder missing"):
        items["Mass-Training_P_00003_LEFT_CC"].load()
    with pytest.raises(RejectedInput, match="unknown pathology 'UNSURE'"):
        items["Mass-Training_P_00004_LEFT_CC"].load()


def test_cbis_ddsm_reads_the_real_rle_mammograms_in_the_tcia_tree(dicom_dir, tmp_path):
    root = tmp_path / "cbis"  # the output lies apart from it
    real = {pydicom.dcmread(p, stop_before_pixels=True).PatientID: p for p in sorted(dicom_dir.rglob("*.dcm"))}
    folder = "Mass-Test_P_00173_LEFT_CC"
    cbis_series(root, folder, "full mammogram images", source=real[folder])
    header = pydicom.dcmread(real[folder], stop_before_pixels=True)
    mask = np.zeros((header.Rows, header.Columns), np.uint16)
    mask[2000:2300, 900:1200] = 255
    cbis_series(root, f"{folder}_1", "ROI mask images", mask)
    write_csv(
        root / "mass_case_description_test_set.csv",
        CBIS_COLUMNS["mass"],
        [cbis_row("mass", "P_00173", "LEFT", "CC", 1, "BENIGN", split="Test")],
    )
    result = standardize([("cbis-ddsm", str(root))], str(tmp_path / "out"), image_size=128, progress=False)
    assert (result.inputs, result.written, result.rejected) == (1, 1, 0)
    sample = get_reader("cbis-ddsm")(str(root)).__next__().load()
    assert sample.image.shape == (header.Rows, header.Columns) and sample.mask.sum() == 300 * 300
    assert result.manifest["counts_by_split_source_label"] == {"test": {"cbis-ddsm": {"benign": 1}}}


@pytest.mark.parametrize("table", ["INbreast.xls", "INbreast.csv"])
def test_inbreast_reads_dicoms_plist_rois_and_the_birads_table(tmp_path, table):
    image, _ = film(right=True, lesion=(60, 80, 10))
    write_dicom(tmp_path / "AllDICOMs" / "20586908_6c613a14b80a8591_MG_R_CC_ANON.dcm", image, ImageLaterality="R")
    write_dicom(tmp_path / "AllDICOMs" / "20586934_6c613a14b80a8591_MG_L_ML_ANON.dcm", film()[0])
    write_dicom(tmp_path / "AllDICOMs" / "20586960_6c613a14b80a8591_MG_L_CC_ANON.dcm", film(seed=2)[0])
    (tmp_path / "AllXML").mkdir()
    (tmp_path / "AllXML" / "20586908.xml").write_bytes(
        inbreast_xml([[(70, 50), (90, 50), (90, 70), (70, 70)], [(20.5, 30.5)]])
    )
    columns = ["Patient ID", "Patient age", "Laterality", "View", "Acquisition date", "File Name", "ACR", "Bi-Rads"]
    rows = [
        ["removed", "", "R", "CC", "201001", 20586908, 2, "4c"],
        ["removed", "", "L", "MLO", "201001", 20586934, 2, 1],
    ]
    if table.endswith(".xls"):
        write_xls(tmp_path / table, columns, rows)
    else:
        write_csv(tmp_path / table, columns, rows, delimiter=";")
    items = _items("inbreast", tmp_path)
    lesion = items["20586908"].load()
    assert (lesion.label, lesion.laterality, lesion.meta["view"], lesion.patient_id) == (
        "malignant",
        "R",
        "CC",
        "6c613a14b80a8591",
    )
    assert lesion.mask[60, 80] and lesion.mask[30, 20] and not lesion.mask[10, 10]  # polygon and calcification disc
    normal = items["20586934"].load()
    assert normal.label == "normal" and normal.mask is not None and not normal.mask.any()
    with pytest.raises(RejectedInput, match="20586960 has no row in the INbreast table"):
        items["20586960"].load()


def test_cmmd_labels_each_breast_from_the_clinical_table(tmp_path):
    for n, (side, seed) in enumerate((("L", 0), ("R", 1), ("R", 2))):
        write_dicom(
            tmp_path / "CMMD" / "D1-0001" / "07-18-2010-NA-NA-79377" / "1.000000-NA-70244" / f"1-{n + 1}.dcm",
            film(right=side == "R", seed=seed)[0],
            ImageLaterality=side,
            PatientID="D1-0001",
        )
    write_dicom(
        tmp_path / "CMMD" / "D2-0001" / "07-18-2011-NA-NA-1" / "1.000000-NA-2" / "1-1.dcm",
        film()[0],
        ImageLaterality="L",
        PatientID="D2-0001",
    )
    write_xlsx(
        tmp_path / "CMMD_clinicaldata_revision.xlsx",
        ["ID1", "LeftRight", "Age", "number", "abnormality", "classification", "subtype"],
        [
            ["D1-0001", "R", 44, 2, "calcification", "Malignant", "Luminal A"],
            ["D1-0001", "L", 44, 1, "mass", "Benign", None],
        ],
    )
    samples = {key: item.load() for key, item in _items("cmmd", tmp_path).items()}
    labels = sorted((s.patient_id, s.laterality, s.label) for s in samples.values())
    assert labels == [
        ("D1-0001", "L", "benign"),
        ("D1-0001", "R", "malignant"),
        ("D1-0001", "R", "malignant"),
        ("D2-0001", "L", "unknown"),
    ]
    assert all(s.mask is None for s in samples.values())


def test_vindr_mammo_draws_finding_boxes_and_keeps_the_official_split(tmp_path):
    studies = {"st1": ["im1", "im2"], "st2": ["im3"]}
    for study, images in studies.items():
        for image_id in images:
            write_dicom(tmp_path / "images" / study / f"{image_id}.dicom", film(seed=len(image_id))[0])
    columns = [
        "study_id",
        "series_id",
        "image_id",
        "laterality",
        "view_position",
        "height",
        "width",
        "breast_birads",
        "breast_density",
        "split",
    ]
    write_csv(
        tmp_path / "breast-level_annotations.csv",
        columns,
        [
            ["st1", "se1", "im1", "L", "CC", 160, 112, "BI-RADS 4", "DENSITY C", "training"],
            ["st1", "se1", "im2", "L", "MLO", 160, 112, "BI-RADS 2", "DENSITY C", "training"],
            ["st2", "se2", "im3", "R", "CC", 160, 112, "BI-RADS 1", "DENSITY B", "test"],
        ],
    )
    write_csv(
        tmp_path / "finding_annotations.csv",
        columns[:9] + ["finding_categories", "finding_birads", "xmin", "ymin", "xmax", "ymax", "split"],
        [
            [
                "st1",
                "se1",
                "im1",
                "L",
                "CC",
                160,
                112,
                "BI-RADS 4",
                "DENSITY C",
                "['Mass']",
                "BI-RADS 4",
                10.5,
                20.0,
                30.2,
                40.0,
                "training",
            ],
            [
                "st2",
                "se2",
                "im3",
                "R",
                "CC",
                160,
                112,
                "BI-RADS 1",
                "DENSITY B",
                "['No Finding']",
                "",
                "",
                "",
                "",
                "",
                "test",
            ],
        ],
    )
    items = _items("vindr-mammo", tmp_path)
    suspicious, benign, normal = (items[k].load() for k in ("im1", "im2", "im3"))
    assert suspicious.label == "malignant" and suspicious.mask.sum() == 20 * 21 and suspicious.mask[20, 10]
    assert benign.label == "benign" and benign.mask is None  # BI-RADS 2 without boxes: label only
    assert normal.label == "normal" and not normal.mask.any() and normal.official_split == "test"
    assert suspicious.patient_id == benign.patient_id == "st1" and suspicious.official_split == "train"
    table = (tmp_path / "finding_annotations.csv").read_text().splitlines()
    for bad in ("abc", "1e400", "-5", "9" * 5000):  # text, infinite, negative, a number no film has
        rows = [*table, table[1].replace("im1", "im2").replace("10.5", bad)]
        (tmp_path / "finding_annotations.csv").write_text("\n".join(rows) + "\n")
        items = _items("vindr-mammo", tmp_path)  # one malformed row loses its image, never the source
        with pytest.raises(RejectedInput, match=r"im2\.dicom: finding box \(.{1,20}, 20\.0, 30\.2, 40\.0\)"):
            items["im2"].load()
        assert items["im1"].load().mask.sum() == 20 * 21 and items["im3"].load().label == "normal"


def test_dmid_reads_tiffs_ground_truth_pngs_and_mias_style_metadata(tmp_path):
    from PIL import Image

    (tmp_path / "TIFF Images").mkdir()
    (tmp_path / "Ground truth").mkdir()
    lesion_image, lesion_mask = film(lesion=(70, 40, 9))
    Image.fromarray(lesion_image).save(tmp_path / "TIFF Images" / "IMG001.tif")
    Image.fromarray(film(seed=3)[0]).save(tmp_path / "TIFF Images" / "IMG002.tif")
    Image.fromarray(film(seed=4)[0]).save(tmp_path / "TIFF Images" / "IMG003.tif")
    Image.fromarray(lesion_mask.astype(np.uint8) * 255).save(tmp_path / "Ground truth" / "IMG001.png")
    (tmp_path / "Metadata.txt").write_text("IMG001 D CIRC M 40 89 9\nIMG002 F NORM\nIMG003 G CALC B\n")
    items = _items("dmid", tmp_path)
    lesion, normal, calc = (items[k].load() for k in ("IMG001", "IMG002", "IMG003"))
    assert lesion.label == "malignant" and np.array_equal(lesion.mask, lesion_mask)
    assert normal.label == "normal" and not normal.mask.any()
    assert calc.label == "benign" and calc.mask is None and calc.meta["tissue"] == "G"


def test_kau_bcmd_labels_from_birads_folders_and_views_from_names(tmp_path):
    from PIL import Image

    for folder, case, name in (
        ("Birad1", "1001", "1001_RCC.jpg"),
        ("Birad5", "2002", "2002_LMLO.jpg"),
        ("BIRADS 3", "3003", "3003_L_CC.jpg"),
    ):
        (tmp_path / folder / case).mkdir(parents=True)
        Image.fromarray((film(seed=int(case))[0] // 16).astype(np.uint8)).save(tmp_path / folder / case / name)
    samples = {key.split("/")[-1]: item.load() for key, item in _items("kau-bcmd", tmp_path).items()}
    assert {k: (s.label, s.laterality, s.meta["view"], s.patient_id) for k, s in samples.items()} == {
        "1001_RCC.jpg": ("normal", "R", "CC", "kau-1001"),
        "2002_LMLO.jpg": ("malignant", "L", "MLO", "kau-2002"),
        "3003_L_CC.jpg": ("benign", "L", "CC", "kau-3003"),
    }


def test_csv_folder_reads_a_clinics_own_table_with_masks_and_splits(tmp_path):
    from PIL import Image

    image, mask = film(lesion=(50, 40, 8))
    clinic = tmp_path / "clinic"  # the output lies apart from it
    write_dicom(clinic / "scans" / "a.dcm", image)
    Image.fromarray(mask.astype(np.uint8) * 255).save(clinic / "scans" / "a_mask.png")
    Image.fromarray((film(seed=5)[0] // 16).astype(np.uint8)).save(clinic / "scans" / "b.png")
    write_csv(
        clinic / "labels.csv",
        ["image", "label", "patient_id", "mask", "laterality", "view", "split"],
        [
            ["scans/a.dcm", "malignant", "MRN-1", "scans/a_mask.png", "L", "CC", "test"],
            ["scans/b.png", "normal", "MRN-2", "", "R", "MLO", ""],
        ],
    )
    result = standardize([("csv", str(clinic))], str(tmp_path / "out"), image_size=64, progress=False)
    assert (result.inputs, result.written, result.rejected) == (2, 2, 0)
    assert result.manifest["counts_by_split_source_label"]["test"]["csv"]["malignant"] == 1  # its official split
    a = _items("csv", clinic)["scans/a.dcm"].load()
    assert np.array_equal(a.mask, mask) and a.official_split == "test" and a.patient_id == "MRN-1"


def test_a_clinic_table_reads_nothing_outside_its_folder(tmp_path):
    from PIL import Image

    folder, outside = tmp_path / "clinic", tmp_path / "elsewhere"
    (folder / "scans").mkdir(parents=True)
    outside.mkdir()
    Image.fromarray((film(seed=5)[0] // 16).astype(np.uint8)).save(folder / "scans" / "b.png")
    Image.fromarray((film(seed=6)[0] // 16).astype(np.uint8)).save(outside / "secret.png")
    (folder / "scans" / "link.png").symlink_to(outside / "secret.png")
    names = {
        "scans/b.png": "",  # the one file that may be read
        str(outside / "secret.png"): "not a plain path",
        "../elsewhere/secret.png": "not a plain path",
        "scans/../../elsewhere/secret.png": "not a plain path",
        "http://127.0.0.1:9/secret.png": "not a plain path",  # a worker must not request internal addresses
        f"file://{outside}/secret.png": "not a plain path",
        "scans\\..\\..\\elsewhere\\secret.png": "not a plain path",
        "scans/link.png": "a link out of",
    }
    write_csv(folder / "labels.csv", ["image", "label"], [[name, "normal"] for name in names])
    result = standardize([("csv", str(folder))], str(tmp_path / "out"), image_size=32, progress=False)
    assert (result.inputs, result.written, result.rejected) == (len(names), 1, len(names) - 1)
    found = {r["file"]: r["reason"] for r in map(json.loads, (tmp_path / "out" / "rejects.jsonl").open())}
    for name, reason in names.items():
        shown = repr(name[:60])[1:-1]  # as the reason quotes it
        assert not reason or any(reason in why and shown in why for why in found.values()), (name, found)
    write_csv(folder / "labels.csv", ["image", "label", "mask"], [["scans/b.png", "benign", "../elsewhere/secret.png"]])
    with pytest.raises(RejectedInput, match="mask '../elsewhere/secret.png' in the table is not a plain path"):
        _items("csv", folder)["scans/b.png"].load()


def test_several_sources_in_one_run_keep_their_source(tmp_path, mias_subset, busi_dir, busi_counts):
    result = standardize(
        [("mias", str(mias_subset)), ("busi", str(busi_dir))],
        str(tmp_path / "out"),
        image_size=32,
        progress=False,
        workers=2,
    )
    busi = sum(busi_counts.values())
    assert result.manifest["counts"]["source"] == {"mias": 24, "busi": busi}
    assert result.inputs == result.written + result.rejected == 24 + busi


@pytest.mark.parametrize(
    "value, label",
    [
        ("BI-RADS 1", "normal"),
        ("2", "benign"),
        ("3", "benign"),
        ("4a", "malignant"),
        ("BIRADS_4C", "malignant"),
        ("BI-RADS 5", "malignant"),
        ("6", "malignant"),
        ("0", "unknown"),
        ("", "unknown"),
    ],
)
def test_birads_categories_map_to_labels(value, label):
    from mammolibs.data.readers.tables import birads_label

    assert birads_label(value) == label


def test_bus_bra_names_each_broken_file_and_loses_none(tmp_path, busbra_dir, busbra_rows):
    root = tmp_path / "BUSBRA"
    (root / "Images").mkdir(parents=True)
    (root / "Masks").mkdir()
    rows = busbra_rows[:8]
    for row in rows:
        number = row["ID"][4:]
        shutil.copy(busbra_dir / "Images" / f"{row['ID']}.png", root / "Images")
        shutil.copy(busbra_dir / "Masks" / f"mask_{number}.png", root / "Masks")
    for document in ("LICENSE.txt", "5-fold-cv.csv"):
        shutil.copy(busbra_dir / document, root)
    ids = [row["ID"] for row in rows]
    (root / "Images" / f"{ids[0]}.png").unlink()  # a row without its image
    (root / "Masks" / f"mask_{ids[1][4:]}.png").unlink()  # an image without its mask
    small = Image.open(root / "Masks" / f"mask_{ids[2][4:]}.png").resize((20, 20))
    small.save(root / "Masks" / f"mask_{ids[2][4:]}.png")  # a mask of another size
    shutil.copy(busbra_dir / "Images" / f"{ids[3]}.png", root / "Images" / "bus_9999-l.png")  # no row
    (root / "Images" / "notes.txt").write_text("hello")  # off the published names
    broken = [dict(row) for row in rows] + [dict(rows[4], ID="../../etc/passwd"), dict(rows[5], ID="bus_0999-x")]
    broken[6]["Pathology"] = "probably bad"
    write_csv(root / "bus_data.csv", list(rows[0]), [list(row.values()) for row in broken])

    result = standardize([("bus-bra", str(root))], str(tmp_path / "out"), image_size=32, progress=False)
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert result.inputs == result.written + result.rejected == len(broken) + 2
    assert (result.written, result.rejected) == (4, 8)
    reasons = " | ".join(r["reason"] for r in rejects)
    for expected in (
        f"{ids[0]}.png: bus_data.csv has a row for {ids[0]} but its image file is missing",
        f"{ids[1]}.png: its mask mask_{ids[1][4:]}.png is missing",
        f"mask_{ids[2][4:]}.png: mask is (20, 20) but image is",
        "bus_9999-l.png: no row in bus_data.csv",
        "notes.txt: not a BUS-BRA file name",
        "bus_data.csv line 10: a malformed ID '../../etc/passwd'",
        "bus_data.csv line 11: a malformed ID 'bus_0999-x'",
        f"{ids[6]}.png: Pathology 'probably bad' in bus_data.csv is neither benign nor malignant",
    ):
        assert expected in reasons, (expected, reasons)
    assert not (tmp_path / "etc").exists()
