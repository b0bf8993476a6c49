"""INbreast as published: ``AllDICOMs/``, ``AllXML/`` and the BI-RADS table.

Layout::

    AllDICOMs/20586908_6c613a14b80a8591_MG_R_CM_ANON.dcm   (file id, patient, modality, laterality, view)
    AllXML/20586908.xml                                       (ROIs as an Apple plist)
    INbreast.xls (or .xlsx, .csv)                             (Laterality, View, File Name, ACR, Bi-Rads)

ROIs hold ``Point_px`` strings ``"(x, y)"``: polygons are filled, single points (calcifications)
become small discs. Labels come from the BI-RADS column (INbreast has no pathology for every
image): 1 normal, 2-3 benign, 4-6 malignant.
"""

from __future__ import annotations

import plistlib
import re
from functools import partial
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw

from mammolibs import storage
from mammolibs.data.images import read_dicom, read_file_bytes
from mammolibs.data.readers.dicom_folder import dicom_meta
from mammolibs.data.readers.registry import register_reader
from mammolibs.data.readers.tables import birads_label, column, read_table
from mammolibs.data.sample import RawSample, RejectedInput, SourceItem, truth_mask

_DICOM = re.compile(r"(\d+)_([0-9a-f]+)_MG_([LR])_(CC|ML|MLO|CM)\w*\.dcm", re.IGNORECASE)
_POINT = re.compile(r"\(\s*([-\d.]+)\s*,\s*([-\d.]+)\s*\)")
POINT_RADIUS = 4
"""Radius in pixels of the disc drawn for a one-point ROI (a calcification)."""


@register_reader("inbreast")
def read_inbreast(root: str) -> Iterator[SourceItem]:
    """Yield one item per DICOM in ``root/AllDICOMs`` that the BI-RADS table lists."""
    files = storage.list_files(root)
    tables = [f for f in files if re.fullmatch(r"inbreast\.(xls|xlsx|csv)", f.rsplit("/", 1)[-1].lower())]
    if not tables:
        raise FileNotFoundError(f"{root}: INbreast.xls (the BI-RADS table) not found beside AllDICOMs/ and AllXML/")
    birads = {
        column(row, "File Name", table=tables[0]): column(row, "Bi-Rads", "Bi-RADS", table=tables[0])
        for row in read_table(storage.join(root, tables[0]))
    }
    xml = {f.rsplit("/", 1)[-1][:-4]: storage.join(root, f) for f in files if f.lower().endswith(".xml")}
    dicoms = [f for f in files if "AllDICOMs/" in f and f.lower().endswith(".dcm")]
    if not dicoms:
        raise FileNotFoundError(f"{root}: no AllDICOMs/*.dcm found; point --input at the INbreast folder")
    for relative in dicoms:
        url = storage.join(root, relative)
        match = _DICOM.fullmatch(relative.rsplit("/", 1)[-1])
        file_id = match.group(1) if match else ""
        yield SourceItem(
            name=url,
            key=file_id or relative,
            load=partial(_load, url, match and match.groups(), birads.get(file_id), xml.get(file_id)),
        )


def _load(url: str, name_parts: tuple[str, ...] | None, birads: str | None, xml_url: str | None) -> RawSample:
    if not name_parts:
        raise RejectedInput(f"{url}: file name is not <id>_<patient>_MG_<L|R>_<view>_ANON.dcm as INbreast names it")
    if birads is None:
        raise RejectedInput(f"{url}: file id {name_parts[0]} has no row in the INbreast table, so its label is unknown")
    image, ds = read_dicom(url)
    label = birads_label(birads)
    mask = truth_mask(label, roi_mask(read_file_bytes(xml_url), image.shape, xml_url) if xml_url else None, image.shape)
    return RawSample(
        image=image,
        mask=mask,
        label=label,
        source="inbreast",
        patient_id=name_parts[1],
        laterality=name_parts[2].upper(),
        meta={**dicom_meta(ds, url), "view": name_parts[3].upper(), "birads": birads},
    )


def roi_mask(xml: bytes, shape: tuple[int, int], name: str) -> np.ndarray:
    """Union of the ROIs of an INbreast plist XML, drawn at ``shape``."""
    try:
        document = plistlib.loads(xml)
    except Exception as err:
        raise RejectedInput(f"{name}: not a readable INbreast ROI file ({type(err).__name__}: {err})") from err
    canvas = Image.new("1", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(canvas)
    for entry in document.get("Images", []):
        for roi in entry.get("ROIs", []):
            found = [_POINT.match(p) for p in roi.get("Point_px", [])]
            if not all(found):
                raise RejectedInput(f"{name}: a ROI point that is not '(x, y)' in its Point_px list")
            points = [(float(m.group(1)), float(m.group(2))) for m in found if m]
            if len(points) >= 3:
                draw.polygon(points, fill=1, outline=1)
            elif points:
                for x, y in points:
                    draw.ellipse((x - POINT_RADIUS, y - POINT_RADIUS, x + POINT_RADIUS, y + POINT_RADIUS), fill=1)
    return np.asarray(canvas, dtype=bool)
