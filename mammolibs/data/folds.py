"""Copies of a shard set with some samples, or other splits: one source's samples, or the splits of a
patient-level k-fold cross-validation.

Fold ``i`` of ``k`` puts the patients whose hash falls in bucket ``i`` in ``test``, a share of the
others (by a second hash, so it is the same whatever ``i``) in ``val`` and the rest in ``train``.
All films of one patient stay together, as in ``mammo standardize``. The samples' bytes are copied
unchanged; only their ``split`` may be rewritten.
"""

from __future__ import annotations

import hashlib
import json
from typing import Callable

from mammolibs import storage
from mammolibs.data.manifest import MANIFEST, build_manifest
from mammolibs.data.shard_set import ShardSet
from mammolibs.data.shards import EncodedSample, ShardWriter, decode_meta, read_shard
from mammolibs.data.standardize import SETTINGS
from mammolibs.data.validate import SPLITS


def fold_of(patient: str, folds: int) -> int:
    return int(hashlib.sha256(f"fold:{patient}".encode()).hexdigest()[:8], 16) % folds


def split_in_fold(patient: str, folds: int, fold: int, val_fraction: float) -> str:
    return "test" if fold_of(patient, folds) == fold else val_or_train(patient, val_fraction)


def val_or_train(patient: str, val_fraction: float) -> str:
    """``val`` for a share ``val_fraction`` of patients (by a hash of their pseudonym), else ``train``."""
    position = int(hashlib.sha256(f"val:{patient}".encode()).hexdigest()[:8], 16) / 2**32
    return "val" if position < val_fraction else "train"


def write_fold(data_url: str, output: str, folds: int, fold: int, val_fraction: float = 0.15) -> dict:
    """Copy the shard set at ``data_url`` to ``output`` with the splits of fold ``fold`` of ``folds``;
    returns the new manifest. Samples keep their keys, labels and sources."""
    if not 0 <= fold < folds or folds < 2:
        raise ValueError(f"fold {fold} of {folds}: need 2 or more folds and 0 <= fold < folds")
    return copy_samples(
        data_url,
        output,
        lambda meta: {**meta, "split": split_in_fold(meta["patient"], folds, fold, val_fraction)},
        {"fold": {"of": data_url, "folds": folds, "fold": fold, "val_fraction": val_fraction}},
    )


def write_split(data_url: str, output: str, val_fraction: float = 0.15) -> dict:
    """Copy the shard set at ``data_url`` to ``output`` for training on all of it: each patient in
    ``val`` (by the same hash as :func:`split_in_fold`) or ``train``, none in ``test``."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val fraction {val_fraction}: must lie between 0 and 1")
    return copy_samples(
        data_url,
        output,
        lambda meta: {**meta, "split": val_or_train(meta["patient"], val_fraction)},
        {"training_split": {"of": data_url, "val_fraction": val_fraction}},
    )


def write_test(data_url: str, output: str) -> dict:
    """Copy the shard set at ``data_url`` to ``output`` with every sample in ``test``: a dataset scored whole."""
    return copy_samples(data_url, output, lambda meta: {**meta, "split": "test"}, {"test_of": data_url})


def write_unlabelled(data_url: str, output: str) -> dict:
    """Copy the shard set at ``data_url`` to ``output`` with every label ``unknown``: what label-free
    pretraining may see (the autoencoder's class head learns nothing from it)."""
    return copy_samples(data_url, output, lambda meta: {**meta, "label": "unknown"}, {"unlabelled_of": data_url})


def write_source(data_url: str, output: str, source: str) -> dict:
    """Copy the samples of one ``source`` of the shard set at ``data_url`` to ``output``, splits kept."""
    return copy_samples(
        data_url, output, lambda meta: meta if meta["source"] == source else None, {"source_of": data_url}
    )


def copy_samples(data_url: str, output: str, change: Callable[[dict], dict | None], note: dict) -> dict:
    """Copy the samples that ``change`` keeps (it returns their new metadata, or ``None`` to drop one)
    into a new shard set at ``output``; its manifest gets ``note``. Returns the manifest."""
    data = ShardSet.open(data_url)
    storage.makedirs(output)
    storage.write_text_atomic(storage.join(output, SETTINGS), storage.read_text(storage.join(data_url, SETTINGS)))
    writers = {split: ShardWriter(output, split) for split in SPLITS}
    dropped = 0
    for shard in data.all_shards():
        url = data.shard_url(shard)
        for key, parts in read_shard(url).items():
            meta = change(decode_meta(parts, f"{url} sample {key}"))
            if meta is None:
                dropped += 1
            else:
                writers[meta["split"]].add(EncodedSample(key, bytes(parts["npy"]), bytes(parts["mask.png"]), meta))
    for writer in writers.values():
        writer.flush()
    shards = [index for writer in writers.values() for index in writer.shards]
    written = sum(index["samples"] for index in shards)
    # a subset's rejects are not told apart from the others': it counts its own samples only
    inputs, rejected = (data.manifest["inputs"], data.manifest["rejected"]) if not dropped else (written, 0)
    result = build_manifest(shards, data.image_size, inputs=inputs, rejected=rejected)
    result.update(note)
    storage.write_text_atomic(storage.join(output, MANIFEST), json.dumps(result, indent=2, sort_keys=True))
    return result
