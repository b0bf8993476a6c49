"""Tar shards in the WebDataset convention: ``<key>.npy`` (16-bit image), ``<key>.mask.png``
(1-bit) and ``<key>.json`` (label, source, split, ...) stored next to each other.

Images are stored uncompressed (NumPy ``.npy``): training reads them without decoding, several
times faster than inflating a PNG. Masks, mostly zeros, are 1-bit PNGs (a few hundred bytes,
quick to inflate); any PNG or NumPy reader opens both.

Each shard's index lists its samples with their byte span in the tar (their three members, headers
included), so a loader reads one sample with one range read (:func:`read_samples`).

A shard becomes visible only when complete (see :func:`mammolibs.storage.write_bytes_atomic`) and
counts as written only once its index is written after it (see :class:`ShardWriter`).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import struct
import tarfile
import zlib
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, cast

import numpy as np
from PIL import Image

from mammolibs import storage
from mammolibs.data import validate


@dataclass
class StandardSample:
    """A sample in standard form, as training and evaluation read it."""

    key: str
    pixels: np.ndarray  # uint16 (H, W), as stored
    lesions: np.ndarray  # uint8 (H, W), 1 inside lesions
    meta: dict  # label, source, split, patient, laterality, localized, ...

    @property
    def label(self) -> str:
        return self.meta["label"]

    @cached_property
    def image(self) -> np.ndarray:
        """float32 (H, W) in [0, 1]."""
        return np.multiply(self.pixels, np.float32(1 / 65535), dtype=np.float32)

    @cached_property
    def mask(self) -> np.ndarray:
        """float32 (H, W) in {0, 1}."""
        return self.lesions.astype(np.float32)


def stack_images(samples: list[StandardSample]) -> np.ndarray:
    """float32 (N, H, W) in [0, 1] of several samples, without keeping a float copy in each of them."""
    return np.multiply(np.stack([s.pixels for s in samples]), np.float32(1 / 65535), dtype=np.float32)


def encode_mask_png(mask: np.ndarray) -> bytes:
    """A 1-bit grey PNG of a boolean mask, written directly: no row filters, run-length deflate."""
    height, width = mask.shape
    rows = np.zeros((height, 1 + (width + 7) // 8), dtype=np.uint8)  # filter byte 0, then the bits
    rows[:, 1:] = np.packbits(mask, axis=1)  # most significant bit first, as PNG packs them
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    deflate = zlib.compressobj(1, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
    data = deflate.compress(rows.tobytes()) + deflate.flush()
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@dataclass
class EncodedSample:
    """A sample ready for a shard: PNG bytes and metadata (made in worker processes)."""

    key: str
    image_npy: bytes
    mask_png: bytes
    meta: dict


def encode_sample(key: str, image: np.ndarray, mask: np.ndarray, meta: dict) -> EncodedSample:
    """``image`` uint16, ``mask`` uint8 (non-zero inside), ``meta`` JSON-serialisable."""
    return EncodedSample(key, _npy(image), encode_mask_png(mask > 0), meta)


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
        data, spans = io.BytesIO(), []
        with tarfile.open(fileobj=data, mode="w") as tar:
            for sample in self.buffer:
                start = tar.offset
                for member, payload in (
                    (f"{sample.key}.npy", sample.image_npy),
                    (f"{sample.key}.mask.png", sample.mask_png),
                    (f"{sample.key}.json", json.dumps(sample.meta, sort_keys=True).encode()),
                ):
                    info = tarfile.TarInfo(member)
                    info.size, info.mode, info.mtime = len(payload), 0o644, 0
                    tar.addfile(info, io.BytesIO(payload))
                spans.append([start, tar.offset - start])
        blob = data.getvalue()
        storage.write_bytes_atomic(storage.join(self.url, name), blob)
        index = {
            "name": name,
            "split": self.split,
            "samples": len(self.buffer),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "contents": [
                {
                    "key": s.key,
                    "label": s.meta["label"],
                    "source": s.meta["source"],
                    "localized": bool(s.meta.get("localized")),
                    "span": span,
                }
                for s, span in zip(self.buffer, spans)
            ],
        }
        storage.write_text_atomic(storage.join(self.url, name[:-4] + INDEX_SUFFIX), json.dumps(index))
        self.shards.append(index)
        self.buffer, self.number = [], self.number + 1


def committed_shards(url: str) -> list[dict]:
    """The indexes of the complete shards under ``url``, oldest first, each checked
    (:func:`validate.shard_index`: its shard lies beside it, its fields are what mammoflow writes)."""
    from mammolibs.data.manifest import read_json  # manifest builds on this module

    names = [n for n in storage.list_files(url, (INDEX_SUFFIX,)) if "/" not in n and n.startswith("shard-")]
    return [validate.shard_index(read_json(storage.join(url, n)), storage.join(url, n), file_name=n) for n in names]


def next_shard_number(committed: list[dict], split: str) -> int:
    """The number the next shard of ``split`` gets after the committed ones."""
    return 1 + max((int(s["name"].rsplit("-", 1)[1][:-4]) for s in committed if s["split"] == split), default=-1)


def remove_uncommitted(url: str) -> list[str]:
    """Delete what a killed run left behind: temporary files and shards without an index."""
    names = [n for n in storage.list_files(url) if "/" not in n]
    indexed = {n[: -len(INDEX_SUFFIX)] for n in names if n.endswith(INDEX_SUFFIX)}
    leftovers = [
        n for n in names if ".tmp-" in n or (n.startswith("shard-") and n.endswith(".tar") and n[:-4] not in indexed)
    ]
    for name in leftovers:
        storage.delete(storage.join(url, name))
    return leftovers


def iter_shard(url: str) -> Iterator[StandardSample]:
    """Read the samples of one shard in order."""
    for key, parts in read_shard(url).items():
        yield decode_sample(key, parts, url)


def read_shard(url: str) -> dict[str, dict[str, memoryview]]:
    """The undecoded members of one shard: ``{key: {"npy": ..., "mask.png": ..., "json": ...}}``, in order.

    The shard is read in one request; members are views into it, not copies.
    """
    return shard_members(storage.read_bytes(url), url)


def read_samples(samples: list[tuple[str, dict]]) -> list[dict[str, memoryview]]:
    """The members of several samples, each ``(shard URL, its entry in the shard's index)``, with one
    range read per sample (:func:`storage.read_ranges`): only the bytes of those samples are fetched."""
    chunks = storage.read_ranges([(url, entry["span"][0], sum(entry["span"])) for url, entry in samples])
    return [span_members(chunk, url, entry) for chunk, (url, entry) in zip(chunks, samples)]


def span_members(chunk: bytes, url: str, entry: dict) -> dict[str, memoryview]:
    """The members of the sample of index ``entry`` from the bytes of its span, checked to be its own,
    whole: an index that does not match its shard is an error, never another sample's pixels."""
    start, size = entry["span"]
    members = shard_members(chunk, url) if len(chunk) == size else {}
    if list(members) != [entry["key"]]:
        raise ValueError(
            f"{url}: sample {entry['key']} is listed in its index but missing from the shard at bytes "
            f"{start}-{start + size}; the shard set is damaged: rerun standardize"
        )
    return members[entry["key"]]


def shard_members(data: bytes, url: str) -> dict[str, dict[str, memoryview]]:
    """:func:`read_shard` of a shard's bytes already read from ``url``: member names checked
    (:func:`validate.member`), every sample complete."""
    blob, parts = memoryview(data), cast(dict[str, dict[str, memoryview]], {})
    try:
        members = _tar_members(data)
    except tarfile.TarError as err:
        raise ValueError(f"{url}: not a readable tar shard ({err}); rerun standardize") from None
    for name, regular, offset, size in members:
        if not regular:
            raise ValueError(f"{url}: member {name!r} is not a regular file; the shard is damaged, rerun standardize")
        key, kind = validate.member(name, url)
        if offset + size > len(data):
            raise ValueError(f"{url}: member {name!r} is cut short; the shard is damaged, rerun standardize")
        parts.setdefault(key, {})[kind] = blob[offset : offset + size]
    incomplete = sorted(key for key, found in parts.items() if len(found) != len(validate.MEMBER_KINDS))
    if incomplete:
        raise ValueError(f"{url}: incomplete samples {incomplete}; the shard is damaged, rerun standardize")
    return parts


def _tar_members(data: bytes) -> list[tuple[str, bool, int, int]]:
    """(name, is a regular file, offset of its data, size) of each member of tar bytes. Plain ustar
    headers with a valid checksum (what :class:`ShardWriter` writes for names under 100 characters) are
    read here directly, four times faster; anything else (long names, other formats, damage) by tarfile."""
    found, at = [], 0
    while at + 512 <= len(data):
        header = data[at : at + 512]
        if not any(header):  # the end-of-archive blocks
            break
        try:
            plain = header[257:263] == b"ustar\x00" and header[345] == 0 and header[156:157] not in b"xgLK"
            if not plain or _octal(header[148:156]) != sum(header[:148]) + 256 + sum(header[156:]):
                return _tarfile_members(data)
            size = _octal(header[124:136])
            name = header[:100].split(b"\0", 1)[0].decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return _tarfile_members(data)
        found.append((name, header[156:157] in b"0\0", at + 512, size))
        at += 512 + -(-size // 512) * 512
    return found


def _octal(field: bytes) -> int:
    return int(field.split(b"\0", 1)[0].strip() or b"0", 8)


def _tarfile_members(data: bytes) -> list[tuple[str, bool, int, int]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:  # BytesIO shares the bytes, copies nothing
        return [(m.name, m.isfile(), m.offset_data, m.size) for m in tar]


def sample_parts(shard: dict[str, dict[str, memoryview]], key: str, url: str) -> dict[str, memoryview]:
    """The members of sample ``key`` (a checked key) of a :func:`read_shard` result, or a clear error."""
    parts = shard.get(validate.sample_key(key, url))
    if parts is None:
        raise ValueError(
            f"{url}: sample {key} is listed in its index but missing from the shard; "
            "the shard set is damaged: rerun standardize"
        )
    return parts


def decode_meta(parts: dict[str, memoryview], where: str) -> dict:
    """A sample's metadata (``<key>.json``), checked (:func:`validate.sample_meta`)."""
    try:
        meta = json.loads(bytes(parts["json"]))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{where}: sample metadata is not valid JSON ({err}); rerun standardize") from None
    return validate.sample_meta(meta, where)


def decode_sample(key: str, parts: dict[str, memoryview], where: str = "shard") -> StandardSample:
    """One sample from its members; ``where`` (the shard's URL) names it in errors."""
    where = f"{where} sample {key}"
    pixels = _npy_view(parts["npy"], where)
    return StandardSample(
        key=key,
        pixels=pixels,
        lesions=decode_mask_png(parts["mask.png"], pixels.shape, where),
        meta=decode_meta(parts, where),
    )


def _npy_view(data: memoryview, where: str = "shard") -> np.ndarray:
    """The 2-D 16-bit image of ``.npy`` bytes without copying them (read-only)."""
    try:
        length_bytes = 2 if bytes(data[6:7]) == b"\x01" else 4  # format version 1 or 2/3
        end = 8 + length_bytes + int.from_bytes(data[8 : 8 + length_bytes], "little")
        shape, offset = _npy_layout(bytes(data[:end]))
        return np.frombuffer(data, dtype=np.uint16, count=shape[0] * shape[1], offset=offset).reshape(shape)
    except ValueError as err:
        raise ValueError(f"{where}: the image is not a C-ordered 2-D uint16 array ({err}); rerun standardize") from None


@functools.lru_cache(maxsize=64)
def _npy_layout(header: bytes) -> tuple[tuple[int, int], int]:
    """(shape, offset of the pixels) of a whole ``.npy`` header, parsed once per distinct header (a set's
    images share one); ``ValueError`` unless a C-ordered 2-D uint16 array."""
    stream = io.BytesIO(header)
    version = np.lib.format.read_magic(stream)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read_header(stream)
    if fortran_order or dtype != np.uint16 or len(shape) != 2:
        raise ValueError(f"a {'Fortran-ordered ' if fortran_order else ''}{dtype} array of shape {shape}")
    return (int(shape[0]), int(shape[1])), stream.tell()


def decode_mask_png(data: bytes | memoryview, shape: tuple[int, int], where: str = "shard") -> np.ndarray:
    """A mask PNG of ``shape`` (its image's) as a 0/1 uint8 array; those written by :func:`encode_mask_png`
    skip Pillow entirely. Bounded: a mask of another size, or whose data inflates past its size (a
    decompression bomb), is refused before it is decoded."""
    if len(data) < 33 or bytes(data[:8]) != b"\x89PNG\r\n\x1a\n" or bytes(data[12:16]) != b"IHDR":
        raise ValueError(f"{where}: the mask is not a PNG; rerun standardize")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if (height, width) != tuple(shape):
        raise ValueError(f"{where}: the mask is {width}x{height}, its image {shape[1]}x{shape[0]}; rerun standardize")
    if (depth, colour, interlace) == (1, 0, 0):
        chunks, at = [], 8
        while at + 8 <= len(data):
            length, kind = struct.unpack(">I4s", data[at : at + 8])
            if kind == b"IDAT":
                chunks.append(bytes(data[at + 8 : at + 8 + length]))
            at += 12 + length
        row_bytes = (width + 7) // 8
        size = height * (1 + row_bytes)
        inflate = zlib.decompressobj()
        try:
            raw = inflate.decompress(b"".join(chunks), size)
        except zlib.error as err:
            raise ValueError(f"{where}: the mask's data is damaged ({err}); rerun standardize") from None
        if inflate.unconsumed_tail or len(raw) != size:
            raise ValueError(
                f"{where}: the mask's data does not inflate to {width}x{height} "
                "(a decompression bomb, or damaged); rerun standardize"
            )
        rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, 1 + row_bytes)
        if not rows[:, 0].any():
            return np.unpackbits(rows[:, 1:], axis=1, count=width)
    try:  # other PNGs (any standard writer): Pillow, whose size is now known to be the image's
        return (np.asarray(Image.open(io.BytesIO(data))) > 0).astype(np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"{where}: the mask PNG cannot be decoded ({err}); rerun standardize") from None
