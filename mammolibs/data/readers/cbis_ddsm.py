"""CBIS-DDSM as published on TCIA: a DICOM tree and four case-description CSVs.

Layout (folder names as the TCIA download writes them)::

    mass_case_description_train_set.csv   calc_case_description_train_set.csv
    mass_case_description_test_set.csv    calc_case_description_test_set.csv
    CBIS-DDSM/Mass-Training_P_00001_LEFT_CC/<study>/<series: full mammogram images>/1-1.dcm
    CBIS-DDSM/Mass-Training_P_00001_LEFT_CC_1/<study>/<series: ROI mask images>/1-1.dcm
    CBIS-DDSM/Mass-Training_P_00001_LEFT_CC_1/<study>/<series: cropped images>/1-1.dcm

Each CSV row is one abnormality; its ``image file path`` and ``ROI mask file path`` start with the
folder of the full mammogram and of that abnormality. Files are matched by those folder names,
since the UID paths inside the CSVs do not match the tree TCIA hands out. Inside an abnormality
folder the ROI mask and the cropped lesion are told apart by SeriesDescription, else by size
(the mask is image-sized, the crop small). One item per full mammogram: its abnormalities' masks
are joined; MALIGNANT anywhere makes it malignant, BENIGN and BENIGN_WITHOUT_CALLBACK benign.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Iterator

import numpy as np

from mammolibs import storage
from mammolibs.data.images import DICOM_SUFFIXES, read_dicom, read_dicom_header
from mammolibs.data.readers.dicom_folder import dicom_meta
from mammolibs.data.readers.registry import register_reader
from mammolibs.data.readers.tables import column, read_table
from mammolibs.data.sample import RawSample, RejectedInput, SourceItem

CASE_TABLES = re.compile(r"(mass|calc)_case_description_(train|test)_set\.csv")
PATHOLOGY = {"MALIGNANT": "malignant", "BENIGN": "benign", "BENIGN_WITHOUT_CALLBACK": "benign"}
MASK_SIZE_TOLERANCE = 0.02
"""ROI masks that differ from their image by at most 2% per side are resized to it (a known
CBIS-DDSM quirk); larger differences mean a wrong pairing and are rejected."""


@register_reader("cbis-ddsm")
def read_cbis_ddsm(root: str) -> Iterator[SourceItem]:
    """Yield one item per full mammogram listed in the case-description CSVs under ``root``."""
    files = storage.list_files(root)
    tables = [f for f in files if CASE_TABLES.fullmatch(f.rsplit("/", 1)[-1])]
    if not tables:
        raise FileNotFoundError(
            f"{root}: no CBIS-DDSM case-description CSVs (mass_case_description_train_set.csv, "
            "...) found; put them beside the CBIS-DDSM folder"
        )
    dicoms_by_folder: dict[str, list[str]] = {}
    for relative in files:
        if relative.lower().endswith(DICOM_SUFFIXES):
            parts = relative.split("/")
            folder = next((p for p in parts if re.match(r"(Mass|Calc)-(Training|Test)_P_\d+", p)), None)
            if folder:
                dicoms_by_folder.setdefault(folder, []).append(storage.join(root, relative))
    images: dict[str, list[dict]] = {}
    for table in sorted(tables):
        for row in read_table(storage.join(root, table)):
            images.setdefault(_top_folder(column(row, "image file path", table=table)), []).append(row)
    for folder, rows in sorted(images.items()):
        abnormalities = [(_top_folder(r["ROI mask file path"]), r) for r in rows]
        yield SourceItem(
            name=storage.join(root, folder),
            key=folder,
            load=partial(
                _load,
                folder,
                dicoms_by_folder.get(folder, []),
                [(dicoms_by_folder.get(f, []), r) for f, r in abnormalities],
            ),
        )


def _top_folder(csv_path: str) -> str:
    return csv_path.strip().replace("\\", "/").split("/")[0]


def _load(folder: str, full: list[str], abnormalities: list[tuple[list[str], dict]]) -> RawSample:
    if len(full) != 1:
        raise RejectedInput(
            f"{folder}: expected one full-mammogram DICOM in this folder, found {len(full)}; is the download complete?"
        )
    image, ds = read_dicom(full[0])
    mask = np.zeros(image.shape, dtype=bool)
    labels, kinds = set(), set()
    for files, row in abnormalities:
        pathology = row.get("pathology", "").strip().upper()
        if pathology not in PATHOLOGY:
            raise RejectedInput(
                f"{full[0]}: unknown pathology {pathology!r} for abnormality "
                f"{row.get('abnormality id')}; expected one of {', '.join(PATHOLOGY)}"
            )
        labels.add(PATHOLOGY[pathology])
        kinds.add(row.get("abnormality type", "").strip().lower())
        mask |= _roi_mask(files, image.shape, f"{folder} abnormality {row.get('abnormality id')}")
    row = abnormalities[0][1]
    assessments = [int(r["assessment"]) for _, r in abnormalities if r.get("assessment", "").isdigit()]
    return RawSample(
        image=image,
        mask=mask,
        label="malignant" if "malignant" in labels else "benign",
        source="cbis-ddsm",
        patient_id=row["patient_id"],
        laterality=row.get("left or right breast", "")[:1].upper(),
        meta={
            **dicom_meta(ds, full[0]),
            "view": row.get("image view", ""),
            "abnormality": sorted(kinds),
            "birads": max(assessments, default=None),
            "density": row.get("breast_density", row.get("breast density", "")),
        },
        official_split="test" if "-Test_" in folder else "train",
    )


def _roi_mask(files: list[str], shape: tuple[int, int], what: str) -> np.ndarray:
    """The ROI mask among an abnormality folder's DICOMs, as a bool array of the image's shape."""
    if not files:
        raise RejectedInput(f"{what}: ROI mask folder missing; every abnormality needs its mask")
    headers = {url: read_dicom_header(url) for url in files}
    described = [u for u, h in headers.items() if "mask" in str(h.get("SeriesDescription", "")).lower()]
    url = described[0] if described else max(files, key=lambda u: int(headers[u].Rows) * int(headers[u].Columns))
    mask, _ = read_dicom(url)
    if mask.shape != shape:
        if max(abs(a - b) / b for a, b in zip(mask.shape, shape)) > MASK_SIZE_TOLERANCE:
            raise RejectedInput(
                f"{url}: ROI mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
                f"{shape[1]}x{shape[0]} pixels; the mask belongs to another image"
            )
        rows = np.minimum(np.arange(shape[0]) * mask.shape[0] // shape[0], mask.shape[0] - 1)
        cols = np.minimum(np.arange(shape[1]) * mask.shape[1] // shape[1], mask.shape[1] - 1)
        mask = mask[np.ix_(rows, cols)]
    return mask > mask.min()
