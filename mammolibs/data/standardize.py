"""``mammo standardize``: read sources in their published layouts, write standard-form shards.

Every input is either written or recorded in ``rejects.jsonl`` with its file and the reason, so
``inputs == written + rejected`` always holds. Runs are restartable: shards already committed are
kept and their samples skipped; earlier rejects are tried again (a fixed file gets in), and a
finished run given the same inputs writes nothing.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import threading
from dataclasses import dataclass, field
from functools import partial
from typing import Iterable, Iterator

import numpy as np
from tqdm import tqdm

from mammolibs import storage
from mammolibs.data.manifest import MANIFEST, REJECTS, build_manifest, split_of
from mammolibs.data.pseudonyms import InputNames, pseudonym, pseudonym_key, resolve_salt, salt_check
from mammolibs.data.readers import get_reader
from mammolibs.data.sample import LABELS, RawSample, RejectedInput, SourceItem
from mammolibs.data.shards import (
    EncodedSample,
    ShardWriter,
    committed_shards,
    encode_sample,
    next_shard_number,
    remove_uncommitted,
)
from mammolibs.data.snips import lesion_boxes
from mammolibs.data.standard_form import to_standard, to_uint16
from mammolibs.data.validate import SPLITS
from mammolibs.data.vocabulary import checked_meta

log = logging.getLogger(__name__)

SETTINGS = "standardize.json"
LOST_MASK = "its lesion mask is empty after crop and resize (a lesion under a pixel, or outside the breast region)"
"""Why a localized input is kept label-only (``meta["label_only"]``): its image label still serves training."""
NOT_CROPPED = ("US",)
"""Modalities kept whole: the breast-region crop and flip are for mammograms."""


@dataclass
class StandardizeResult:
    inputs: int
    written: int
    rejected: int
    manifest: dict
    new_shards: int = 0
    unusable_sources: list[str] = field(default_factory=list)


@dataclass
class Rejected:
    """One input left out, as ``rejects.jsonl`` lists it (``file``: relative to its input folder, or redacted)."""

    file: str
    source: str
    key: str
    reason: str


def sample_key(source: str, item_key: str, key: bytes) -> str:
    """The key written to the shards: the source and a pseudonym (:mod:`pseudonyms`), never a file or patient name."""
    return f"{source}-{pseudonym(item_key, key)}"


def standardize(
    sources: list[tuple[str, str]],
    output: str,
    image_size: int = 512,
    salt: str | None = None,
    samples_per_shard: int = 256,
    workers: int = 1,
    progress: bool = True,
    redact_paths: bool = False,
) -> StandardizeResult:
    """Standardize ``(source name, input URL)`` pairs into shards under ``output``.

    Args:
        sources: e.g. ``[("mias", "data/mias"), ("cbis-ddsm", "gs://bucket/CBIS-DDSM")]``.
        output: folder or URL (``gs://bucket/shards``) that receives shards, manifest, rejects.
        image_size: side of the square standard image.
        salt: secret mixed into patient-id and key hashes (:func:`pseudonyms.resolve_salt`: at least 16
            characters; ``None``: ``$MAMMOFLOW_SALT``, else a random salt kept nowhere); keep it secret and
            the same for every source and run of one project.
        samples_per_shard: samples per tar file.
        workers: processes that decode and standardize images in parallel.
        redact_paths: name inputs in rejects and logs by a pseudonym of their path instead of the path
            relative to their input folder (for folder or file names that identify patients).

    Returns:
        Counts and the manifest written to ``output/manifest.json``.
    """
    if image_size <= 0 or samples_per_shard <= 0 or workers <= 0:
        raise ValueError(
            f"image size {image_size}, samples per shard {samples_per_shard} and workers {workers} "
            "must all be above zero"
        )
    storage.check_apart(output, [url for _, url in sources])
    secret = pseudonym_key(resolve_salt(salt))
    shown = InputNames([url for _, url in sources], secret, redact_paths)
    if redact_paths:  # storage libraries log the paths they open
        for library in ("fsspec", "gcsfs", "google"):
            logging.getLogger(library).setLevel(logging.WARNING)
    with storage.writer_lock(output):  # one writer at a time
        _check_settings(
            output, {"image_size": image_size, "salt_check": salt_check(secret), "samples_per_shard": samples_per_shard}
        )
        for leftover in remove_uncommitted(output):
            log.info("removed %s, left incomplete by an earlier run", leftover)
        shards = committed_shards(output)
        written = {entry["key"] for shard in shards for entry in shard["contents"]}
        items, rejects = _list_items(sources, secret)
        inputs = len(items) + len(rejects)  # an unreadable source counts as one input
        writers = {
            split: ShardWriter(output, split, samples_per_shard, next_shard_number(shards, split)) for split in SPLITS
        }
        todo = _still_to_do(items, written, rejects)
        results = _prepare_all(todo, image_size, secret, workers)
        _write_results(results, todo, writers, rejects, shown, progress)
        unusable = _unusable_sources(sources, items, rejects, shown)
        rejects = [Rejected(shown.name(r.file), r.source, r.key, shown.text(r.reason, r.file)) for r in rejects]
        _write_if_changed(storage.join(output, REJECTS), "".join(json.dumps(r.__dict__) + "\n" for r in rejects))
        manifest = build_manifest(committed_shards(output), image_size, inputs=inputs, rejected=len(rejects))
        _write_if_changed(storage.join(output, MANIFEST), json.dumps(manifest, indent=2, sort_keys=True))
        return StandardizeResult(
            inputs=inputs,
            written=manifest["written"],
            rejected=len(rejects),
            manifest=manifest,
            new_shards=sum(len(w.shards) for w in writers.values()),
            unusable_sources=unusable,
        )


def _still_to_do(
    items: list[tuple[str, SourceItem]], written: set[str], rejects: list[Rejected]
) -> list[tuple[str, SourceItem]]:
    """The items not in a committed shard yet; a second item of the same key is rejected."""
    todo, seen = [], set(written)
    for key, item in items:
        if key in written:
            continue
        if key in seen:
            reason = (
                f"{item.name}: appears twice in this run (the same file under two sources?); "
                "standardize each source folder once"
            )
            rejects.append(Rejected(item.name, _source_of(key), key, reason))
            continue
        seen.add(key)
        todo.append((key, item))
    return todo


def _write_results(
    results: Iterable,
    todo: list[tuple[str, SourceItem]],
    writers: dict[str, ShardWriter],
    rejects: list[Rejected],
    shown: InputNames,
    progress: bool,
) -> None:
    """Each prepared sample into the shard of its split (every shard committed at the end), each failure
    into ``rejects``."""
    names = {key: item.name for key, item in todo}
    for result in tqdm(results, total=len(todo), desc="standardize", unit="image", disable=not progress):
        if isinstance(result, Rejected):
            log.warning("rejected %s", shown.text(result.reason, result.file))
            rejects.append(result)
        else:
            if "label_only" in result.meta:
                log.warning("%s kept label-only: %s", shown.name(names[result.key]), result.meta["label_only"])
            writers[result.meta["split"]].add(result)
    for writer in writers.values():
        writer.flush()


def _unusable_sources(
    sources: list[tuple[str, str]], items: list[tuple[str, SourceItem]], rejects: list[Rejected], shown: InputNames
) -> list[str]:
    """A line for each ``--source``/``--input`` pair whose every input was rejected: its first reason,
    and that the folder is probably not that source's published layout."""
    lines = []
    for source, url in sources:
        root = url.rstrip("/")
        refused = [r for r in rejects if r.source == source and (r.file == root or r.file.startswith(root + "/"))]
        names = {r.file for r in refused}
        if refused and all(
            item.name in names for key, item in items if _source_of(key) == source and item.name.startswith(root + "/")
        ):
            lines.append(
                f"every input of --source {source} --input {url} was rejected ({len(refused)}), e.g. "
                f"{shown.text(refused[0].reason)}; --input is probably not a {source} folder in its "
                "published layout (see the README), or --source is not the right reader"
            )
    return lines


def _list_items(sources: list[tuple[str, str]], key: bytes) -> tuple[list[tuple[str, SourceItem]], list[Rejected]]:
    """Every item of every source with its written key; a source that cannot be read is one reject."""
    items, rejects = [], []
    for source, url in sources:
        try:
            found = list(get_reader(source)(url))
        except (OSError, ValueError) as err:  # a missing folder or a malformed table: one reject, the run goes on
            rejects.append(
                Rejected(
                    url,
                    source,
                    sample_key(source, f"source:{url}", key),
                    f"{url}: source {source!r} cannot be read: {err}",
                )
            )
            continue
        items += [(sample_key(source, item.key, key), item) for item in found]
    return items, rejects


def _prepare_all(
    todo: list[tuple[str, SourceItem]], image_size: int, key: bytes, workers: int
) -> Iterator[EncodedSample | Rejected]:
    prepare = partial(_prepare, image_size=image_size, key=key)
    if workers <= 1:
        yield from map(prepare, todo)
        return
    slots, stopped = threading.Semaphore(4 * workers), threading.Event()  # bounded in flight: flat memory

    def feed() -> Iterator[tuple[str, SourceItem]]:
        for task in todo:
            slots.acquire()
            if stopped.is_set():
                return
            yield task

    context = multiprocessing.get_context("spawn")  # fork is unsafe with torch threads and gcsfs event loops
    with context.Pool(workers, initializer=_quiet_worker) as pool:
        try:
            for result in pool.imap(prepare, feed(), chunksize=1):
                slots.release()
                yield result
        finally:
            stopped.set()
            slots.release()  # wake the feeder if it waits, so the pool can shut down


def _quiet_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _source_of(key: str) -> str:
    return key.rsplit("-", 1)[0]


def _prepare(todo: tuple[str, SourceItem], image_size: int, key: bytes) -> EncodedSample | Rejected:
    """Load, standardize and encode one item; any failure becomes a :class:`Rejected` naming the file."""
    sample, item = todo
    source = _source_of(sample)
    try:
        image, mask, meta = standardize_sample(item.load(), image_size, key, item.name)
    except RejectedInput as err:
        return Rejected(item.name, source, sample, str(err))
    except Exception as err:  # an unexpected failure on one file must not stop the run
        withheld = "its message is withheld, as it may quote the file's contents"
        return Rejected(item.name, source, sample, f"{item.name}: unexpected {type(err).__name__} ({withheld})")
    return encode_sample(sample, image, mask, meta)


def standardize_sample(raw: RawSample, image_size: int, key: bytes, name: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """Image (uint16), mask (uint8 0/255) and de-identified metadata of one sample."""
    if raw.label not in LABELS:
        raise RejectedInput(f"{name}: unknown label {raw.label!r}; expected one of {', '.join(LABELS)}")
    if raw.mask is not None and raw.mask.shape != raw.image.shape:
        raise RejectedInput(f"{name}: mask shape {raw.mask.shape} differs from image shape {raw.image.shape}")
    if raw.label in ("benign", "malignant") and raw.mask is not None and not raw.mask.any():
        raise RejectedInput(f"{name}: labelled {raw.label} but its mask is empty")
    crop = raw.meta.get("modality", "MG") not in NOT_CROPPED
    image, mask, placement = to_standard(raw.image, raw.mask, image_size, name, crop=crop)
    patient = pseudonym(raw.patient_id, key)
    lost = raw.label in ("benign", "malignant") and raw.mask is not None and not mask.any()
    meta = {
        "label": raw.label,
        "source": raw.source,
        "patient": patient,
        "split": split_of(patient, raw.official_split),
        "laterality": raw.laterality if raw.laterality in ("L", "R") else "",
        "localized": raw.mask is not None and not lost,
        **({"label_only": LOST_MASK} if lost else {}),
        **({"lesions": own_classes(raw, image_size, name, crop)} if raw.lesions and not lost else {}),
        "original_size": list(raw.image.shape),
        "crop": [placement.crop_top, placement.crop_left, placement.crop_width],
        "flipped": placement.flipped,
        "scale": placement.scale,
        **checked_meta(raw.meta),
    }
    return to_uint16(image), mask.astype(np.uint8) * 255, meta


def own_classes(raw: RawSample, image_size: int, name: str, crop: bool) -> list[dict]:
    """Each lesion's class and its box in the standard image (x0, y0, x1, y1), for a film whose lesions
    differ in class; the same geometry as the film's (it depends on the image alone)."""
    boxes = []
    for label, mask in raw.lesions:
        found = lesion_boxes(to_standard(raw.image, mask, image_size, name, crop=crop)[1])
        if found:
            boxes.append({"label": label, "box": [int(v) for v in found[0]]})
    return boxes


def _check_settings(output: str, settings: dict) -> None:
    """Refuse to mix shards made with other settings into one output."""
    url = storage.join(output, SETTINGS)
    if storage.exists(url):
        before = json.loads(storage.read_text(url))
        changed = [k for k in settings if before.get(k) != settings[k]]
        if changed:
            raise ValueError(
                f"{output} holds shards made with other {', '.join(changed)} "
                f"({before}); use a new --output or delete that folder first"
            )
    else:
        storage.write_text_atomic(url, json.dumps(settings, sort_keys=True))


def _write_if_changed(url: str, text: str) -> None:
    """Write ``text`` unless ``url`` already holds it, so that rerunning a finished job writes nothing."""
    if not (storage.exists(url) and storage.read_text(url) == text):
        storage.write_text_atomic(url, text)
