"""DMID (Digital Mammography dataset for breast cancer diagnosis research, Oza et al. 2023).

Layout: TIFF mammograms, ground-truth PNG masks of the same stem, and a metadata text whose lines
follow the mini-MIAS format with DMID's image names::

    TIFF Images/IMG001.tif
    Ground truth/IMG001.png             (or IMG001_mask.png; absent for normal images)
    Metadata.txt                         IMG001 D CIRC B 2045 1623 178

Label: NORM normal, else the severity B/M. A lesion image without a mask is kept label-only.
DMID publishes no patient ids, so each image counts as its own patient.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Iterator

from mammolibs import storage
from mammolibs.data.images import read_file_bytes, read_grey, read_mask
from mammolibs.data.readers.mias import film_label, parse_info
from mammolibs.data.readers.registry import register_reader
from mammolibs.data.sample import RawSample, RejectedInput, SourceItem, truth_mask

FILM = r"IMG\d+"


@register_reader("dmid")
def read_dmid(root: str) -> Iterator[SourceItem]:
    """Yield one item per ``IMGnnn.tif`` below ``root``, labelled from the metadata text."""
    files = storage.list_files(root)
    films: dict[str, list[dict]] = {}
    for text in (f for f in files if f.lower().endswith(".txt")):
        films.update(parse_info(read_file_bytes(storage.join(root, text)).decode("latin-1"), FILM))
    if not films:
        raise FileNotFoundError(f"{root}: no metadata text with lines like 'IMG001 D CIRC B 2045 1623 178' found")
    masks = {}
    for relative in (f for f in files if f.lower().endswith(".png")):
        match = re.match(rf"({FILM})(_mask)?\.png$", relative.rsplit("/", 1)[-1], re.IGNORECASE)
        if match:
            masks[match.group(1).upper()] = storage.join(root, relative)
    for relative in files:
        match = re.fullmatch(rf"({FILM})\.tiff?", relative.rsplit("/", 1)[-1], re.IGNORECASE)
        if match:
            ref, url = match.group(1).upper(), storage.join(root, relative)
            yield SourceItem(name=url, key=ref, load=partial(_load, url, films.get(ref), masks.get(ref)))


def _load(url: str, lines: list[dict] | None, mask_url: str | None) -> RawSample:
    if not lines:
        raise RejectedInput(f"{url}: image has no line in the metadata text, so its label is unknown")
    image = read_grey(url)
    label = film_label(lines, url)
    mask = truth_mask(label, read_mask(mask_url) if mask_url else None, image.shape)
    return RawSample(
        image=image,
        mask=mask,
        label=label,
        source="dmid",
        patient_id=f"dmid-{url.rsplit('/', 1)[-1]}",
        meta={"modality": "MG", "tissue": lines[0]["tissue"], "classes": sorted({line["class"] for line in lines})},
    )
