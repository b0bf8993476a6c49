"""A standardized shard set as one object: its manifest and its shard indexes read once, each checked,
and the indexes grouped by split. Every reader of a shard set opens it here (training and its loaders,
evaluation, ``mammo data inspect``, folds, ``mammo generalize``, the pipeline's steps)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from tqdm import tqdm

from mammolibs import storage
from mammolibs.data.manifest import read_manifest
from mammolibs.data.shards import StandardSample, committed_shards, iter_shard
from mammolibs.data.validate import SPLITS


@dataclass(frozen=True)
class ShardSet:
    url: str
    manifest: dict
    indexes: dict[str, list[dict]]  # split -> the index of each shard the manifest lists, in name order

    @classmethod
    def open(cls, url: str) -> ShardSet:
        """Read the manifest and every index of the set at ``url``; a shard the manifest lists without
        an index is named in the error."""
        manifest = read_manifest(url)
        listed = {s["name"]: s["split"] for s in manifest["shards"]}
        found = {s["name"]: s for s in committed_shards(url) if s["name"] in listed}
        missing = sorted(set(listed) - set(found))
        if missing:
            raise FileNotFoundError(
                f"{url}: shards {missing} are in the manifest but have no index; "
                "rerun 'mammo standardize' on the same output to repair it"
            )
        indexes = {split: [found[n] for n in sorted(found) if listed[n] == split] for split in SPLITS}
        return cls(url, manifest, indexes)

    @property
    def image_size(self) -> int:
        return self.manifest["image_size"]

    @property
    def counts(self) -> dict:
        """Samples per split, label and source (the manifest's ``counts``)."""
        return self.manifest["counts"]

    def shards(self, split: str) -> list[dict]:
        """The indexes of the shards of ``split``."""
        return self.indexes[split]

    def all_shards(self) -> list[dict]:
        """The indexes of every shard of the set, in name order."""
        return sorted((index for split in SPLITS for index in self.indexes[split]), key=lambda index: index["name"])

    def shard_url(self, index: dict) -> str:
        """Where the shard of ``index`` lies: its checked name joined under the set's URL."""
        return storage.join(self.url, index["name"])

    def iter_samples(self, split: str, progress: bool = False) -> Iterator[StandardSample]:
        """The decoded samples of ``split``, shard by shard in name order."""
        for index in tqdm(self.shards(split), desc=f"read {split} shards", disable=not progress):
            yield from iter_shard(self.shard_url(index))

    def samples(self, split: str, progress: bool = False) -> list[StandardSample]:
        """All samples of ``split``, decoded into memory (evaluation; training streams instead)."""
        return list(self.iter_samples(split, progress))

    def lesion_counts(self, split: str = "train") -> tuple[int, int]:
        """(malignant, benign) images of ``split``: the base rate a classifier trained on it learned."""
        sources = self.manifest["counts_by_split_source_label"].get(split, {})
        return (
            sum(labels.get("malignant", 0) for labels in sources.values()),
            sum(labels.get("benign", 0) for labels in sources.values()),
        )
