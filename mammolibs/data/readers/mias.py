"""mini-MIAS as published: ``mdbNNN.pgm`` films and one ``Info.txt``.

``Info.txt`` lines read ``mdb012 F CIRC B 471 458 40``: film, tissue, class, severity (B/M),
centre x y and radius in pixels with the origin at the *bottom-left*. A film may have several
lines (several abnormalities); calcification lines may carry no coordinates (``*NOTE 3*``), and
then the film is label-only. Films 2k-1 (right) and 2k (left) are one patient.
"""

from __future__ import annotations

import re
from collections import defaultdict
from functools import partial
from typing import Iterator, cast

import numpy as np

from mammolibs import storage
from mammolibs.data.images import read_file_bytes, read_grey
from mammolibs.data.readers.registry import register_reader, unread
from mammolibs.data.sample import RawSample, RejectedInput, SourceItem

LINE = r"^({film})[ \t]+([FGD])[ \t]+([A-Z]+)([^\n]*)$"
SEVERITY = {"B": "benign", "M": "malignant"}
COORDINATE = r"\d{1,5}"
"""A coordinate or radius: whole pixels, at most five digits (a longer number is no film's, and Python
refuses to read one of over 4,300 digits, which would lose the whole source)."""
NO_CENTRE = ("", "*NOTE 3*")
"""What may follow the severity when a line has no coordinates (calcifications spread over the film)."""


def parse_info(text: str, film: str = r"mdb\d{3}") -> dict[str, list[dict]]:
    """Abnormality lines of ``Info.txt`` by film, e.g. ``{"mdb012": [{"class": "CIRC", ...}]}``.

    ``film`` is the pattern of film names (DMID uses the same line format with ``IMG`` and digits). A line
    whose severity or coordinates are malformed (not ``B``/``M``, negative, decimal, a missing radius)
    gets an ``"error"``, and its film is rejected rather than silently kept without its lesion.
    """
    films: dict[str, list[dict]] = defaultdict(list)
    for ref, tissue, klass, rest in re.findall(LINE.format(film=film), text, re.M):
        line = {"tissue": tissue, "class": klass, "severity": "", "centre": None}
        words = rest.split()
        if klass != "NORM" and words and words[0] in SEVERITY:
            line["severity"] = words.pop(0)
        coordinates = " ".join(words)
        if klass == "NORM" and coordinates:
            line["error"] = f"normal film with extra fields {coordinates!r}"
        elif len(words) == 3 and all(re.fullmatch(COORDINATE, w) for w in words):
            line["centre"] = tuple(int(w) for w in words)
        elif coordinates not in NO_CENTRE:
            shown = coordinates if len(coordinates) <= 40 else coordinates[:40] + "..."
            line["error"] = f"malformed coordinates {shown!r} (expected x y radius, whole pixels 0 to 99999)"
        films[ref].append(line)
    return dict(films)


def film_label(lines: list[dict], name: str) -> str:
    """NORM -> normal; malignant when any abnormality is, else benign (each lesion's own class is
    :func:`lesion_labels`). A malformed line, or an abnormality without severity, rejects the film."""
    errors = [line["error"] for line in lines if "error" in line]
    if errors:
        raise RejectedInput(f"{name}: Info.txt line for this film: {errors[0]}")
    if all(line["class"] == "NORM" for line in lines):
        return "normal"
    severities = {line["severity"] for line in lines if line["class"] != "NORM"}
    if "" in severities:
        raise RejectedInput(f"{name}: an abnormality without a severity B/M in Info.txt")
    return "malignant" if "M" in severities else "benign"


def lesion_labels(shape: tuple[int, int], lines: list[dict]) -> list[tuple[str, np.ndarray]]:
    """``(label, mask)`` of each located abnormality of a film whose findings differ in severity, else []."""
    located = [line for line in lines if line["class"] != "NORM" and line["centre"] is not None]
    if len({line["severity"] for line in located}) < 2:
        return []
    return [(SEVERITY[line["severity"]], cast(np.ndarray, circle_mask(shape, [line]))) for line in located]  # located


def circle_mask(shape: tuple[int, int], lines: list[dict]) -> np.ndarray | None:
    """Union of the abnormality circles; ``None`` if any abnormality has no coordinates."""
    mask = np.zeros(shape, dtype=bool)
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    for line in lines:
        if line["class"] == "NORM":
            continue
        if line["centre"] is None:
            return None
        x, y, radius = line["centre"]
        row = shape[0] - 1 - y  # Info.txt counts y from the bottom edge
        mask |= (cols - x) ** 2 + (rows - row) ** 2 <= radius**2
    return mask


def patient_of(ref: str) -> tuple[str, str]:
    """(patient id, laterality): films 2k-1 and 2k are one patient's right and left breast."""
    number = int(ref[3:])
    return f"mias-{(number + 1) // 2:03d}", "R" if number % 2 else "L"


@register_reader("mias")
def read_mias(root: str) -> Iterator[SourceItem]:
    """Yield one item per ``mdbNNN.pgm`` in ``root``, annotated from ``root/Info.txt``."""
    info_url = storage.join(root, "Info.txt")
    if not storage.exists(info_url):
        raise FileNotFoundError(f"{info_url}: mini-MIAS folders need Info.txt beside the .pgm films")
    films = parse_info(read_file_bytes(info_url).decode("latin-1"))
    for filename in storage.list_files(root):
        if filename in ("Info.txt", "Licence.txt") or filename.rpartition("/")[2].startswith("."):
            continue
        if not re.fullmatch(r"mdb\d{3}\.pgm", filename):
            yield unread(
                storage.join(root, filename), filename, "not a mini-MIAS film name (mdbNNN.pgm); rename or remove it"
            )
            continue
        ref = filename[:-4]
        url = storage.join(root, filename)
        yield SourceItem(name=url, key=ref, load=partial(_load, ref, url, films.get(ref)))


def _load(ref: str, path: str, lines: list[dict] | None) -> RawSample:
    if not lines:
        raise RejectedInput(f"{path}: film has no line in Info.txt, so its label is unknown")
    image = read_grey(path)
    patient, laterality = patient_of(ref)
    return RawSample(
        image=image,
        mask=circle_mask(image.shape, lines),
        label=film_label(lines, path),
        lesions=lesion_labels(image.shape, lines),
        source="mias",
        patient_id=patient,
        laterality=laterality,
        meta={"view": "MLO", "tissue": lines[0]["tissue"], "classes": sorted({line["class"] for line in lines})},
    )
