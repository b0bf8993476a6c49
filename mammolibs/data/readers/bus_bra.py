"""BUS-BRA breast ultrasound as published (Gómez-Flores, Gregorio-Calas, Pereira, Med. Phys. 2023).

Layout::

    BUSBRA/Images/bus_0001-l.png       one image per ID
    BUSBRA/Masks/mask_0001-l.png       its lesion mask, same size
    BUSBRA/bus_data.csv                ID, Case, Histology, Pathology, BIRADS, Device, Width, Height, Side, BBOX
    BUSBRA/5-fold-cv.csv, 10-fold-cv.csv, LICENSE.txt

``Case`` is the patient (all of a patient's images share one split); ``Pathology`` (biopsy-proven
benign or malignant) is the label; BI-RADS, histology and the scanner reach the shards only through
closed vocabularies. Every image and mask file is an input: a row without its image, an image without
its row, and a mask that is missing or of another size are named rejects. Using BUS-BRA obliges you to
cite the article (its ``LICENSE.txt``).
"""

from __future__ import annotations

import re
from functools import partial
from typing import Iterator

from mammolibs import storage
from mammolibs.data.images import read_grey, read_mask
from mammolibs.data.readers.registry import register_reader, unread
from mammolibs.data.readers.tables import read_table
from mammolibs.data.sample import RawSample, RejectedInput, SourceItem

TABLE = "bus_data.csv"
DOCUMENTS = frozenset({TABLE, "5-fold-cv.csv", "10-fold-cv.csv", "LICENSE.txt", "README.md", "README.txt"})
"""Files of the published folder that describe the images rather than being images."""
IMAGE_ID = re.compile(r"bus_(\d{4})-([lrs])")
PATHOLOGIES = ("benign", "malignant")
SIDES = {"left": "L", "right": "R", "single": ""}
SCANNERS = {  # the start of bus_data.csv's Device -> the scanner as the vocabulary spells it
    "ge logiq 5": "GE LOGIQ 5",
    "ge logiq 7": "GE LOGIQ 7",
    "toshiba aplio 300": "TOSHIBA APLIO 300",
    "u-systems": "U-SYSTEMS",
}


@register_reader("bus-bra")
def read_bus_bra(root: str) -> Iterator[SourceItem]:
    """Yield one item per row of ``bus_data.csv`` (under ``root`` or ``root/BUSBRA``) and one reject for
    every other file: an image or mask without a row, a file off the published names."""
    if not storage.exists(storage.join(root, TABLE)) and storage.exists(storage.join(root, "BUSBRA", TABLE)):
        root = storage.join(root, "BUSBRA")
    table_url = storage.join(root, TABLE)
    if not storage.exists(table_url):
        raise FileNotFoundError(f"{table_url} not found; point --input at the BUSBRA folder (Images/, Masks/, {TABLE})")
    files = {relative for relative in storage.list_files(root) if not relative.rpartition("/")[2].startswith(".")}
    claimed = set(DOCUMENTS & files)
    seen: set[str] = set()
    for number, row in enumerate(read_table(table_url), start=2):
        image_id = row.get("ID", "")
        if not IMAGE_ID.fullmatch(image_id) or image_id in seen:
            problem = "a repeated" if image_id in seen else "a malformed"
            yield unread(
                table_url, f"{TABLE} line {number}", f"{problem} ID {image_id[:40]!r} (expected bus_NNNN-l/r/s)"
            )
            continue
        seen.add(image_id)
        image, mask = f"Images/{image_id}.png", f"Masks/mask_{image_id[4:]}.png"
        claimed.update({image, mask})
        yield SourceItem(
            name=storage.join(root, image),
            key=image_id,
            load=partial(
                _load, storage.join(root, image), storage.join(root, mask), row, image in files, mask in files
            ),
        )
    for relative in sorted(files - claimed):
        known = re.fullmatch(r"Images/bus_\d{4}-[lrs]\.png|Masks/mask_\d{4}-[lrs]\.png", relative)
        reason = f"no row in {TABLE}, so its label is unknown" if known else "not a BUS-BRA file name; remove it"
        yield unread(storage.join(root, relative), relative, reason)


def _load(url: str, mask_url: str, row: dict[str, str], has_image: bool, has_mask: bool) -> RawSample:
    if not has_image:
        raise RejectedInput(f"{url}: {TABLE} has a row for {row['ID']} but its image file is missing")
    pathology = row.get("Pathology", "").strip().lower()
    if pathology not in PATHOLOGIES:
        raise RejectedInput(f"{url}: Pathology {pathology[:40]!r} in {TABLE} is neither benign nor malignant")
    case = row.get("Case", "").strip()
    if not case.isdigit() or int(case) != int(IMAGE_ID.fullmatch(row["ID"]).group(1)):  # type: ignore[union-attr]
        raise RejectedInput(f"{url}: Case {case[:20]!r} in {TABLE} is not the patient number of {row['ID']}")
    if not has_mask:
        raise RejectedInput(f"{url}: its mask {storage.basename(mask_url)} is missing; BUS-BRA images need their mask")
    image = read_grey(url)
    mask = read_mask(mask_url)
    if mask.shape != image.shape:
        raise RejectedInput(f"{mask_url}: mask is {mask.shape[::-1]} but image is {image.shape[::-1]} pixels")
    device = row.get("Device", "").split("@")[0].strip().lower()
    return RawSample(
        image=image,
        mask=mask,
        label=pathology,
        source="bus-bra",
        patient_id=f"bus-bra-{int(case)}",
        laterality=SIDES.get(row.get("Side", "").strip().lower(), ""),
        meta={
            "modality": "US",
            "birads": row.get("BIRADS", ""),
            "histology": row.get("Histology", ""),
            "scanner": SCANNERS.get(device, ""),
        },
    )
