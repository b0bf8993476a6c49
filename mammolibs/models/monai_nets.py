"""The MONAI networks of the registry, built for one grey channel and a base channel width ``w``."""

from __future__ import annotations

import math

import torch.nn.functional as F
from monai.networks.nets import AttentionUnet, BasicUNet, FlexibleUNet, SegResNet, UNet, resnet18
from torch import nn

from mammolibs.models.registry import register_model

UNET_BOTTOM = "model.1.submodule.1.submodule.1.submodule.1.submodule"  # 5 levels of MONAI's nested UNet


def _levels(width: int) -> tuple[int, ...]:
    return (width, 2 * width, 4 * width, 8 * width, 16 * width)


@register_model("basic_unet", bottleneck="down_4")
def basic_unet(width: int = 16) -> nn.Module:
    return BasicUNet(
        spatial_dims=2, in_channels=1, out_channels=1, features=(width, width, 2 * width, 4 * width, 8 * width, width)
    )


@register_model("monai_unet", bottleneck=UNET_BOTTOM)
def monai_unet(width: int = 16) -> nn.Module:
    return padded(UNet, 16)(
        spatial_dims=2, in_channels=1, out_channels=1, channels=_levels(width), strides=(2, 2, 2, 2), num_res_units=2
    )


@register_model("attention_unet", bottleneck=UNET_BOTTOM)
def attention_unet(width: int = 16) -> nn.Module:
    return padded(AttentionUnet, 16)(
        spatial_dims=2, in_channels=1, out_channels=1, channels=_levels(width), strides=(2, 2, 2, 2)
    )


@register_model("segresnet", bottleneck="down_layers.3")
def segresnet(width: int = 16) -> nn.Module:
    return padded(SegResNet, 8)(
        spatial_dims=2,
        init_filters=width,
        in_channels=1,
        out_channels=1,
        norm=("group", {"num_groups": math.gcd(8, width)}),
    )  # 8 groups when w allows


def padded(network: type[nn.Module], multiple: int) -> type[nn.Module]:
    """``network`` for any image side: the input padded up to a multiple of its total stride, the
    output cropped back (parameter names unchanged)."""

    class Padded(network):  # type: ignore[valid-type, misc]  # a subclass made for each network
        def forward(self, x):
            height, width = x.shape[-2:]
            return super().forward(F.pad(x, (0, -width % multiple, 0, -height % multiple)))[..., :height, :width]

    Padded.__name__ = Padded.__qualname__ = f"Padded{network.__name__}"
    return Padded


@register_model("flexible_unet", bottleneck="encoder")
def flexible_unet(width: int = 16) -> nn.Module:
    return padded(FlexibleUNet, 32)(
        in_channels=1,
        out_channels=1,
        backbone="resnet18",
        pretrained=False,
        spatial_dims=2,
        decoder_channels=(8 * width, 4 * width, 2 * width, width, max(width // 2, 1)),
    )


@register_model("resnet18")
def resnet(num_classes: int = 3) -> nn.Module:
    # stride 2 in the 7x7 stem, as He et al.'s ResNet-18 (MONAI's default stride 1 costs 4x the compute)
    return resnet18(spatial_dims=2, n_input_channels=1, num_classes=num_classes, conv1_t_stride=2)
