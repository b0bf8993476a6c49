"""``mammo standardize``: read sources in their published layouts, write standard-form shards.

Every input is either written or recorded in ``rejects.jsonl`` with its file and the reason, so
``inputs == written + rejected`` always holds.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from mammolibs import storage
from mammolibs.data.manifest import MANIFEST, REJECTS, SPLITS, hash_patient, split_of
from mammolibs.data.readers import get_reader
from mammolibs.data.sample import LABELS, RawSample, RejectedInput
from mammolibs.data.shards import ShardWriter
from mammolibs.data.standard_form import MAX_PIXELS, fit_to_square, normalize_intensity, to_uint16

log = logging.getLogger(__name__)

META_FIELDS = ("view", "modality", "tissue", "classes", "photometric", "bits_stored")
"""The only reader metadata that reaches the shards; everything else is dropped."""


@dataclass
class StandardizeResult:
    inputs: int
    written: int
    rejected: int
    manifest: dict


def standardize(sources: list[tuple[str, str]], output: str, image_size: int = 512, salt: str = "mammoflow",
                samples_per_shard: int = 256, progress: bool = True) -> StandardizeResult:
    """Standardize ``(source name, input folder)`` pairs into shards under ``output``.

    Args:
        sources: e.g. ``[("mias", "data/mias"), ("dicom", "data/cbis")]``.
        output: folder or URL (``gs://bucket/shards``) that receives shards, manifest, rejects.
        image_size: side of the square standard image.
        salt: mixed into patient-id hashes; keep it secret and fixed across runs of one project.
        samples_per_shard: samples per tar file.

    Returns:
        Counts and the manifest written to ``output/manifest.json``.
    """
    storage.makedirs(output)
    writers = {split: ShardWriter(output, f"shard-{split}", samples_per_shard) for split in SPLITS}
    counts: Counter = Counter()
    rejects: list[dict] = []
    inputs = 0
    seen: set[str] = set()
    for source, folder in sources:
        items = list(get_reader(source)(folder))
        for item in tqdm(items, desc=f"standardize {source}", unit="image", disable=not progress):
            inputs += 1
            try:
                if item.key in seen:
                    raise RejectedInput(f"{item.name}: sample key {item.key} was already written in this run; "
                                        "standardize each source folder once")
                image, mask, meta = standard_form(item.load(), image_size, salt, item.name)
            except (RejectedInput, OSError) as err:
                log.warning("rejected %s", err)
                rejects.append({"file": item.name, "source": source, "reason": str(err)})
                continue
            seen.add(item.key)
            writers[meta["split"]].add(item.key, image, mask, meta)
            counts[(meta["split"], meta["label"], source)] += 1
    for writer in writers.values():
        writer.flush()
    storage.write_text_atomic(storage.join(output, REJECTS), "".join(json.dumps(r) + "\n" for r in rejects))
    manifest = _manifest(writers, counts, image_size, inputs, len(rejects))
    storage.write_text_atomic(storage.join(output, MANIFEST), json.dumps(manifest, indent=2, sort_keys=True))
    return StandardizeResult(inputs=inputs, written=sum(counts.values()), rejected=len(rejects), manifest=manifest)


def standard_form(raw: RawSample, image_size: int, salt: str, name: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """Image (uint16), mask (uint8 0/255) and de-identified metadata of one sample."""
    if raw.label not in LABELS:
        raise RejectedInput(f"{name}: unknown label {raw.label!r}; expected one of {', '.join(LABELS)}")
    if raw.mask is not None and raw.mask.shape != raw.image.shape:
        raise RejectedInput(f"{name}: mask shape {raw.mask.shape} differs from image shape {raw.image.shape}")
    if raw.label in ("benign", "malignant") and raw.mask is not None and not raw.mask.any():
        raise RejectedInput(f"{name}: labelled {raw.label} but its mask is empty")
    if raw.image.size > MAX_PIXELS:
        raise RejectedInput(f"{name}: {raw.image.shape[1]}x{raw.image.shape[0]} pixels is beyond any mammogram")
    image, placement = fit_to_square(normalize_intensity(raw.image, name), image_size)
    mask = raw.mask if raw.mask is not None else np.zeros(raw.image.shape, dtype=bool)
    mask_square, _ = fit_to_square(mask.astype(np.float32), image_size, nearest=True)
    patient = hash_patient(raw.patient_id, salt)
    meta = {
        "label": raw.label,
        "source": raw.source,
        "patient": patient,
        "split": split_of(patient),
        "laterality": raw.laterality,
        "localized": raw.mask is not None,
        "original_size": list(raw.image.shape),
        "scale": placement.scale,
        **{k: v for k, v in raw.meta.items() if k in META_FIELDS},
    }
    return to_uint16(image), (mask_square > 0.5).astype(np.uint8) * 255, meta


def _manifest(writers: dict[str, ShardWriter], counts: Counter, image_size: int, inputs: int, rejected: int) -> dict:
    per: dict[str, Counter] = {"split": Counter(), "label": Counter(), "source": Counter()}
    nested: dict = {}
    for (split, label, source), n in sorted(counts.items()):
        per["split"][split] += n
        per["label"][label] += n
        per["source"][source] += n
        nested.setdefault(split, {}).setdefault(source, {})[label] = n
    return {
        "format": "mammoflow-shards/1",
        "image_size": image_size,
        "inputs": inputs,
        "written": sum(counts.values()),
        "rejected": rejected,
        "counts": {name: dict(c) for name, c in per.items()},
        "counts_by_split_source_label": nested,
        "shards": [dict(s, split=split) for split, w in writers.items() for s in w.shards],
    }
