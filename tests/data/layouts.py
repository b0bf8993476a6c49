"""Writers of each public source's published layout, with small synthetic films.

DICOMs are written with pydicom and the tags the real releases carry; tables use the real column
names. Each writer returns what it wrote so tests can check the reader against it.
"""

from __future__ import annotations

import csv
import plistlib
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MAMMOGRAPHY_STORAGE = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray Image Storage - For Presentation


def film(
    height: int = 160, width: int = 112, right: bool = False, lesion: tuple[int, int, int] | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A 12-bit film: a half-ellipse breast against the chest wall of its side, and its lesion mask."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:height, :width]
    depth = cols if not right else width - 1 - cols
    breast = (depth / (0.8 * width)) ** 2 + ((rows - height / 2) / (0.45 * height)) ** 2 < 1
    image = np.where(breast, 1800 + 400 * rng.random((height, width)), 40 * rng.random((height, width)))
    mask = np.zeros((height, width), dtype=bool)
    if lesion:
        y, x, r = lesion
        mask = (rows - y) ** 2 + (cols - x) ** 2 <= r * r
        image[mask] += 1200
    return image.astype(np.uint16), mask


def write_dicom(path: Path, pixels: np.ndarray, **tags) -> Path:
    """A mammography DICOM with realistic patient/study/series/image tags (any can be overridden)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MAMMOGRAPHY_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = MAMMOGRAPHY_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "DOE^JANE", "PAT-0001", "19600101", "F"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.StudyDate, ds.AccessionNumber, ds.InstitutionName = "20200102", "ACC123", "General Hospital"
    ds.Modality, ds.ImageLaterality, ds.ViewPosition = "MG", "L", "CC"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_csv(path: Path, header: list[str], rows: list[list], delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_xlsx(path: Path, header: list[str], rows: list[list]) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(header)
    for row in rows:
        book.active.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def write_xls(path: Path, header: list[str], rows: list[list]) -> Path:
    """A legacy Excel workbook, as INbreast publishes its table."""
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("Sheet1")
    for r, row in enumerate([header] + rows):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(str(path))
    return path


CBIS_COLUMNS = {
    "mass": [
        "patient_id",
        "breast_density",
        "left or right breast",
        "image view",
        "abnormality id",
        "abnormality type",
        "mass shape",
        "mass margins",
        "assessment",
        "pathology",
        "subtlety",
        "image file path",
        "cropped image file path",
        "ROI mask file path",
    ],
    "calc": [
        "patient_id",
        "breast density",
        "left or right breast",
        "image view",
        "abnormality id",
        "abnormality type",
        "calc type",
        "calc distribution",
        "assessment",
        "pathology",
        "subtlety",
        "image file path",
        "cropped image file path",
        "ROI mask file path",
    ],
}


def cbis_series(
    root: Path,
    folder: str,
    description: str,
    pixels: np.ndarray | None = None,
    source: Path | None = None,
    number: int = 1,
) -> Path:
    """One series as the TCIA download lays it out: ``<folder>/<study>/<n>.000000-<description>-NNNNN/1-1.dcm``."""
    path = root / "CBIS-DDSM" / folder / "07-20-2016-DDSM-74994" / f"{number}.000000-{description}-24515" / "1-1.dcm"
    if source is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(source)
        return path
    return write_dicom(path, pixels, PatientID=folder, SeriesDescription=description)


def cbis_row(
    kind: str,
    patient: str,
    side: str,
    view: str,
    abnormality: int,
    pathology: str,
    split: str = "Training",
    assessment: int = 4,
) -> list:
    """A case-description row; the file paths use TCIA's UID form, whose first folder names the series."""
    full = f"{kind.title()}-{split}_{patient}_{side}_{view}"
    roi = f"{full}_{abnormality}"
    uid = "1.3.6.1.4.1.9590.100.1.2.4221127222131896498076114346122"
    return [
        patient,
        3,
        side,
        view,
        abnormality,
        kind if kind == "mass" else "calcification",
        "OVAL",
        "CIRCUMSCRIBED",
        assessment,
        pathology,
        4,
        f"{full}/{uid}1/{uid}2/000000.dcm",
        f"{roi}/{uid}3/{uid}4/000000.dcm",
        f"{roi}/{uid}3/{uid}4/000001.dcm",
    ]


def inbreast_xml(rois: list[list[tuple[float, float]]]) -> bytes:
    """An INbreast ROI file (Apple plist) with one image and these ROIs."""
    return plistlib.dumps(
        {
            "Images": [
                {
                    "ImageIndex": 0,
                    "NumberOfROIs": len(rois),
                    "ROIs": [
                        {
                            "Name": "Mass" if len(points) > 2 else "Calcification",
                            "NumberOfPoints": len(points),
                            "Point_px": [f"({x:.2f}, {y:.2f})" for x, y in points],
                            "Area": 0.0,
                            "Center": "(0, 0)",
                        }
                        for points in rois
                    ],
                }
            ]
        }
    )
