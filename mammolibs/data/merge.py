"""``mammo data merge``: one shard set from several standardized ones (one per source, made in parallel).

Shards are copied whole and renumbered per split; each one's bytes are checked against the SHA-256 of
its index first, and each sample against its span there. The merged manifest adds up the inputs, so
``inputs == written + rejected`` still holds, and the rejects of every input are kept. Merging the same
inputs again gives the same files.
"""

from __future__ import annotations

import hashlib
import json

from tqdm import tqdm

from mammolibs import storage
from mammolibs.data.manifest import MANIFEST, REJECTS, build_manifest, read_json
from mammolibs.data.shard_set import ShardSet
from mammolibs.data.shards import INDEX_SUFFIX, shard_members, span_members
from mammolibs.data.standardize import SETTINGS


def merge_shard_sets(inputs: list[str], output: str, progress: bool = True) -> dict:
    """Merge the shard sets at ``inputs`` (URLs) into ``output``; returns the merged manifest."""
    if not inputs:
        raise ValueError("nothing to merge: give at least one standardized shard set")
    storage.check_apart(output, inputs)
    sets = [ShardSet.open(url) for url in inputs]
    manifests = [data.manifest for data in sets]
    settings = [read_json(storage.join(url, SETTINGS)) for url in inputs]
    for url, setting, manifest in zip(inputs[1:], settings[1:], manifests[1:]):
        if setting != settings[0] or manifest["image_size"] != manifests[0]["image_size"]:
            raise ValueError(
                f"{url} was standardized with {setting}, {inputs[0]} with {settings[0]}; "
                "standardize every source with the same --image-size, --salt and --samples-per-shard"
            )
    plan = _plan(sets)
    with storage.writer_lock(output):  # one writer at a time
        return _write_merged(inputs, output, plan, settings[0], manifests, progress)


def _write_merged(
    inputs: list[str],
    output: str,
    plan: list[tuple[str, str, dict]],
    settings: object,
    manifests: list[dict],
    progress: bool,
) -> dict:
    """The merge itself, its manifest written last: until then the output has none, so a merge stopped
    half-way (``kill -9``) leaves a folder every reader refuses rather than shards its manifest does not list."""
    if storage.exists(storage.join(output, MANIFEST)):
        storage.delete(storage.join(output, MANIFEST))
    storage.write_text_atomic(storage.join(output, SETTINGS), json.dumps(settings, sort_keys=True))
    wanted = {name for _, _, index in plan for name in (index["name"], index["name"][:-4] + INDEX_SUFFIX)}
    for stale in storage.list_files(output):
        if stale.startswith("shard-") and "/" not in stale and stale not in wanted:
            storage.delete(storage.join(output, stale))
    for source_url, original, index in tqdm(plan, desc="merge", unit="shard", disable=not progress):
        blob = storage.read_bytes(storage.join(source_url, original))
        if hashlib.sha256(blob).hexdigest() != index["sha256"]:
            raise ValueError(
                f"{storage.join(source_url, original)} does not match the SHA-256 in its index; "
                "it was changed or truncated after standardize wrote it: standardize that source again"
            )
        where = storage.join(source_url, original)
        if list(shard_members(blob, where)) != [entry["key"] for entry in index["contents"]]:
            raise ValueError(f"{where} holds other samples than its index lists; standardize that source again")
        for entry in index["contents"]:  # the loaders read each sample at its span alone
            span_members(blob[entry["span"][0] : sum(entry["span"])], where, entry)
        storage.write_bytes_atomic(storage.join(output, index["name"]), blob)
        storage.write_text_atomic(storage.join(output, index["name"][:-4] + INDEX_SUFFIX), json.dumps(index))
    rejects = "".join(
        storage.read_text(storage.join(url, REJECTS)) for url in inputs if storage.exists(storage.join(url, REJECTS))
    )
    storage.write_text_atomic(storage.join(output, REJECTS), rejects)
    manifest = build_manifest(
        [index for _, _, index in plan],
        manifests[0]["image_size"],
        inputs=sum(m["inputs"] for m in manifests),
        rejected=sum(m["rejected"] for m in manifests),
    )
    manifest["merged_from"] = list(inputs)
    storage.write_text_atomic(storage.join(output, MANIFEST), json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def _plan(sets: list[ShardSet]) -> list[tuple[str, str, dict]]:
    """``(input URL, shard name there, index under its merged name)`` for every shard, numbered per split."""
    plan: list[tuple[str, str, dict]] = []
    numbers: dict[str, int] = {}
    owner: dict[str, str] = {}
    for data in sets:
        url = data.url
        for shard in data.all_shards():
            for entry in shard["contents"]:
                if entry["key"] in owner:
                    raise ValueError(
                        f"sample {entry['key']} is in both {owner[entry['key']]} and {url}: "
                        "the same source was standardized twice; merge each source once"
                    )
                owner[entry["key"]] = url
            number = numbers.get(shard["split"], 0)
            numbers[shard["split"]] = number + 1
            plan.append((url, shard["name"], {**shard, "name": f"shard-{shard['split']}-{number:05d}.tar"}))
    return plan
