"""A standardized shard set as one object: its manifest and its shard indexes read once, each checked,
and the indexes grouped by split; what training and the loaders need of a set comes from here."""

from __future__ import annotations

from dataclasses import dataclass

from mammolibs.data.manifest import read_manifest
from mammolibs.data.shards import committed_shards
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

    def shards(self, split: str) -> list[dict]:
        """The indexes of the shards of ``split``."""
        return self.indexes[split]
