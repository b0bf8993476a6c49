"""Streaming shards into fixed-size batches, one stream per data-parallel replica.

Nothing is held in memory beyond the batch being built, and each DataLoader worker reads only the
samples of its own batches: one range read per sample, at the byte span its shard index gives, so
an epoch reads the dataset's bytes once whatever the number of workers (locally and on ``gs://``).
The plan of an epoch comes from the shard indexes alone (no decoding) and from ``(seed, epoch, replica)``:

- replicas are dealt the shards that hold usable samples, whole (``[rank::world]``); with fewer
  such shards than replicas, the usable samples are dealt one by one instead;
- shard order and sample order within a shard are reshuffled each epoch;
- every replica yields exactly ``steps`` batches of ``batch_size``: one that runs out of its own
  samples starts over on them (a new shuffle), so no replica ever waits for another;
- sample ``i`` of the stream is augmented with a seed derived from ``(seed, epoch, rank, i)``, so
  batch ``b`` is the same whichever DataLoader worker builds it, and a resumed run starting at
  batch ``b`` sees exactly what the interrupted one would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, default_collate, get_worker_info

from mammolibs import storage
from mammolibs.data.loader import RingBatch, WorkerRing
from mammolibs.data.shard_set import ShardSet
from mammolibs.data.shards import decode_sample, read_samples
from mammolibs.data.views import View


@dataclass(frozen=True)
class ShardPart:
    """The samples of one shard that one replica reads: their entries in the shard's index."""

    name: str
    entries: tuple[dict, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(entry["key"] for entry in self.entries)


def split_shards(data_url: str, split: str) -> list[dict]:
    """The index of every shard of ``split`` that the manifest lists, in name order (:class:`ShardSet`)."""
    return ShardSet.open(data_url).shards(split)


def replica_parts(shards: list[dict], view: View, rank: int, world: int) -> list[ShardPart]:
    """The usable samples of the shards that replica ``rank`` of ``world`` reads.

    Shards with a usable sample are dealt out whole; with fewer of them than replicas, the usable
    samples are dealt out one by one instead, so every replica has some whenever there are ``world``.
    """
    usable = [(s["name"], tuple(e for e in s["contents"] if view.keep(e))) for s in shards]
    usable = [(name, entries) for name, entries in usable if entries]
    if len(usable) >= world:
        return [ShardPart(name, entries) for name, entries in usable[rank::world]]
    dealt = [(name, entry) for name, entries in usable for entry in entries][rank::world]
    return [ShardPart(name, tuple(e for n, e in dealt if n == name)) for name in dict.fromkeys(n for n, _ in dealt)]


def usable_count(shards: list[dict], view: View) -> int:
    return sum(view.keep(e) for shard in shards for e in shard["contents"])


def sample_seed(*numbers: int) -> int:
    """A 31-bit seed that depends on every number given (for MONAI's RandomState too)."""
    return int(np.random.SeedSequence([int(n) for n in numbers]).generate_state(1)[0] >> 1)


class ShardStream(IterableDataset):
    """Batches of one replica for one epoch; read them with :class:`~mammolibs.data.loader.StreamLoader`.

    Train streams are shuffled and cycle to exactly ``steps`` batches; evaluation streams
    (``shuffle=False, steps=None``) go once over the replica's samples in order, the last
    batch filled up from the first samples so every batch has the same shape.
    """

    def __init__(
        self,
        data_url: str,
        parts: list[ShardPart],
        view: View,
        batch_size: int,
        seed: int,
        rank: int,
        shuffle: bool,
        steps: int | None = None,
    ):
        self.data_url, self.parts, self.view = data_url, parts, view
        self.batch_size, self.seed, self.rank, self.shuffle = batch_size, seed, rank, shuffle
        samples = sum(len(p.entries) for p in parts)
        self.steps = steps if steps is not None else -(-samples // batch_size)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Plan ``epoch``, skipping its first ``start`` batches (a resumed run)."""
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.steps - self.start

    def plan(self) -> Iterator[tuple[ShardPart, int]]:
        """(shard part, position) of every sample of the epoch, in stream order."""
        if not self.parts:
            return
        if not self.shuffle:
            for _ in range(self.batch_size):  # enough repeats to fill the last batch
                for part in self.parts:
                    for position in range(len(part.entries)):
                        yield part, position
            return
        for repeat in range(2**31):
            rng = np.random.default_rng([self.seed, self.epoch, self.rank, repeat])
            for index in rng.permutation(len(self.parts)):
                part = self.parts[index]
                for position in rng.permutation(len(part.entries)):
                    yield part, int(position)

    def batches(self) -> Iterator[list[tuple[ShardPart, int]]]:
        """The planned samples of every batch of the epoch, batch 0 first."""
        plan = self.plan()
        for _ in range(self.steps):
            batch = [item for _, item in zip(range(self.batch_size), plan)]
            if len(batch) < self.batch_size:
                return
            yield batch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...] | RingBatch]:
        worker = get_worker_info()
        workers, me = (worker.num_workers, worker.id) if worker else (1, 0)
        ring = WorkerRing(me) if worker else None  # a worker hands its batches over in shared slots
        for number, batch in enumerate(self.batches()):
            if number < self.start or (number - self.start) % workers != me:
                continue
            samples = [(storage.join(self.data_url, part.name), part.entries[position]) for part, position in batch]
            items = [
                self.view(
                    decode_sample(entry["key"], members, url),
                    sample_seed(self.seed, self.epoch, self.rank, number, slot),
                )
                for slot, ((url, entry), members) in enumerate(zip(samples, read_samples(samples)))
            ]
            yield ring.put(items) if ring else default_collate(items)
