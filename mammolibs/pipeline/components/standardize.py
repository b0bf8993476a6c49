"""Standardize one source (a ``NAME=URL`` entry), and merge the per-source shard sets into one."""

from typing import List

from kfp.dsl import Dataset, Input, Output

from mammolibs.pipeline.components import component


@component
def standardize_source(source: str, image_size: int, workers: int, salt_file: str, shards: Output[Dataset]):
    """``mammo standardize`` of one source; its counts become the Dataset's metadata."""
    from mammolibs.pipeline.steps import standardize_source as run

    manifest = run(source, shards.path, image_size, workers, salt_file)
    shards.metadata.update({"written": manifest["written"], "rejected": manifest["rejected"], **manifest["counts"]})


@component
def merge_shards(shard_sets: Input[List[Dataset]], shards: Output[Dataset]):
    """``mammo data merge`` of the sources' shard sets."""
    from mammolibs.pipeline.steps import merge_shard_sets

    manifest = merge_shard_sets([part.path for part in shard_sets], shards.path)
    shards.metadata.update({"written": manifest["written"], "rejected": manifest["rejected"], **manifest["counts"]})
