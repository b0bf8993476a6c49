"""Tar shards in the WebDataset convention: ``<key>.png`` (16-bit image), ``<key>.mask.png``
(8-bit, 0/255) and ``<key>.json`` (label, source, split, ...) stored next to each other.

A shard becomes visible only when complete (see :func:`mammolibs.storage.write_bytes_atomic`).
"""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
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
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


class ShardWriter:
    """Collects samples and writes ``<prefix>-00000.tar``, ``-00001.tar``... under ``url``."""

    def __init__(self, url: str, prefix: str, samples_per_shard: int = 256):
        self.url, self.prefix, self.samples_per_shard = url, prefix, samples_per_shard
        self.buffer: list[tuple[str, bytes]] = []
        self.count = 0
        self.shards: list[dict] = []

    def add(self, key: str, image: np.ndarray, mask: np.ndarray, meta: dict) -> None:
        """Add one sample: ``image`` uint16, ``mask`` uint8 (0/255), ``meta`` JSON-serialisable."""
        self.buffer += [
            (f"{key}.png", _png(image)),
            (f"{key}.mask.png", _png(mask)),
            (f"{key}.json", json.dumps(meta, sort_keys=True).encode()),
        ]
        self.count += 1
        if self.count == self.samples_per_shard:
            self.flush()

    def flush(self) -> None:
        if not self.count:
            return
        name = f"{self.prefix}-{len(self.shards):05d}.tar"
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            for member, payload in self.buffer:
                info = tarfile.TarInfo(member)
                info.size, info.mode, info.mtime = len(payload), 0o644, 0
                tar.addfile(info, io.BytesIO(payload))
        blob = data.getvalue()
        storage.write_bytes_atomic(storage.join(self.url, name), blob)
        self.shards.append({"name": name, "samples": self.count, "sha256": hashlib.sha256(blob).hexdigest()})
        self.buffer, self.count = [], 0


def iter_shard(url: str) -> Iterator[StandardSample]:
    """Read the samples of one shard in order."""
    with storage.open_url(url) as f, tarfile.open(fileobj=f, mode="r|") as tar:
        parts: dict[str, dict[str, bytes]] = {}
        for member in tar:
            key, ext = member.name.split(".", 1)
            parts.setdefault(key, {})[ext] = tar.extractfile(member).read()
            if len(parts[key]) == 3:
                yield _decode(key, parts.pop(key))
        if parts:
            raise ValueError(f"{url}: incomplete samples {sorted(parts)}; the shard is damaged, rerun standardize")


def _decode(key: str, part: dict[str, bytes]) -> StandardSample:
    image = np.asarray(Image.open(io.BytesIO(part["png"])), dtype=np.float32) / 65535.0
    mask = (np.asarray(Image.open(io.BytesIO(part["mask.png"]))) > 0).astype(np.float32)
    return StandardSample(key=key, image=image, mask=mask, meta=json.loads(part["json"]))
