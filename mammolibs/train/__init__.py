"""One training engine for every stage; each stage only says model, data view, loss and the
validation figure that picks its best checkpoint.

:data:`STAGE_SPECS` declares each stage once (what it learns, the models it trains and its default,
what ``--init`` takes, its epochs, its script) and :data:`RECIPE` the steps the pipeline chains (with
the pipeline parameter holding each step's settings). Both are light to import: the command line,
the recipe, the pipeline, its components and the scripts read them. Model names are in
:mod:`mammolibs.models.catalog`.
"""

from typing import NamedTuple

from mammolibs.models.catalog import CLASSIFICATION, MODEL_NAMES, SEGMENTATION


class StageSpec(NamedTuple):
    """What every consumer knows of a training stage (its code is :mod:`mammolibs.train.stages`)."""

    learns: str  # what it learns, as ``--help`` says it
    kinds: tuple[str, ...]  # which kinds of model it can train (mammolibs.models.catalog)
    default_model: str  # its model unless --model says or --init brings one
    init: str  # what --init takes
    epochs: int  # passes over the training split in the pipeline and 'mammo generalize'
    script: str  # its script, relative to the repository
    chain: str | None = None  # the part of the deployed chain its checkpoints serve as: "unet", "classifier"

    def models(self) -> list[str]:
        """The model names the stage accepts."""
        return [name for name, (kind, _) in MODEL_NAMES.items() if kind in self.kinds]


STAGE_SPECS = {
    "encoder": StageSpec(
        "self-supervised encoder of the segmentation model (contrastive views of patches)",
        (SEGMENTATION,),
        "basic_unet",
        "not used: the encoder starts from random weights",
        10,
        "train/unet/encoder/train_encoder.py",
    ),
    "autoencoder": StageSpec(
        "denoising autoencoder with an image-class head, from the encoder",
        (SEGMENTATION,),
        "basic_unet",
        "the encoder's checkpoint (a .pt file or the encoder's --out folder)",
        10,
        "train/unet/autoencoder/train_autoencoder.py",
    ),
    "finetune": StageSpec(
        "U-Net lesion segmentation on lesion-balanced patches, from the autoencoder",
        (SEGMENTATION,),
        "basic_unet",
        "the autoencoder's checkpoint (a .pt file or the autoencoder's --out folder)",
        30,
        "train/unet/finetune.py",
        chain="unet",
    ),
    "classifier": StageSpec(
        "lesion snips scored normal, benign, malignant by a pretrained encoder and a head",
        (SEGMENTATION, CLASSIFICATION),
        "flexible_unet",
        "optional: a checkpoint of the encoder, autoencoder or finetune stage (its encoder starts the "
        "classifier's; the recipe passes its own encoder's) or of a classifier",
        20,
        "train/resnet/train_resnet.py",
        chain="classifier",
    ),
    "whole_image": StageSpec(
        "baseline: ResNet on whole images, benign vs malignant",
        (SEGMENTATION, CLASSIFICATION),
        "resnet18",
        "optional: a whole-image classifier checkpoint to start from",
        20,
        "train/resnet/train_whole_image.py",
        chain="classifier",
    ),
}
"""Every training stage, in order."""


def serving(part: str) -> tuple[str, ...]:
    """The stages whose checkpoints can be ``part`` ("unet", "classifier") of the deployed chain."""
    return tuple(name for name, spec in STAGE_SPECS.items() if spec.chain == part)


def check_model(stage: str, name: str) -> str:
    """``name`` if ``stage`` can train it, else a one-line error listing the choices."""
    choices = STAGE_SPECS[stage].models()
    if name not in choices:
        raise ValueError(f"stage '{stage}' cannot train model {name!r}; choose one of: {', '.join(choices)}")
    return name


class Step(NamedTuple):
    """One training step of the recipe: the stage it trains, the pipeline parameter holding its settings
    (flags of 'mammo train STAGE' as keys), the step whose best checkpoint it starts from, and its model
    unless its settings name one (``None``: the stage's default, or the model of the checkpoint it
    starts from)."""

    stage: str
    settings: str
    init: str | None = None
    model: str | None = None


RECIPE = {
    "encoder": Step("encoder", "pretrain_settings"),
    "autoencoder": Step("autoencoder", "pretrain_settings", init="encoder"),
    "finetune": Step("finetune", "finetune_settings", init="autoencoder"),
    "classifier_encoder": Step("encoder", "classifier_pretrain_settings", model="flexible_unet"),
    "classifier": Step("classifier", "classifier_settings", init="classifier_encoder"),
}
"""The default recipe's steps, in order: the U-Net (``basic_unet``) pretrained as encoder, then
autoencoder, then finetuned; the snip classifier a ResNet-18 (``flexible_unet``'s encoder) pretrained
as a contrastive encoder of its own. Every pipeline training step is one of them. In the quality
benchmark the ResNet-18 classifier scored benign against malignant better than the U-Net's encoder
(lesion AUROC 0.75-0.84 against 0.68-0.81), and FlexibleUNet as the segmenter lost (Dice 0.40 against
0.66 across hospitals), so each model is pretrained for its own role."""


def default_epochs(step: str) -> int:
    """The epochs of a recipe step, or of a stage trained alone (a baseline)."""
    return STAGE_SPECS[RECIPE[step].stage if step in RECIPE else step].epochs
