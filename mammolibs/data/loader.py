"""Batches of a :class:`~mammolibs.data.stream.ShardStream` from DataLoader worker processes to the
trainer, through a ring of shared buffers per worker.

PyTorch's DataLoader hands each batch a worker builds over in a new shared-memory segment, which the
worker and then the trainer page-fault in anew (6 MB a batch of eight 512-px images and masks: on 2
cores half of the workers' CPU time went to the kernel). Here each worker stacks its batches into
:data:`SLOTS` buffers of its own, in turn, and sends each buffer once, the first time it is used;
afterwards a batch is only ``(worker, slot)``. The trainer copies the batch out of the slot at once.
A worker is at most :data:`PREFETCH` batches ahead of the trainer (the DataLoader's prefetch bound),
so it never writes into a slot whose batch has not been copied out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch.utils.data import DataLoader

PREFETCH = 2
"""Batches a worker builds ahead of the trainer (DataLoader's ``prefetch_factor``)."""
SLOTS = PREFETCH + 2
"""Buffers per worker: those ahead, the one being copied out, and one spare."""


@dataclass
class RingBatch:
    """A batch in slot ``slot`` of worker ``worker``; ``tensors``: the slot's buffers, sent with its first use."""

    worker: int
    slot: int
    tensors: tuple[torch.Tensor, ...] | None


class WorkerRing:
    """A worker's side: :data:`SLOTS` shared buffers shaped like its batches, filled in turn."""

    def __init__(self, worker: int):
        self.worker, self.used = worker, 0
        self.slots: list[tuple[torch.Tensor, ...]] = []

    def put(self, items: list[tuple[torch.Tensor, ...]]) -> RingBatch:
        """Stack the samples ``items`` (tuples of tensors, as views make them) into the next slot."""
        slot, self.used = self.used % SLOTS, self.used + 1
        first_use = slot == len(self.slots)
        if first_use:
            self.slots.append(
                tuple(torch.empty((len(items), *t.shape), dtype=t.dtype).share_memory_() for t in items[0])
            )
        for column, out in enumerate(self.slots[slot]):
            parts = [item[column] for item in items]
            if any(part.shape != out.shape[1:] or part.dtype != out.dtype for part in parts):
                raise ValueError(
                    f"a view gave samples of another shape or type than its first ({out.shape[1:]}, {out.dtype}); "
                    "the batches of one stream must all have the same shapes"
                )
            torch.stack(parts, out=out)
        return RingBatch(self.worker, slot, self.slots[slot] if first_use else None)


class StreamLoader:
    """The batches of ``stream`` (a :class:`ShardStream`), built by ``workers`` DataLoader processes
    (0: in this process), each a tuple of tensors of its own; ``pin_memory`` for CUDA."""

    def __init__(self, stream, workers: int = 0, pin_memory: bool = False):
        self.loader = DataLoader(
            stream, batch_size=None, num_workers=workers, prefetch_factor=PREFETCH if workers else None
        )
        self.pin_memory = pin_memory

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        slots: dict[tuple[int, int], tuple[torch.Tensor, ...]] = {}
        for batch in self.loader:
            if isinstance(batch, RingBatch):
                if batch.tensors is not None:
                    slots[batch.worker, batch.slot] = batch.tensors
                own = slots[batch.worker, batch.slot]  # copied out now: the worker will fill the slot again
                yield tuple(t.pin_memory() if self.pin_memory else _copy(t) for t in own)
            else:
                yield tuple(t.pin_memory() for t in batch) if self.pin_memory else batch


def _copy(tensor: torch.Tensor) -> torch.Tensor:
    """A copy made by one thread: torch's own copy wakes its intra-op threads, whose spinning takes the
    cores from the worker processes (on 2 cores it halved the loader's rate)."""
    return torch.from_numpy(tensor.numpy().copy())
