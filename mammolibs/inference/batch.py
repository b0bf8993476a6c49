"""``mammo predict --input FOLDER_OR_URL`` and the pipeline's predict step: every image below a folder
or URL through the chain, resumable.

Under ``out``: ``findings.jsonl`` (one line per image, in file order), ``overlays/<name>.png`` and
``masks/<name>.png`` (the findings as a binary mask; both at full resolution), ``rejects.jsonl`` (the
files that could not be read and why, named relative to the input). Each image's findings are kept as
``results/<name>.json`` once its overlay is written, so a rerun skips the images already done and
retries the rejects; inputs = predicted + rejected.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from tqdm import tqdm

from mammolibs import storage
from mammolibs.data.images import DICOM_SUFFIXES, IMAGE_SUFFIXES, read_file_bytes
from mammolibs.data.pseudonyms import InputNames
from mammolibs.data.sample import RejectedInput
from mammolibs.inference.chain import Models
from mammolibs.inference.predict import mask_png, overlay_png, predict_bytes

FINDINGS, REJECTS, RESULTS, OVERLAYS, MASKS = "findings.jsonl", "rejects.jsonl", "results", "overlays", "masks"
UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def output_name(relative: str) -> str:
    """A file name for an input's outputs, made from its relative path but never a path itself:
    only ``[A-Za-z0-9_.-]``, no leading dot, and a hash of the whole path against collisions."""
    readable = UNSAFE.sub("_", relative.rsplit(".", 1)[0]).strip("._")[-60:] or "image"
    return f"{readable}-{hashlib.sha256(relative.encode()).hexdigest()[:10]}"


@dataclass
class BatchResult:
    inputs: int
    predicted: int  # in this run
    skipped: int  # done by an earlier run
    rejected: int
    out: str


def predict_folder(
    input_url: str,
    models: Models,
    out: str,
    modality: str = "auto",
    threshold: float | None = None,
    progress: bool = True,
) -> BatchResult:
    """Predict every DICOM, PGM, PNG, TIFF and JPEG file below ``input_url`` into ``out`` (a folder apart
    from it: inside, its own overlays would be predicted on the next run)."""
    storage.check_apart(out, [input_url], "--out")
    files = storage.list_files(input_url, DICOM_SUFFIXES + IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{input_url}: no image files (DICOM, PGM, PNG, TIFF, JPEG) below it")
    names = InputNames([input_url], b"")
    done = {storage.basename(path) for path in _listing(storage.join(out, RESULTS))}
    rejects, predicted, skipped = [], 0, 0
    for relative in tqdm(files, desc="predict", unit="image", disable=not progress):
        name = output_name(relative)
        if f"{name}.json" in done:
            skipped += 1
            continue
        url = storage.join(input_url, relative)
        try:
            prediction = predict_bytes(models, read_file_bytes(url), relative, modality, threshold)
        except RejectedInput as err:
            rejects.append({"file": relative, "reason": names.text(str(err))})
            continue
        prediction.report.update(overlay=f"{OVERLAYS}/{name}.png", mask=f"{MASKS}/{name}.png")
        storage.write_bytes_atomic(storage.join(out, OVERLAYS, f"{name}.png"), overlay_png(prediction))
        storage.write_bytes_atomic(storage.join(out, MASKS, f"{name}.png"), mask_png(prediction))
        storage.write_text_atomic(storage.join(out, RESULTS, f"{name}.json"), json.dumps(prediction.report))
        predicted += 1
    rejected = {r["file"] for r in rejects}
    lines = [
        storage.read_text(storage.join(out, RESULTS, f"{output_name(r)}.json")) for r in files if r not in rejected
    ]
    storage.write_text_atomic(storage.join(out, FINDINGS), "".join(line.strip() + "\n" for line in lines))
    storage.write_text_atomic(storage.join(out, REJECTS), "".join(json.dumps(r) + "\n" for r in rejects))
    return BatchResult(len(files), predicted, skipped, len(rejects), out)


def _listing(url: str) -> list[str]:
    try:
        return storage.list_files(url, (".json",))
    except FileNotFoundError:  # a first run
        return []
