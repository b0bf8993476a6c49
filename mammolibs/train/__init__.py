"""One training engine for every stage; each stage only says model, data view, loss and the
validation figure that picks its best checkpoint.

:data:`STAGE_NAMES` is the one list of stages (light to import: the CLI and the pipeline read it).
"""

STAGE_NAMES = {
    "encoder": "self-supervised U-Net encoder (contrastive views)",
    "autoencoder": "denoising autoencoder, from the encoder",
    "finetune": "U-Net lesion segmentation, from the autoencoder",
    "classifier": "ResNet scoring lesion snips: normal, benign, malignant",
    "whole_image": "baseline: ResNet on whole images, benign vs malignant",
}
