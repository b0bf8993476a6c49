"""Build a model by name for a stage's role, and reach any architecture's encoder.

Roles: ``segmentation`` (the architecture itself), ``contrastive`` (its encoder, pooled, under a
projection head: the encoder stage), ``autoencoder`` (the architecture, plus image-class logits from
its pooled encoder) and ``classifier`` (its encoder, pooled, under a linear head; or a classification
architecture as it is). The wrappers keep the architecture as ``net``, so its weights
move between stages by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from mammolibs.models.catalog import CLASSIFICATION, MODEL_NAMES

ROLES = ("segmentation", "contrastive", "autoencoder", "classifier")


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[..., nn.Module]
    bottleneck: str | None  # the module whose output is the encoder's deepest features (segmentation models)

    @property
    def encoder_end(self) -> str:
        """:attr:`bottleneck` of a segmentation model (a classifier has none)."""
        if self.bottleneck is None:
            raise ValueError(f"{self.name} is a classifier: it has no encoder bottleneck")
        return self.bottleneck


ARCHITECTURES: dict[str, Architecture] = {}


def register_model(name: str, bottleneck: str | None = None) -> Callable:
    """Decorator adding a builder to the registry under a name of :data:`MODEL_NAMES`."""
    if name not in MODEL_NAMES:
        raise KeyError(f"{name}: add it to mammolibs.models.catalog.MODEL_NAMES first")

    def add(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        ARCHITECTURES[name] = Architecture(name, build, bottleneck)
        return build

    return add


class _EncoderDone(Exception):
    """Raised by the bottleneck's hook: the rest of the network is not needed."""


def run_net(net: nn.Module, bottleneck: str, x: torch.Tensor, whole: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(the net's output, or None when not ``whole``: the decoder is skipped; its encoder's output
    pooled to one vector per image)."""
    captured = []

    def keep(module, inputs, output):
        captured.append(output[-1] if isinstance(output, (list, tuple)) else output)
        if not whole:
            raise _EncoderDone

    handle = net.get_submodule(bottleneck).register_forward_hook(keep)
    output = None
    try:
        output = net(x)
    except _EncoderDone:
        pass
    finally:
        handle.remove()
    return output, captured[0].mean(dim=(2, 3))


PROBE = (2, 1, 64, 64)  # the input shape that sizes an encoder: small, and deep enough for every architecture


def encoder_channels(net: nn.Module, bottleneck: str) -> int:
    """Channels of the architecture's pooled encoder output, found by one pass of a probe image."""
    with torch.no_grad():
        return run_net(net, bottleneck, torch.zeros(PROBE), whole=False)[1].shape[1]


class OnEncoder(nn.Module):
    """An architecture's encoder output, pooled to one vector per image; the decoder is never run."""

    uses_part_of_net = True  # data parallelism must expect the decoder's parameters to get no gradient

    def __init__(self, net: nn.Module, bottleneck: str):
        super().__init__()
        self.net, self.bottleneck = net, bottleneck
        self.channels = encoder_channels(net, bottleneck)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return run_net(self.net, self.bottleneck, x, whole=False)[1]


class Contrastive(OnEncoder):
    """Encoder features under a 2-layer projection head, for NT-Xent pretraining."""

    def __init__(self, net: nn.Module, bottleneck: str, projection: int = 128):
        super().__init__(net, bottleneck)
        self.projection = nn.Sequential(
            nn.Linear(self.channels, self.channels), nn.ReLU(inplace=True), nn.Linear(self.channels, projection)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.features(x))


class EncoderClassifier(OnEncoder):
    """Encoder features under dropout and a linear head: class logits."""

    def __init__(self, net: nn.Module, bottleneck: str, num_classes: int):
        super().__init__(net, bottleneck)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class WithImageClasses(nn.Module):
    """The architecture's output, and class logits of the whole image from its pooled encoder (the
    autoencoder's image-level objective, for images that carry a label but no mask)."""

    def __init__(self, net: nn.Module, bottleneck: str, num_classes: int):
        super().__init__()
        self.net, self.bottleneck = net, bottleneck
        self.head = nn.Linear(encoder_channels(net, bottleneck), num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        output, features = run_net(self.net, self.bottleneck, x, whole=True)
        return output, self.head(features)


def create_model(name: str, role: str = "segmentation", width: int = 16, num_classes: int = 3) -> nn.Module:
    """Model ``name`` of :data:`MODEL_NAMES` built for ``role``; ``width`` is its base channel count
    (segmentation models), ``num_classes`` the classifier's outputs."""
    if name not in ARCHITECTURES:
        raise KeyError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {ROLES}")
    architecture = ARCHITECTURES[name]
    if MODEL_NAMES[name][0] == CLASSIFICATION:
        if role != "classifier":
            raise ValueError(f"{name} is a classifier: it has no lesion map and no encoder to pretrain")
        return architecture.build(num_classes=num_classes)
    net = architecture.build(width=width)
    if role == "segmentation":
        return net
    if role == "contrastive":
        return Contrastive(net, architecture.encoder_end)
    if role == "autoencoder":
        return WithImageClasses(net, architecture.encoder_end, num_classes)
    return EncoderClassifier(net, architecture.encoder_end, num_classes)


def encoder_names(name: str, width: int) -> set[str]:
    """The state-dict names of the architecture's encoder: the parameters that a pass through it to its
    bottleneck reaches, and the buffers (batch-norm statistics) of their modules."""
    probe = OnEncoder(ARCHITECTURES[name].build(width=width), ARCHITECTURES[name].encoder_end)
    probe.features(torch.zeros(PROBE)).sum().backward()
    reached = {n for n, p in probe.net.named_parameters() if p.grad is not None}
    modules = {n.rpartition(".")[0] for n in reached}
    return reached | {n for n, _ in probe.net.named_buffers() if n.rpartition(".")[0] in modules}
