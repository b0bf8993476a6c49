"""Standardize sources (``NAME=FOLDER`` entries, folders or gs:// URLs) into shards, with ``workers`` processes."""
from kfp.dsl import Dataset, Output

from components import component


@component
def standardize(sources: list, image_size: int, workers: int, shards: Output[Dataset]):
    from mammolibs.pipeline.steps import standardize_step

    manifest = standardize_step(sources, shards.path, image_size, workers)
    shards.metadata.update(manifest["counts"])
