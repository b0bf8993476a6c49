"""The one list of model names, light to import (the CLI, the pipeline and the docs read it).

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
STAGE_DEFAULT_MODEL = {
    "encoder": "basic_unet",
    "autoencoder": "basic_unet",
    "finetune": "basic_unet",
    "classifier": "flexible_unet",
    "whole_image": "resnet18",
}
"""Each stage's model unless ``--model`` says or ``--init`` brings one (a stage given weights by
``--init`` takes the checkpoint's architecture)."""
STAGE_KINDS = {
    "encoder": (SEGMENTATION,),
    "autoencoder": (SEGMENTATION,),
    "finetune": (SEGMENTATION,),
    "classifier": (SEGMENTATION, CLASSIFICATION),
    "whole_image": (SEGMENTATION, CLASSIFICATION),
}
"""Which kinds of model each stage can train."""


def models_for(stage: str) -> list[str]:
    """The model names ``stage`` accepts."""
    return [name for name, (kind, _) in MODEL_NAMES.items() if kind in STAGE_KINDS[stage]]


def check_model(stage: str, name: str) -> str:
    """``name`` if ``stage`` can train it, else a one-line error listing the choices."""
    if name not in models_for(stage):
        raise ValueError(f"stage '{stage}' cannot train model {name!r}; choose one of: {', '.join(models_for(stage))}")
    return name
