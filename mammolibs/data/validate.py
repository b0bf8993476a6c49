"""Shard sets are untrusted input: every field of a manifest, a shard index or a sample's metadata that
names a file, a split or a sample is checked here against a strict pattern before it is used, so
nothing read from a shard set can point outside it (``../``, absolute paths, other buckets).

Each check raises ``ValueError`` naming the file and the field, and saying what to do next.
"""

from __future__ import annotations

import re

from mammolibs.data.sample import LABELS

SPLITS = ("train", "val", "test")
SHARD_NAME = re.compile(r"shard-(train|val|test)-(\d{5})\.tar")
SAMPLE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
SOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_SPAN = 1 << 30
"""The most bytes one sample may take in a shard (a 16-bit image of 23,000 x 23,000 pixels)."""
MEMBER_KINDS = ("npy", "mask.png", "json")
"""The members of one sample in a shard: ``<key>.npy``, ``<key>.mask.png``, ``<key>.json``."""


def _refuse(where: str, field: str, value: object, expected: str) -> ValueError:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return ValueError(
        f"{where}: {field} {shown} is not {expected}; the shard set is damaged or was not "
        "written by mammoflow: standardize the source again"
    )


def split(value: object, where: str) -> str:
    if value not in SPLITS:
        raise _refuse(where, "split", value, "one of " + ", ".join(SPLITS))
    return value


def shard_name(value: object, where: str, of_split: str | None = None) -> str:
    """A shard's file name: ``shard-<split>-NNNNN.tar``, of ``of_split`` when given."""
    match = SHARD_NAME.fullmatch(value) if isinstance(value, str) else None
    if not match or (of_split is not None and match.group(1) != of_split):
        raise _refuse(where, "shard name", value, f"a name like shard-{of_split or 'train'}-00000.tar")
    return match.group(0)


def sample_key(value: object, where: str) -> str:
    if not isinstance(value, str) or not SAMPLE_KEY.fullmatch(value):
        raise _refuse(where, "sample key", value, "letters, digits, '-' and '_' (at most 128)")
    return value


def _count(value: object, where: str, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _refuse(where, field, value, "a count")
    return value


def _label_and_source(fields: object, where: str, what: str) -> dict:
    """``fields`` (an object) with a known label and a source name."""
    if not isinstance(fields, dict):
        raise _refuse(where, what, type(fields).__name__, "an object")
    if fields.get("label") not in LABELS:
        raise _refuse(where, "label", fields.get("label"), "one of " + ", ".join(LABELS))
    if not isinstance(fields.get("source"), str) or not SOURCE_NAME.fullmatch(fields["source"]):
        raise _refuse(where, "source", fields.get("source"), "a source name")
    return fields


def content_entry(entry: object, where: str) -> dict:
    """One sample as a shard index lists it: key, label, source, localized, and its span: ``[offset, size]``
    of its members' bytes in the shard, whole tar blocks."""
    checked = _label_and_source(entry, where, "sample entry")
    sample_key(checked.get("key"), where)
    span = checked.get("span")
    if (
        not isinstance(span, list)
        or len(span) != 2
        or any(not isinstance(n, int) or isinstance(n, bool) or n < 0 or n % 512 for n in span)
        or not 0 < span[1] <= MAX_SPAN
    ):
        raise _refuse(where, "span", span, "[offset, size] of the sample's bytes in its shard, in 512-byte blocks")
    return checked


def shard_index(index: object, where: str, file_name: str | None = None) -> dict:
    """A shard index (``shard-*.index.json``) checked whole; ``file_name``: the index file's own name,
    which its shard's name must match."""
    if not isinstance(index, dict):
        raise _refuse(where, "index", type(index).__name__, "an object")
    shard_name(index.get("name"), where, split(index.get("split"), where))
    if file_name is not None and index["name"][: -len(".tar")] + ".index.json" != file_name:
        raise _refuse(where, "shard name", index["name"], f"the shard of {file_name}")
    if not isinstance(index.get("sha256"), str) or not SHA256.fullmatch(index["sha256"]):
        raise _refuse(where, "sha256", index.get("sha256"), "64 hexadecimal digits")
    contents = index.get("contents")
    if not isinstance(contents, list) or _count(index.get("samples"), where, "samples") != len(contents):
        raise _refuse(where, "samples", index.get("samples"), "the number of samples it lists")
    keys = [content_entry(entry, where)["key"] for entry in contents]
    if len(set(keys)) != len(keys):
        raise _refuse(where, "contents", "duplicate keys", "a list of distinct samples")
    return index


def manifest(value: object, where: str) -> dict:
    """A shard set's ``manifest.json``: its shard list, sizes and counts."""
    if not isinstance(value, dict) or not isinstance(value.get("shards"), list):
        raise _refuse(where, "manifest", type(value).__name__, "an object with a list of shards")
    for shard in value["shards"]:
        if not isinstance(shard, dict):
            raise _refuse(where, "shard entry", shard, "an object")
        shard_name(shard.get("name"), where, split(shard.get("split"), where))
    for field in ("image_size", "inputs", "written", "rejected"):
        _count(value.get(field), where, field)
    if value["image_size"] == 0:
        raise _refuse(where, "image_size", 0, "a positive size")
    return value


def sample_meta(meta: object, where: str) -> dict:
    """A sample's own metadata (``<key>.json``): its label, source and split checked."""
    checked = _label_and_source(meta, where, "sample metadata")
    split(checked.get("split"), where)
    return checked


def member(name: str, where: str) -> tuple[str, str]:
    """``(key, kind)`` of a tar member name ``<key>.<kind>``, kind one of :data:`MEMBER_KINDS`."""
    key, _, kind = name.partition(".")
    if kind not in MEMBER_KINDS:
        raise _refuse(where, "member", name, "<key>." + " / <key>.".join(MEMBER_KINDS))
    return sample_key(key, where), kind
