"""Checkpoints under ``<out>/checkpoints/``: ``latest.pt``, ``best.pt`` (by the stage's validation
metric), ``final.pt``. A run folder given where a checkpoint is expected means its ``best.pt``.

Each holds model, optimizer, scheduler, grad scaler, random generator states, the data position
(``state``: epoch, next batch, step), the resolved config and how to rebuild the model
(``model_name``, ``model_kwargs``), so evaluation needs nothing but the checkpoint and a resumed
run continues exactly where the interrupted one was. All of it loads with ``weights_only=True``.
"""

from __future__ import annotations

import random
from typing import cast

import numpy as np
import torch
from torch.utils._pytree import tree_map

from mammolibs import storage

CHECKPOINTS = "checkpoints"


def checkpoint_url(out: str, which: str) -> str:
    return storage.join(out, CHECKPOINTS, f"{which}.pt")


def resolve_checkpoint(url: str) -> str:
    """A ``.pt`` URL as given, or a stage's output folder -> its ``best.pt`` (``final.pt`` when the run
    had no validation data to pick a best one)."""
    if url.endswith(".pt"):
        found = url
    else:
        found = checkpoint_url(url, "best")
        if not storage.exists(found):
            found = checkpoint_url(url, "final")
    if not storage.exists(found):
        raise FileNotFoundError(
            f"{found}: no checkpoint there; pass a .pt file or the --out folder of a finished stage"
        )
    return found


def load_checkpoint(url: str) -> dict:
    """The checkpoint at ``url`` (see :func:`resolve_checkpoint`), checked to be one mammoflow wrote."""
    found = resolve_checkpoint(url)
    try:
        checkpoint = storage.torch_load(found)
    except Exception as err:  # a damaged file, a foreign pickle refused by weights_only, ...
        raise ValueError(
            f"{found}: not a readable mammoflow checkpoint ({type(err).__name__}); pass a "
            "checkpoints/*.pt file or a stage's --out folder"
        ) from None
    required = ("stage", "model_name", "model_kwargs", "model", "config")
    missing = [key for key in required if key not in checkpoint] if isinstance(checkpoint, dict) else list(required)
    if missing:
        raise ValueError(
            f"{found}: not a mammoflow checkpoint (lacks {missing}); pass a checkpoints/*.pt file "
            "or a stage's --out folder"
        )
    return {**checkpoint, "url": found}


def load_model(url: str, stages: tuple[str, ...] = (), image_size: int | None = None, role: str = "model"):
    """Rebuild a trained model from its checkpoint alone, in eval mode: (model, checkpoint).

    ``stages``: the stages whose checkpoints fit (any when empty); ``image_size``: the data's image
    side, which the checkpoint must have been trained on. Either mismatch is refused in one line
    naming ``role`` (the flag the checkpoint came from) before any work is done.
    """
    from mammolibs.models import create_model

    checkpoint = load_checkpoint(url)
    found = checkpoint["url"]
    if stages and checkpoint.get("stage") not in stages:
        raise ValueError(
            f"{found}: a checkpoint of stage '{checkpoint.get('stage')}', but {role} takes "
            f"{' or '.join(repr(s) for s in stages)}; pass the --out folder of that stage"
        )
    if image_size is not None and checkpoint.get("image_size") != image_size:
        raise ValueError(
            f"{found}: trained on {checkpoint.get('image_size')}-pixel images, but the data has "
            f"{image_size}-pixel images; standardize with --image-size {checkpoint.get('image_size')} "
            "or train on this data"
        )
    try:
        model = create_model(
            checkpoint["model_name"], checkpoint.get("model_role", "segmentation"), **checkpoint["model_kwargs"]
        )
        model.load_state_dict(checkpoint["model"])
    except (KeyError, ValueError, RuntimeError) as err:
        raise ValueError(
            f"{found}: cannot rebuild its model {checkpoint['model_name']!r} ({str(err).splitlines()[0]}); "
            "was it written by an older mammoflow? train that stage again"
        ) from None
    return model.eval(), checkpoint


def rng_states() -> dict:
    """Every random generator a run uses, as tensors and plain values (loadable with weights_only)."""
    kind, keys, position, has_gauss, gauss = cast(tuple, np.random.get_state(legacy=True))
    states = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": position,
            "has_gauss": has_gauss,
            "gauss": gauss,
        },
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in states["python"]))
    saved = states["numpy"]
    np.random.set_state(
        (saved["kind"], saved["keys"].numpy().astype(np.uint32), saved["position"], saved["has_gauss"], saved["gauss"])
    )
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def to_cpu(tree):
    """A copy of a nested checkpoint with every tensor on the CPU (XLA and CUDA tensors included)."""
    return tree_map(lambda x: x.detach().cpu() if isinstance(x, torch.Tensor) else x, tree)
