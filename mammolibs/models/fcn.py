"""VGG-16 FCN-8s and FCN-16s (Long et al. 2015) with a multi-task head: lesion logits at input size, and
normal/benign/malignant logits from the pooled encoder, trained together as some breast-imaging
projects do. Upsampling is bilinear (no learned deconvolution); channels scale with ``width``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mammolibs.models.catalog import SNIP_CLASSES
from mammolibs.models.registry import register_model

VGG16 = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))  # (channels at width 64, convolutions) per block


def _vgg_block(channels_in: int, channels: int, convs: int) -> nn.Sequential:
    layers = []
    for index in range(convs):
        layers += [
            nn.Conv2d(channels_in if index == 0 else channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers, nn.MaxPool2d(2, ceil_mode=True))


class FCN(nn.Module):
    """``skips``: the pooling outputs fused into the score map (FCN-16s: pool4; FCN-8s: pool4 and pool3)."""

    multitask = True  # forward(x, with_classes=True) -> (lesion logits, class logits)

    def __init__(self, width: int = 16, skips: tuple[int, ...] = (4, 3)):
        super().__init__()
        sizes = [max(channels * width // 64, 4) for channels, _ in VGG16]
        channels_in = 1
        for index, ((_, convs), channels) in enumerate(zip(VGG16, sizes), start=1):
            self.add_module(f"pool{index}", _vgg_block(channels_in, channels, convs))
            channels_in = channels
        fully = 2 * sizes[-1]
        self.fc7 = nn.Sequential(
            nn.Conv2d(sizes[-1], fully, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(0.5),
            nn.Conv2d(fully, fully, 1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(0.5),
        )
        self.score = nn.Conv2d(fully, 1, 1)
        self.skips = skips
        self.skip_scores = nn.ModuleDict({f"pool{i}": nn.Conv2d(sizes[i - 1], 1, 1) for i in skips})
        self.classes = nn.Linear(fully, len(SNIP_CLASSES))

    def forward(self, x: torch.Tensor, with_classes: bool = False):
        size, pooled = x.shape[-2:], {}
        for index in range(1, 6):
            x = getattr(self, f"pool{index}")(x)
            pooled[index] = x
        features = self.fc7(x)
        score = self.score(features)
        for index in self.skips:
            skip = self.skip_scores[f"pool{index}"](pooled[index])
            score = F.interpolate(score, size=skip.shape[-2:], mode="bilinear", align_corners=False) + skip
        logits = F.interpolate(score, size=size, mode="bilinear", align_corners=False)
        if with_classes:
            return logits, self.classes(features.mean(dim=(2, 3)))
        return logits


@register_model("fcn8s", bottleneck="fc7")
def fcn8s(width: int = 16) -> nn.Module:
    return FCN(width, skips=(4, 3))


@register_model("fcn16s", bottleneck="fc7")
def fcn16s(width: int = 16) -> nn.Module:
    return FCN(width, skips=(4,))
