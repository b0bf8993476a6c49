"""The torch-xla path for real, on two CPU XLA devices under SPMD: compiled once, data parallel, end to end."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import torch
import torch_xla
import torch_xla.debug.metrics as met
import torch_xla.distributed.spmd as xs

from mammolibs.models import create_model
from mammolibs.train import distributed
from mammolibs.train.engine import Run, TrainConfig, build_optimizer, fit, train_step
from mammolibs.train.stages import STAGES
from tests.train.ddp_reference import GLOBAL_BATCH, fixed_batch

STEPS = 8


def _compilations() -> int:
    return met.metric_data("CompileTime")[0]


def test_the_training_step_compiles_once_then_never_again(small_shards, tmp_path):
    """On lesion-centred patches of mammograms, as the default recipe trains: static shapes throughout."""
    runtime = distributed.start_runtime()
    assert runtime.xla and runtime.replicas == 2
    config = TrainConfig(data=small_shards, out=str(tmp_path), batch_size=2, width=4, epochs=STEPS, patch_size=32)
    run = Run(STAGES["finetune"], config, runtime)
    assert run.precision == "bf16" and run.config.patch_size == 32
    counts, epoch = [], 0
    while len(counts) < STEPS:  # over several epochs: a new epoch's loader compiles nothing either
        run.train_stream.set_epoch(epoch)
        for batch in distributed.on_device(run._loader(run.train_stream), runtime):
            assert batch[0].device.type == "xla" and batch[0].shape[0] == 2 * config.batch_size
            train_step(run.stage, run.model, batch, run.optimizer, run.scheduler, run.scaler, run.autocast)
            distributed.step_done(runtime)
            counts.append(_compilations())
        epoch += 1
    assert counts[0] >= 1
    assert counts[2:] == [counts[2]] * (len(counts) - 2), f"compilations after each step: {counts}"


def test_spmd_over_two_devices_gives_the_loss_and_gradients_of_one_device(small_shards, tmp_path):
    runtime = distributed.start_runtime()
    stage = STAGES["autoencoder"]
    batch = fixed_batch(small_shards)
    config = TrainConfig(data=small_shards, out=str(tmp_path), batch_size=GLOBAL_BATCH)
    torch.manual_seed(0)
    model = create_model("basic_unet", "autoencoder", width=4)
    models = {"split": copy.deepcopy(model).to(runtime.device), "whole": copy.deepcopy(model).to(runtime.device)}
    batches = {name: tuple(t.to(runtime.device) for t in batch) for name in models}
    for tensor in batches["split"]:  # half the batch on each device; "whole" is computed whole on each
        xs.mark_sharding(tensor, runtime.mesh, ("data",) + (None,) * (tensor.dim() - 1))
    assert "devices=[2,1,1,1]" in torch_xla._XLAC._get_xla_sharding_spec(batches["split"][0])
    assert torch_xla._XLAC._get_xla_sharding_spec(batches["whole"][0]) == ""

    losses = {}
    for name, model in models.items():
        optimizer, scheduler = build_optimizer(model, config, runtime, total_steps=10)
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        losses[name] = train_step(
            stage, model, batches[name], optimizer, scheduler, scaler, distributed.autocast(runtime, "fp32")
        )
        distributed.step_done(runtime)
    split, whole = losses["split"].cpu().item(), losses["whole"].cpu().item()
    assert abs(split - whole) <= 1e-5 * whole
    for (name, one), two in zip(models["whole"].named_parameters(), models["split"].parameters()):
        scale = one.grad.abs().max().item()
        assert torch.allclose(two.grad.cpu(), one.grad.cpu(), rtol=1e-3, atol=1e-3 * scale + 1e-7), name


def test_a_stage_trains_on_xla_and_writes_loadable_checkpoints(small_shards, tmp_path):
    out = tmp_path / "classifier"
    result = fit(
        "classifier",
        TrainConfig(
            data=small_shards,
            out=str(out),
            batch_size=2,
            epochs=2,
            snip_size=32,
            log_every=2,
            checkpoint_every=3,
            progress=False,
        ),
    )
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    assert all(row["train_loss"] > 0 and row["val_loss"] is not None for row in rows)
    final = torch.load(result.final_checkpoint, weights_only=True)
    assert final["step"] == rows[-1]["step"] and all(t.device.type == "cpu" for t in final["model"].values())
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))


RESTART = """
import json, sys
import torch_xla.debug.metrics as met
from mammolibs.train.engine import TrainConfig, fit
config = TrainConfig(data=sys.argv[1], out=sys.argv[2], batch_size=2, width=4, epochs=1, max_steps=2, patch_size=32,
                     progress=False)
fit("finetune", config)
print(json.dumps({n: met.counter_value(n) for n in met.counter_names() if n.startswith("PersistentCache")}))
"""


def test_a_restarted_run_finds_every_compiled_program_in_the_cache_beside_it(small_shards, tmp_path):
    """The compilation cache is on by default, in <out>/xla-cache: the same run started again in a new
    process looks up each program it compiles there and misses none. (torch-xla 2.9's CPU device cannot
    load the programs it stored, counted as PersistentCacheDeserializeFailure, and compiles them again;
    TPUs load them: PersistentCacheHit.)"""
    out = tmp_path / "run"
    counts = []
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-c", RESTART, small_shards, str(out)], capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, result.stderr[-2000:]
        counts.append(json.loads(result.stdout.strip().splitlines()[-1]))
    first, restarted = counts
    stored = sorted((out / "xla-cache").iterdir())
    assert first.get("PersistentCacheMiss", 0) >= 1 and len(stored) == first["PersistentCacheMiss"]
    assert restarted.get("PersistentCacheMiss", 0) == 0, restarted  # nothing the first run compiled is missing
    found = restarted.get("PersistentCacheHit", 0) + restarted.get("PersistentCacheDeserializeFailure", 0)
    assert found == first["PersistentCacheMiss"], (first, restarted)
    assert sorted((out / "xla-cache").iterdir()) == stored  # no new program was stored
