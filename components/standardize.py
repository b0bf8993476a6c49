"""Standardize sources (``NAME=FOLDER`` entries) into shards."""
from kfp.dsl import Dataset, Output

from components import component


@component
def standardize(sources: list, image_size: int, shards: Output[Dataset]):
    from mammolibs.pipeline.steps import standardize_step

    manifest = standardize_step(sources, shards.path, image_size)
    shards.metadata.update(manifest["counts"])
