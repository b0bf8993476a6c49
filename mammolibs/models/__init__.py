"""Model registry: ``@register_model("unet")`` and ``create_model("unet", width=16)``.

The encoder, the autoencoder and the segmentation U-Net share parameter names (``conv_0``,
``down_1`` ... of MONAI's BasicUNet), so each stage's weights load into the next by name.
"""
from __future__ import annotations

import logging
from typing import Callable

import torch
from monai.networks.nets import BasicUNet, resnet18
from torch import nn

log = logging.getLogger(__name__)

MODELS: dict[str, Callable[..., nn.Module]] = {}
ENCODER_BLOCKS = ("conv_0", "down_1", "down_2", "down_3", "down_4")
SNIP_CLASSES = ("normal", "benign", "malignant")
WHOLE_IMAGE_CLASSES = ("benign", "malignant")


def register_model(name: str) -> Callable:
    def add(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS[name] = factory
        return factory

    return add


def create_model(name: str, **kwargs) -> nn.Module:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)


def unet_features(width: int) -> tuple[int, ...]:
    """BasicUNet channel widths for a base ``width``: (w, w, 2w, 4w, 8w, w)."""
    return (width, width, 2 * width, 4 * width, 8 * width, width)


@register_model("unet")
def unet(width: int = 16) -> nn.Module:
    """2-D U-Net, one grey channel in, one logit channel out (mask, or reconstruction)."""
    return BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=unet_features(width))


class UNetEncoder(nn.Module):
    """The contracting half of :func:`unet` plus a projection head for contrastive pretraining."""

    def __init__(self, width: int = 16, projection: int = 128):
        super().__init__()
        full = unet(width)
        for name in ENCODER_BLOCKS:
            self.add_module(name, getattr(full, name))
        channels = unet_features(width)[4]
        self.projection = nn.Sequential(nn.Linear(channels, channels), nn.ReLU(inplace=True), nn.Linear(channels, projection))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for name in ENCODER_BLOCKS:
            x = getattr(self, name)(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.features(x))


@register_model("unet_encoder")
def unet_encoder(width: int = 16, projection: int = 128) -> nn.Module:
    return UNetEncoder(width, projection)


@register_model("resnet")
def resnet(num_classes: int = len(SNIP_CLASSES)) -> nn.Module:
    """ResNet-18 (MONAI, 2-D, one input channel) scoring snips as normal / benign / malignant."""
    return resnet18(spatial_dims=2, n_input_channels=1, num_classes=num_classes)


def load_matching(model: nn.Module, state: dict[str, torch.Tensor], origin: str) -> list[str]:
    """Load the parameters of ``state`` whose names and shapes match ``model``; say what was taken.

    Raises when nothing matches, so a wrong ``--init`` never passes silently.
    Returns the names taken.
    """
    own = model.state_dict()
    taken = [k for k, v in state.items() if k in own and own[k].shape == v.shape]
    if not taken:
        raise ValueError(f"{origin}: no parameter matches this model; is it the checkpoint of the previous stage?")
    own.update({k: state[k] for k in taken})
    model.load_state_dict(own)
    skipped = sorted(set(state) - set(taken))
    fresh = sorted(set(own) - set(taken))
    log.info("init from %s: took %d tensors, ignored %d (%s), left %d newly initialised (%s)", origin, len(taken),
             len(skipped), _blocks(skipped), len(fresh), _blocks(fresh))
    return taken


def _blocks(names: list[str]) -> str:
    return ", ".join(sorted({n.split(".")[0] for n in names})) or "none"
