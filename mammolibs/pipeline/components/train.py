"""The training stages (``mammo train STAGE``) of the recipe's steps, each handing the next its run
folder as a Model. ``placement``: the step's processes and machines (``hardware.StepHardware``)."""

from kfp.dsl import Dataset, Input, Model, Output

from mammolibs.pipeline.components import component


@component
def train_encoder(
    shards: Input[Dataset], recipe_step: str, epochs: int, settings: dict, placement: dict, model: Output[Model]
):
    """Self-supervised encoder pretraining (contrastive views) of ``recipe_step``: ``encoder`` (the
    U-Net's) or ``classifier_encoder`` (the snip classifier's)."""
    from mammolibs.pipeline.steps import train_stage
    from mammolibs.train.recipe import step_settings

    model.metadata.update(
        train_stage("encoder", shards, model, None, epochs, step_settings(recipe_step, settings), placement)
    )


@component
def train_autoencoder(
    shards: Input[Dataset], encoder: Input[Model], epochs: int, settings: dict, placement: dict, model: Output[Model]
):
    """Autoencoder pretraining (denoising), starting from the encoder."""
    from mammolibs.pipeline.steps import train_stage

    model.metadata.update(train_stage("autoencoder", shards, model, encoder, epochs, settings, placement))


@component
def finetune_unet(
    shards: Input[Dataset],
    autoencoder: Input[Model],
    epochs: int,
    settings: dict,
    placement: dict,
    model: Output[Model],
):
    """U-Net lesion segmentation, finetuned from the autoencoder."""
    from mammolibs.pipeline.steps import train_stage

    model.metadata.update(train_stage("finetune", shards, model, autoencoder, epochs, settings, placement))


@component
def train_classifier(
    shards: Input[Dataset], encoder: Input[Model], epochs: int, settings: dict, placement: dict, model: Output[Model]
):
    """Lesion classifier on snips cut around each lesion (and from normal tissue) as it trains, started
    from its own pretrained encoder."""
    from mammolibs.pipeline.steps import train_stage

    model.metadata.update(train_stage("classifier", shards, model, encoder, epochs, settings, placement))
