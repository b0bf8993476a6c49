"""Where training runs: torch-xla when ``PJRT_DEVICE`` is set, CUDA when present, else CPU.

All device and data-parallel plumbing lives here so that the engine reads the same everywhere:

- torch-xla: one process drives every local device through SPMD; each batch is split along its
  first dimension over a ``data`` mesh axis and the model is replicated;
- CUDA and CPU: one process per GPU (or CPU slot) under ``torchrun``, with DDP (nccl or gloo).
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from mammolibs import storage
from mammolibs.train.config import PRECISIONS

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1  # processes
    xla_devices: int = 0  # devices of the SPMD mesh, on every host (0: not XLA)
    mesh: object = field(default=None, repr=False)
    host: int = 0  # XLA: this host's process index, of ``hosts`` (a TPU slice of several hosts)
    hosts: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0 and self.host == 0

    @property
    def data_part(self) -> tuple[int, int]:
        """(index, count) of the part of the data this process reads: under SPMD each host reads its
        own part for its own devices, elsewhere each process its own."""
        return (self.host, self.hosts) if self.xla else (self.rank, self.world_size)

    @property
    def devices_fed(self) -> int:
        """Devices this process's batches go to: its host's share of the mesh under SPMD, else one."""
        return self.xla_devices // self.hosts if self.xla else 1

    @property
    def xla(self) -> bool:
        return self.xla_devices > 0

    @property
    def replicas(self) -> int:
        """Data-parallel replicas in all: processes, or devices of the SPMD mesh."""
        return self.xla_devices or self.world_size

    def describe(self) -> str:
        if self.xla:
            return f"torch-xla, {self.xla_devices} {os.environ['PJRT_DEVICE']} device(s) under SPMD" + (
                f", host {self.host + 1} of {self.hosts}" if self.hosts > 1 else ""
            )
        return f"{self.device.type}, {self.world_size} process(es)"


def xla_cache_folder(setting: str, out: str) -> str | None:
    """The local folder of torch-xla's persistent compilation cache for ``--xla-cache setting`` and
    ``--out out``: the setting's folder; by default ``<out>/xla-cache`` beside a local run, else the
    user's cache folder (``$XDG_CACHE_HOME``, ``~/.cache``)/mammoflow/xla; ``off``: none."""
    if setting == "off":
        return None
    if "://" in setting:
        raise ValueError(f"--xla-cache {setting}: torch-xla keeps its cache in a local folder; give a path or 'off'")
    if setting:
        return setting
    if storage.is_local(out):
        return os.path.join(storage.local_path(out), "xla-cache")
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mammoflow", "xla")


def _use_xla_cache(folder: str) -> None:
    """Point torch-xla's persistent cache at ``folder``; it can be set once a process, before its first
    computation (torch-xla keeps the folder in ``$XLA_PERSISTENT_CACHE_PATH``)."""
    import torch_xla
    import torch_xla.runtime as xr

    current = os.environ.get("XLA_PERSISTENT_CACHE_PATH")
    if current:
        if current != folder:
            log.warning("torch-xla's compilation cache stays %s for this process (not %s)", current, folder)
        return
    if torch_xla._XLAC._xla_computation_cache_is_initialized():
        log.warning("torch-xla has computed in this process before training started: no compilation cache")
        return
    os.makedirs(folder, exist_ok=True)
    xr.initialize_cache(folder, readonly=False)
    log.info("torch-xla compilation cache: %s", folder)


def start_runtime(xla_cache: str | None = None) -> Runtime:
    """Pick the device from the environment: ``PJRT_DEVICE`` -> XLA, ``WORLD_SIZE`` > 1 -> process group.
    Under XLA, compiled programs are kept in the folder ``xla_cache`` (:func:`xla_cache_folder`), so a
    restarted run loads them instead of compiling again."""
    if os.environ.get("PJRT_DEVICE"):
        import numpy as np
        import torch_xla
        import torch_xla.distributed.spmd as xs
        import torch_xla.runtime as xr

        if xla_cache:
            _use_xla_cache(xla_cache)
        xr.use_spmd()
        count = xr.global_runtime_device_count()
        mesh = xs.Mesh(np.arange(count), (count, 1, 1, 1), ("data", "channel", "height", "width"))
        return Runtime(
            device=torch_xla.device(), xla_devices=count, mesh=mesh, host=xr.process_index(), hosts=xr.process_count()
        )
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available()
    if world > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo")
        device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
        return Runtime(device=device, rank=dist.get_rank(), world_size=world)
    return Runtime(device=torch.device("cuda" if use_cuda else "cpu"))


def resolve_precision(precision: str, runtime: Runtime) -> str:
    """``auto`` -> bf16 on TPU and GPU, fp32 on CPU; fp16 only where a grad scaler helps (CUDA)."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if runtime.xla or runtime.device.type == "cuda" else "fp32"
    if precision == "fp16" and runtime.device.type != "cuda":
        raise ValueError("--precision fp16 needs a CUDA GPU; use bf16 (TPU, GPU) or fp32")
    return precision


def autocast(runtime: Runtime, precision: str):
    """The autocast context of the forward pass for a resolved ``precision``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    device_type = "xla" if runtime.xla else runtime.device.type
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def distribute(model: nn.Module, runtime: Runtime) -> nn.Module:
    """Move the model to the device and wrap it for data parallelism across processes (DDP; batch norm
    synced on GPUs)."""
    model = model.to(runtime.device)
    if runtime.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack it
    if runtime.world_size > 1:
        unused = getattr(model, "uses_part_of_net", False)  # an encoder without its decoder
        if runtime.device.type != "cuda":  # batch norm per process: gloo cannot sync it
            return nn.parallel.DistributedDataParallel(model, find_unused_parameters=unused)
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # batch norm over the global batch
        return nn.parallel.DistributedDataParallel(
            model, device_ids=[runtime.device.index], find_unused_parameters=unused
        )
    return model


def unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "_orig_mod", model)  # torch.compile
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def on_device(loader, runtime: Runtime):
    """Batches of ``loader`` on the device: XLA prefetches in background threads and splits each
    batch over the mesh; CUDA copies asynchronously from pinned memory."""
    if runtime.xla:
        import torch_xla.distributed.parallel_loader as pl
        import torch_xla.distributed.spmd as xs

        sharding = xs.ShardingSpec(runtime.mesh, ("data", None, None, None))
        return pl.MpDeviceLoader(loader, runtime.device, input_sharding=sharding)
    return (tuple(_to_device(t, runtime.device) for t in batch) for batch in loader)


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type != "cuda":
        return tensor.to(device)
    tensor = tensor.to(device, non_blocking=True)
    return tensor.contiguous(memory_format=torch.channels_last) if tensor.dim() == 4 else tensor


def step_done(runtime: Runtime) -> None:
    """End of an optimizer step: on XLA, cut and run the lazily built graph (no host sync)."""
    if runtime.xla:
        import torch_xla

        torch_xla.sync()


def sum_over_replicas(values: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """Sum a tensor over processes (SPMD already computes global values)."""
    if runtime.world_size > 1:
        values = values.clone()
        dist.all_reduce(values)
    return values


def barrier(runtime: Runtime) -> None:
    if runtime.world_size > 1:
        dist.barrier()


def stop_runtime(runtime: Runtime) -> None:
    if runtime.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()
