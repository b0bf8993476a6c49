"""Checkpoints under ``<out>/checkpoints/``: ``latest.pt``, ``best.pt``, ``final.pt``.

Each holds model, optimizer, scheduler, grad scaler, random generator states, the data position
(``state``: epoch, next batch, step), the resolved config and how to rebuild the model
(``model_name``, ``model_kwargs``), so evaluation needs nothing but the checkpoint and a resumed
run continues exactly where the interrupted one was. All of it loads with ``weights_only=True``.
"""
from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils._pytree import tree_map

from mammolibs import storage

CHECKPOINTS = "checkpoints"


def checkpoint_url(out: str, which: str) -> str:
    return storage.join(out, CHECKPOINTS, f"{which}.pt")


def resolve_checkpoint(url: str) -> str:
    """A ``.pt`` URL as given, or a stage's output folder -> its ``final.pt``."""
    if url.endswith(".pt"):
        found = url
    else:
        found = checkpoint_url(url, "final")
    if not storage.exists(found):
        raise FileNotFoundError(f"{found}: no checkpoint there; pass a .pt file or the --out folder of a finished stage")
    return found


def load_checkpoint(url: str) -> dict:
    return storage.torch_load(resolve_checkpoint(url))


def load_model(url: str):
    """Rebuild a trained model from its checkpoint alone, in eval mode."""
    from mammolibs.models import create_model

    checkpoint = load_checkpoint(url)
    model = create_model(checkpoint["model_name"], **checkpoint["model_kwargs"])
    model.load_state_dict(checkpoint["model"])
    return model.eval(), checkpoint


def rng_states() -> dict:
    """Every random generator a run uses, as tensors and plain values (loadable with weights_only)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    states = {"torch": torch.get_rng_state(), "python": random.getstate(),
              "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": position,
                        "has_gauss": has_gauss, "gauss": gauss}}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in states["python"]))
    saved = states["numpy"]
    np.random.set_state((saved["kind"], saved["keys"].numpy().astype(np.uint32), saved["position"],
                         saved["has_gauss"], saved["gauss"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def to_cpu(tree):
    """A copy of a nested checkpoint with every tensor on the CPU (XLA and CUDA tensors included)."""
    return tree_map(lambda x: x.detach().cpu() if isinstance(x, torch.Tensor) else x, tree)
