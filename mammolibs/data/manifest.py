"""The manifest (``manifest.json``) that describes a standardized shard set, and split assignment."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Iterable

from mammolibs import storage
from mammolibs.data import validate

MANIFEST = "manifest.json"
REJECTS = "rejects.jsonl"


def split_of(patient_hash: str, official: str = "", fractions: tuple[float, float] = (0.8, 0.1)) -> str:
    """Patient-level split from a stable hash: all films of one patient land in one split.

    A source's ``official`` split is kept: its ``test`` stays test, and its ``train`` patients are
    divided into train and val by the same hash.
    """
    position = int(hashlib.sha256(patient_hash.encode()).hexdigest()[:8], 16) / 2**32
    if official == "test":
        return "test"
    if official == "train":
        return "val" if position < fractions[1] else "train"
    if position < fractions[0]:
        return "train"
    return "val" if position < fractions[0] + fractions[1] else "test"


def read_manifest(data_url: str) -> dict:
    """The manifest of the shard set at ``data_url``, checked (:func:`validate.manifest`)."""
    url = storage.join(data_url, MANIFEST)
    if not storage.exists(url):
        raise FileNotFoundError(f"{url} not found: run 'mammo standardize --output {data_url}' first")
    return validate.manifest(read_json(url), url)


def read_json(url: str) -> object:
    """A JSON file of a shard set; a file that is not JSON is named in the error."""
    try:
        return json.loads(storage.read_text(url))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(
            f"{url}: not valid JSON ({err}); the shard set is damaged: standardize the source again"
        ) from None


def build_manifest(shards: Iterable[dict], image_size: int, inputs: int, rejected: int) -> dict:
    """The manifest of a shard set from its shard indexes: counts per split, label and source, and the shards."""
    counts: Counter = Counter()
    listed = []
    for shard in shards:
        listed.append({k: shard[k] for k in ("name", "split", "samples", "sha256")})
        counts.update((shard["split"], e["label"], e["source"]) for e in shard["contents"])
    per: dict[str, Counter] = {"split": Counter(), "label": Counter(), "source": Counter()}
    nested: dict = {}
    for (split, label, source), n in sorted(counts.items()):
        per["split"][split] += n
        per["label"][label] += n
        per["source"][source] += n
        nested.setdefault(split, {}).setdefault(source, {})[label] = n
    return {
        "format": "mammoflow-shards/3",
        "image_size": image_size,
        "inputs": inputs,
        "written": sum(counts.values()),
        "rejected": rejected,
        "counts": {name: dict(c) for name, c in per.items()},
        "counts_by_split_source_label": nested,
        "shards": listed,
    }
