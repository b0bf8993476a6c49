"""Checkpoints under ``<out>/checkpoints/``: ``latest.pt``, ``best.pt``, ``final.pt``.

Each holds model, optimizer, scheduler, step, epoch, the resolved config and how to rebuild the
model (``model_name``, ``model_kwargs``), so evaluation needs nothing but the checkpoint.
"""
from __future__ import annotations

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
