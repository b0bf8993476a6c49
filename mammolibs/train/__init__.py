"""One training engine for every stage; each stage only says model, data view, loss and the
validation figure that picks its best checkpoint.

:data:`STAGE_NAMES` is the one list of stages and :data:`RECIPE` the ones the pipeline chains (light
to import: the CLI, the pipeline and its hardware table read them; model names are in
:mod:`mammolibs.models.catalog`).
"""

STAGE_NAMES = {
    "encoder": "self-supervised encoder of the segmentation model (contrastive views of patches)",
    "autoencoder": "denoising autoencoder with an image-class head, from the encoder",
    "finetune": "U-Net lesion segmentation on lesion-balanced patches, from the autoencoder",
    "classifier": "lesion snips scored normal, benign, malignant by the autoencoder's encoder and a head",
    "whole_image": "baseline: ResNet on whole images, benign vs malignant",
}

RECIPE = ("encoder", "autoencoder", "finetune", "classifier")
"""The default recipe's stages, in order: each pipeline training step is one of them."""
