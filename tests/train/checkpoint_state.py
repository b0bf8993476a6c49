"""What an exact resume gives back, read from checkpoints: the step of a run's latest checkpoint, and a
final checkpoint equal bit for bit to a reference run's."""

from __future__ import annotations

from pathlib import Path

import torch

from mammolibs import storage


def latest_step(out: Path) -> int:
    """The step of ``out``'s latest checkpoint; -1 while there is none (or it is being written)."""
    try:
        return storage.torch_load(str(out / "checkpoints" / "latest.pt"))["state"]["step"]
    except (FileNotFoundError, RuntimeError, EOFError):
        return -1


def assert_same_training_state(resumed: dict, reference: dict, where: str) -> None:
    """Step, weights, optimizer state and schedule of ``resumed`` equal ``reference``'s exactly."""
    assert resumed["step"] == reference["step"]
    for name, tensor in reference["model"].items():
        assert torch.equal(resumed["model"][name], tensor), f"{name} differs after {where}"
    for index, state in reference["optimizer"]["state"].items():
        for key, tensor in state.items():
            assert torch.equal(resumed["optimizer"]["state"][index][key], tensor), (index, key)
    assert resumed["scheduler"] == reference["scheduler"]
