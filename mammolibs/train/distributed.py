"""Where training runs: CPU, one or many CUDA GPUs (torchrun), or torch-xla (``PJRT_DEVICE`` set).

All distributed plumbing lives here so that the engine reads the same on every device.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    xla: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def start_runtime() -> Runtime:
    """Pick the device from the environment: ``PJRT_DEVICE`` -> XLA, ``WORLD_SIZE`` > 1 -> process group."""
    if os.environ.get("PJRT_DEVICE"):
        import torch_xla
        import torch_xla.runtime as xr

        world = xr.world_size()
        if world > 1 and not dist.is_initialized():
            import torch_xla.distributed.xla_backend  # noqa: F401  (registers the "xla" backend)

            dist.init_process_group("xla", init_method="xla://")
        return Runtime(device=torch_xla.device(), rank=xr.global_ordinal(), world_size=world, xla=True)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo")
        device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
        return Runtime(device=device, rank=dist.get_rank(), world_size=world)
    return Runtime(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))


def distribute(model: nn.Module, runtime: Runtime) -> nn.Module:
    """Wrap the model for data-parallel training when there is more than one process."""
    model = model.to(runtime.device)
    if runtime.world_size > 1:
        ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)
    return model


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def sampler_for(dataset: Dataset, runtime: Runtime, shuffle: bool) -> DistributedSampler | None:
    if runtime.world_size == 1:
        return None
    return DistributedSampler(dataset, num_replicas=runtime.world_size, rank=runtime.rank, shuffle=shuffle)


def step_done(runtime: Runtime) -> None:
    """End of an optimizer step: on XLA, cut and run the lazily built graph."""
    if runtime.xla:
        import torch_xla

        torch_xla.sync()


def barrier(runtime: Runtime) -> None:
    if runtime.world_size > 1:
        dist.barrier()


def stop_runtime(runtime: Runtime) -> None:
    if runtime.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()
