"""Tar shards in the WebDataset convention: ``<key>.png`` (16-bit image), ``<key>.mask.png``
(8-bit, 0/255) and ``<key>.json`` (label, source, split, ...) stored next to each other.

A shard becomes visible only when complete (see :func:`mammolibs.storage.write_bytes_atomic`) and
counts as written only once its index is written after it (see :class:`ShardWriter`).
"""
from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile
import zlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from PIL import Image

from mammolibs import storage


@dataclass
class StandardSample:
    """A sample in standard form, as training and evaluation read it."""

    key: str
    image: np.ndarray  # float32 (H, W) in [0, 1]
    mask: np.ndarray  # float32 (H, W) in {0, 1}
    meta: dict  # label, source, split, patient, laterality, localized, ...

    @property
    def label(self) -> str:
        return self.meta["label"]


def _png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 or uint16 grey image (16-bit written directly: twice as fast as Pillow's)."""
    if array.dtype != np.uint16:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()
    height, width = array.shape
    rows = np.zeros((height, 1 + 2 * width), dtype=np.uint8)  # filter byte 0, then big-endian samples
    rows[:, 1:] = array.astype(">u2").view(np.uint8).reshape(height, 2 * width)
    header = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    deflate = zlib.compressobj(1, zlib.DEFLATED, 15, 8, zlib.Z_RLE)  # run-length: faster and smaller here
    data = deflate.compress(rows.tobytes()) + deflate.flush()
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data)
            + _png_chunk(b"IEND", b""))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@dataclass
class EncodedSample:
    """A sample ready for a shard: PNG bytes and metadata (made in worker processes)."""

    key: str
    image_png: bytes
    mask_png: bytes
    meta: dict


def encode_sample(key: str, image: np.ndarray, mask: np.ndarray, meta: dict) -> EncodedSample:
    """``image`` uint16, ``mask`` uint8 (0/255), ``meta`` JSON-serialisable."""
    return EncodedSample(key, _png(image), _png(mask), meta)


INDEX_SUFFIX = ".index.json"


class ShardWriter:
    """Collects samples of one split and writes ``shard-<split>-NNNNN.tar`` under ``url``.

    Each shard is committed in two steps: the tar (atomically), then its index
    ``shard-<split>-NNNNN.index.json`` listing its samples. Only shards with an index count as
    written, so a run killed between the two redoes that shard and never duplicates it.
    """

    def __init__(self, url: str, split: str, samples_per_shard: int = 256, first_number: int = 0):
        self.url, self.split, self.samples_per_shard = url, split, samples_per_shard
        self.number = first_number
        self.buffer: list[EncodedSample] = []
        self.shards: list[dict] = []

    def add(self, sample: EncodedSample) -> None:
        self.buffer.append(sample)
        if len(self.buffer) == self.samples_per_shard:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        name = f"shard-{self.split}-{self.number:05d}.tar"
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            for sample in self.buffer:
                for member, payload in ((f"{sample.key}.png", sample.image_png),
                                        (f"{sample.key}.mask.png", sample.mask_png),
                                        (f"{sample.key}.json", json.dumps(sample.meta, sort_keys=True).encode())):
                    info = tarfile.TarInfo(member)
                    info.size, info.mode, info.mtime = len(payload), 0o644, 0
                    tar.addfile(info, io.BytesIO(payload))
        blob = data.getvalue()
        storage.write_bytes_atomic(storage.join(self.url, name), blob)
        index = {"name": name, "split": self.split, "samples": len(self.buffer),
                 "sha256": hashlib.sha256(blob).hexdigest(),
                 "contents": [{"key": s.key, "label": s.meta["label"], "source": s.meta["source"],
                               "localized": bool(s.meta.get("localized"))} for s in self.buffer]}
        storage.write_text_atomic(storage.join(self.url, name[:-4] + INDEX_SUFFIX), json.dumps(index))
        self.shards.append(index)
        self.buffer, self.number = [], self.number + 1


def committed_shards(url: str) -> list[dict]:
    """The indexes of the complete shards under ``url``, oldest first."""
    names = [n for n in storage.list_files(url, (INDEX_SUFFIX,)) if "/" not in n and n.startswith("shard-")]
    return [json.loads(storage.read_text(storage.join(url, n))) for n in names]


def next_shard_number(committed: list[dict], split: str) -> int:
    """The number the next shard of ``split`` gets after the committed ones."""
    return 1 + max((int(s["name"].rsplit("-", 1)[1][:-4]) for s in committed if s["split"] == split), default=-1)


def remove_uncommitted(url: str) -> list[str]:
    """Delete what a killed run left behind: temporary files and shards without an index."""
    names = [n for n in storage.list_files(url) if "/" not in n]
    indexed = {n[: -len(INDEX_SUFFIX)] for n in names if n.endswith(INDEX_SUFFIX)}
    leftovers = [n for n in names if ".tmp-" in n or (n.startswith("shard-") and n.endswith(".tar")
                                                        and n[:-4] not in indexed)]
    for name in leftovers:
        storage.delete(storage.join(url, name))
    return leftovers


def iter_shard(url: str) -> Iterator[StandardSample]:
    """Read the samples of one shard in order."""
    for key, parts in read_shard(url).items():
        yield decode_sample(key, parts)


def read_shard(url: str) -> dict[str, dict[str, bytes]]:
    """The undecoded members of one shard: ``{key: {"png": ..., "mask.png": ..., "json": ...}}``, in order."""
    with storage.open_url(url) as f, tarfile.open(fileobj=f, mode="r|") as tar:
        parts: dict[str, dict[str, bytes]] = {}
        for member in tar:
            key, ext = member.name.split(".", 1)
            parts.setdefault(key, {})[ext] = tar.extractfile(member).read()
    incomplete = sorted(key for key, found in parts.items() if len(found) != 3)
    if incomplete:
        raise ValueError(f"{url}: incomplete samples {incomplete}; the shard is damaged, rerun standardize")
    return parts


def decode_sample(key: str, parts: dict[str, bytes]) -> StandardSample:
    image = decode_png(parts["png"]).astype(np.float32) / 65535.0
    mask = (decode_png(parts["mask.png"]) > 0).astype(np.float32)
    return StandardSample(key=key, image=image, mask=mask, meta=json.loads(parts["json"]))


def decode_png(data: bytes) -> np.ndarray:
    """A grey PNG as an array; PNGs written by :func:`_png` (no row filters) skip Pillow entirely."""
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if depth == 16 and colour == 0 and not interlace:
        chunks, at = [], 8
        while at < len(data):
            length, kind = struct.unpack(">I4s", data[at: at + 8])
            if kind == b"IDAT":
                chunks.append(data[at + 8: at + 8 + length])
            at += 12 + length
        rows = np.frombuffer(zlib.decompress(b"".join(chunks)), dtype=np.uint8).reshape(height, 1 + 2 * width)
        if not rows[:, 0].any():
            return rows[:, 1:].view(">u2").astype(np.uint16)
    return np.asarray(Image.open(io.BytesIO(data)))
