"""Standardize one source, and merge the per-source shard sets into one
(see :mod:`mammolibs.pipeline.components.standardize`)."""

from mammolibs.pipeline.components.standardize import merge_shards, standardize_source

__all__ = ["merge_shards", "standardize_source"]
