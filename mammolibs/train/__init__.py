"""One training engine for every stage; each stage only says model, data view, loss and the
validation figure that picks its best checkpoint.

:data:`STAGE_NAMES` is the one list of stages and :data:`RECIPE` the steps the pipeline chains (light
to import: the CLI, the pipeline and its hardware table read them; model names are in
:mod:`mammolibs.models.catalog`).
"""

from typing import NamedTuple

STAGE_NAMES = {
    "encoder": "self-supervised encoder of the segmentation model (contrastive views of patches)",
    "autoencoder": "denoising autoencoder with an image-class head, from the encoder",
    "finetune": "U-Net lesion segmentation on lesion-balanced patches, from the autoencoder",
    "classifier": "lesion snips scored normal, benign, malignant by a pretrained encoder and a head",
    "whole_image": "baseline: ResNet on whole images, benign vs malignant",
}


class Step(NamedTuple):
    """One training step of the recipe: the stage it trains, the step whose best checkpoint it starts
    from, and its model unless its settings name one (``None``: the stage's default, or the model of
    the checkpoint it starts from)."""

    stage: str
    init: str | None = None
    model: str | None = None


RECIPE = {
    "encoder": Step("encoder"),
    "autoencoder": Step("autoencoder", init="encoder"),
    "finetune": Step("finetune", init="autoencoder"),
    "classifier_encoder": Step("encoder", model="flexible_unet"),
    "classifier": Step("classifier", init="classifier_encoder"),
}
"""The default recipe's steps, in order: the U-Net (``basic_unet``) pretrained as encoder, then
autoencoder, then finetuned; the snip classifier a ResNet-18 (``flexible_unet``'s encoder) pretrained
as a contrastive encoder of its own. Every pipeline training step is one of them. In the quality
benchmark the ResNet-18 classifier scored benign against malignant better than the U-Net's encoder
(lesion AUROC 0.75-0.84 against 0.68-0.81), and FlexibleUNet as the segmenter lost (Dice 0.40 against
0.66 across hospitals), so each model is pretrained for its own role."""
