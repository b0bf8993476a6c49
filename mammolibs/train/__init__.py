"""One training engine for every stage; each stage only says model, data view, loss and the
validation figure that picks its best checkpoint.

:data:`STAGE_NAMES` is the one list of stages and :data:`RECIPE` the ones the pipeline chains (light
to import: the CLI, the pipeline and its hardware table read them; model names are in
:mod:`mammolibs.models.catalog`).
"""

STAGE_NAMES = {
    "encoder": "self-supervised U-Net encoder (contrastive views)",
    "autoencoder": "denoising autoencoder, from the encoder",
    "finetune": "U-Net lesion segmentation, from the autoencoder",
    "classifier": "ResNet scoring lesion snips: normal, benign, malignant",
    "whole_image": "baseline: ResNet on whole images, benign vs malignant",
}

RECIPE = ("encoder", "autoencoder", "finetune", "classifier")
"""The default recipe's stages, in order: each pipeline training step is one of them."""
