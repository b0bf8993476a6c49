"""Weights from one stage's checkpoint into the next stage's model, by parameter name.

The encoder must match: every tensor of the new model's encoder has to be in the checkpoint, with the
same shape, or nothing is loaded and the error says which architecture the checkpoint holds. The
decoder moves too between segmentation roles (autoencoder -> U-Net); a contrastive checkpoint gives
its encoder only (its decoder never trained). Heads are new unless both models have the same role.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from mammolibs.models.catalog import CLASSIFICATION, DEFAULT_WIDTH, MODEL_NAMES
from mammolibs.models.registry import encoder_names

log = logging.getLogger(__name__)


def architecture_state(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The architecture's own tensors in a checkpoint (wrappers' ``net.`` prefix removed, heads left out)."""
    state = checkpoint["model"]
    if (
        checkpoint.get("model_role", "segmentation") == "segmentation"
        or MODEL_NAMES[checkpoint["model_name"]][0] == CLASSIFICATION
    ):
        return dict(state)
    return {k[len("net.") :]: v for k, v in state.items() if k.startswith("net.")}


def describe(checkpoint: dict) -> str:
    kwargs = checkpoint.get("model_kwargs", {})
    return f"{checkpoint['model_name']}" + (f" (width {kwargs['width']})" if "width" in kwargs else "")


def transfer(model: nn.Module, name: str, role: str, width: int | None, checkpoint: dict, origin: str) -> list[str]:
    """Load what fits of ``checkpoint`` into ``model`` (model ``name`` built for ``role`` at ``width``);
    returns the names taken. Refuses, loading nothing, when the encoder does not match."""
    own = model.state_dict()
    if checkpoint.get("model_role") == role and checkpoint["model_name"] == name:
        source, prefix = dict(checkpoint["model"]), ""  # the same model: everything, heads included
        needed = set(own)
    elif MODEL_NAMES[name][0] == CLASSIFICATION or MODEL_NAMES[checkpoint["model_name"]][0] == CLASSIFICATION:
        raise ValueError(
            f"{origin}: holds a {describe(checkpoint)} {checkpoint.get('model_role')}, which cannot start "
            f"a {name} {role}; pass the checkpoint of the previous stage"
        )
    else:
        prefix = "net." if isinstance(getattr(model, "net", None), nn.Module) else ""  # a wrapper of the architecture
        encoder = encoder_names(name, width if width is not None else DEFAULT_WIDTH)
        source = architecture_state(checkpoint)
        if checkpoint.get("model_role") == "contrastive":
            source = {k: v for k, v in source.items() if k in encoder}
        source = {prefix + k: v for k, v in source.items()}
        needed = {prefix + k for k in encoder}
    wrong = sorted(k for k in needed if k not in source or source[k].shape != own[k].shape)
    if wrong:
        raise ValueError(
            f"{origin}: its {describe(checkpoint)} does not fit this run's {name} (width {width}): "
            f"{len(wrong)} of {len(needed)} encoder tensors are missing or of another shape (first: "
            f"{wrong[0]}); leave --model and --width unset to take the checkpoint's architecture, or "
            "pass the checkpoint of a matching run"
        )
    taken = sorted(k for k, v in source.items() if k in own and own[k].shape == v.shape)
    own.update({k: source[k] for k in taken})
    model.load_state_dict(own)
    log.info(
        "init from %s (%s): took %d of this model's %d tensors (encoder %d), %d start fresh",
        origin,
        describe(checkpoint),
        len(taken),
        len(own),
        len(needed),
        len(own) - len(taken),
    )
    return taken
