"""Two MMSegmentation configurations rebuilt from torch and MONAI blocks (MMSegmentation itself and
torchvision are not dependencies): UNet-S5-D16 with an FCN head, and DeepLabV3 (ASPP) on a dilated
ResNet backbone. Channels scale with ``width`` (MMSegmentation's are width 64)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.blocks import SimpleASPP
from torch import nn

from mammolibs.models.registry import register_model


def conv_bn_relu(
    channels_in: int, channels: int, kernel: int = 3, stride: int = 1, dilation: int = 1
) -> list[nn.Module]:
    padding = dilation * (kernel // 2)
    return [
        nn.Conv2d(channels_in, channels, kernel, stride, padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
    ]


def _two_convs(channels_in: int, channels: int) -> nn.Sequential:
    return nn.Sequential(*conv_bn_relu(channels_in, channels), *conv_bn_relu(channels, channels))


class UNetS5D16(nn.Module):
    """MMSegmentation's ``UNet`` backbone (5 stages, 2 convolutions each, 4 downsamplings: output stride 16,
    bilinear-upsampling decoder) and its ``FCNHead`` (one 3x3 convolution, dropout, 1x1 classifier)."""

    def __init__(self, width: int = 16):
        super().__init__()
        channels = [width * 2**i for i in range(5)]
        self.encoder = nn.ModuleList(
            [_two_convs(1, channels[0])]
            + [nn.Sequential(nn.MaxPool2d(2), _two_convs(channels[i - 1], channels[i])) for i in range(1, 5)]
        )
        self.reduce = nn.ModuleList(
            [nn.Sequential(*conv_bn_relu(channels[i], channels[i - 1], kernel=1)) for i in range(4, 0, -1)]
        )
        self.decoder = nn.ModuleList([_two_convs(2 * channels[i - 1], channels[i - 1]) for i in range(4, 0, -1)])
        self.head = nn.Sequential(
            *conv_bn_relu(channels[0], channels[0]), nn.Dropout2d(0.1), nn.Conv2d(channels[0], 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        for reduce, decode in zip(self.reduce, self.decoder):
            skip = skips.pop()
            x = reduce(F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False))
            x = decode(torch.cat([skip, x], dim=1))
        return self.head(x)


class BasicBlock(nn.Module):
    """ResNet basic block with an optional dilation (DeepLab keeps resolution by dilating, not striding)."""

    def __init__(self, channels_in: int, channels: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            *conv_bn_relu(channels_in, channels, stride=stride, dilation=dilation),
            nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and channels_in == channels
            else nn.Sequential(nn.Conv2d(channels_in, channels, 1, stride, bias=False), nn.BatchNorm2d(channels))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class DeepLabV3(nn.Module):
    """Dilated ResNet-18-style backbone at output stride 8 (layers 3 and 4 dilated 2 and 4), ASPP (rates
    1, 12, 24, 36 at full size; 1, 6, 12, 18 here for smaller images), 1x1 classifier, bilinear upsampling."""

    def __init__(self, width: int = 16):
        super().__init__()
        base = 4 * width
        self.stem = nn.Sequential(*conv_bn_relu(1, base, kernel=7, stride=2), nn.MaxPool2d(3, 2, 1))
        layers, channels_in = [], base
        for index, (channels, stride, dilation) in enumerate(
            ((base, 1, 1), (2 * base, 2, 1), (4 * base, 1, 2), (8 * base, 1, 4)), start=1
        ):
            layers.append(
                (
                    f"layer{index}",
                    nn.Sequential(
                        BasicBlock(channels_in, channels, stride, dilation), BasicBlock(channels, channels, 1, dilation)
                    ),
                )
            )
            channels_in = channels
        for name, layer in layers:
            self.add_module(name, layer)
        self.aspp = SimpleASPP(
            spatial_dims=2,
            in_channels=channels_in,
            conv_out_channels=base,
            kernel_sizes=(1, 3, 3, 3),
            dilations=(1, 6, 12, 18),
            norm_type="batch",
            acti_type="relu",
        )
        self.classifier = nn.Sequential(*conv_bn_relu(4 * base, base), nn.Conv2d(base, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = self.stem(x)
        for index in range(1, 5):
            x = getattr(self, f"layer{index}")(x)
        return F.interpolate(self.classifier(self.aspp(x)), size=size, mode="bilinear", align_corners=False)


@register_model("unet_s5_d16", bottleneck="encoder.4")
def unet_s5_d16(width: int = 16) -> nn.Module:
    return UNetS5D16(width)


@register_model("deeplabv3", bottleneck="layer4")
def deeplabv3(width: int = 16) -> nn.Module:
    return DeepLabV3(width)
