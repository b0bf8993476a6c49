"""Run by ``torchrun --nproc_per_node=N`` in test_torchrun: train steps on this replica's share of a fixed
global batch, then save this replica's weights and the losses averaged over replicas.

    python -m torch.distributed.run --standalone --nproc_per_node=2 ddp_replicas.py SHARDS OUT STEPS
"""

from __future__ import annotations

import sys

import torch

from mammolibs.train import distributed
from mammolibs.train.engine import TrainConfig
from tests.train.ddp_reference import GLOBAL_BATCH, fixed_batch, make_run_parts, run_steps

if __name__ == "__main__":
    data, out, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    runtime = distributed.start_runtime()
    share = GLOBAL_BATCH // runtime.world_size
    batch = tuple(t[runtime.rank * share : (runtime.rank + 1) * share] for t in fixed_batch(data))
    model, optimizer, scheduler = make_run_parts(TrainConfig(data=data, out=out, batch_size=share), runtime)
    losses = [
        distributed.sum_over_replicas(loss, runtime).item() / runtime.world_size
        for loss in run_steps(model, optimizer, scheduler, batch, steps)
    ]
    torch.save({"model": distributed.unwrap(model).state_dict(), "losses": losses}, f"{out}/rank{runtime.rank}.pt")
    distributed.stop_runtime(runtime)
