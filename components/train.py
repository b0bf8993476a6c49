"""The training steps of the recipe (see :mod:`mammolibs.pipeline.components.train`)."""

from mammolibs.pipeline.components.train import finetune_unet, train_autoencoder, train_classifier, train_encoder

__all__ = ["finetune_unet", "train_autoencoder", "train_classifier", "train_encoder"]
