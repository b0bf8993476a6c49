"""The four training stages, each a component that hands the next its checkpoint folder."""
from kfp.dsl import Dataset, Input, Model, Output

from components import component


@component
def train_encoder(shards: Input[Dataset], settings: dict, model: Output[Model]):
    from mammolibs.pipeline.steps import train_step

    train_step("encoder", shards.path, model.path, None, settings)


@component
def train_autoencoder(shards: Input[Dataset], encoder: Input[Model], settings: dict, model: Output[Model]):
    from mammolibs.pipeline.steps import train_step

    train_step("autoencoder", shards.path, model.path, encoder.path, settings)


@component
def finetune_unet(shards: Input[Dataset], autoencoder: Input[Model], settings: dict, model: Output[Model]):
    from mammolibs.pipeline.steps import train_step

    train_step("finetune", shards.path, model.path, autoencoder.path, settings)


@component
def train_classifier(shards: Input[Dataset], settings: dict, model: Output[Model]):
    from mammolibs.pipeline.steps import train_step

    train_step("classifier", shards.path, model.path, None, settings)
