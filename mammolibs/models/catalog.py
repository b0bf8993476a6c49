"""The one list of model names, light to import (the CLI, the pipeline and the docs read it; which stage
trains which kind is declared with the stage, :data:`mammolibs.train.STAGE_SPECS`).

Every model takes one grey channel. A ``segmentation`` model returns one logit map at the input's
size; it also serves the encoder stage (its encoder, pooled, under a projection head) and the
classifiers (its encoder, pooled, under a linear head), so pretraining carries over by parameter
name. A ``classification`` model returns class logits only. Multi-task segmentation models (FCN)
also return normal/benign/malignant logits from their encoder when asked (``with_classes=True``).
"""

from __future__ import annotations

from mammolibs.data.sample import SNIP_CLASSES, WHOLE_IMAGE_CLASSES  # noqa: F401  (the classes a model outputs)

SEGMENTATION, CLASSIFICATION = "segmentation", "classification"
MODEL_NAMES = {  # name -> (kind, what it is)
    "basic_unet": (SEGMENTATION, "MONAI BasicUNet, features (w, w, 2w, 4w, 8w, w): the default"),
    "monai_unet": (SEGMENTATION, "MONAI UNet, channels (w .. 16w), 2 residual units per level"),
    "attention_unet": (SEGMENTATION, "MONAI AttentionUnet, channels (w .. 16w), attention gates on the skips"),
    "segresnet": (SEGMENTATION, "MONAI SegResNet, init_filters w"),
    "flexible_unet": (
        SEGMENTATION,
        "MONAI FlexibleUNet, ResNet-18 encoder (no pretrained weights), decoder (8w .. w/2)",
    ),
    "fcn8s": (
        SEGMENTATION,
        "VGG-16 FCN-8s (VGG channels scaled by w/64) with a benign/malignant/normal head on the encoder (multi-task)",
    ),
    "fcn16s": (SEGMENTATION, "VGG-16 FCN-16s, as fcn8s with one skip fewer (multi-task)"),
    "unet_s5_d16": (SEGMENTATION, "MMSegmentation UNet-S5-D16 (5 stages, output stride 16) with an FCN head"),
    "deeplabv3": (SEGMENTATION, "DeepLabV3: ASPP on a dilated ResNet-18-style backbone (output stride 8)"),
    "resnet18": (CLASSIFICATION, "MONAI ResNet-18 (2-D, one channel, stride-2 stem as He et al.): classifiers only"),
}
DEFAULT_WIDTH = 16
