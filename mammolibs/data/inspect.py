"""``mammo data inspect``: what a shard set holds, as a table and as a contact sheet of samples."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

from mammolibs import storage
from mammolibs.data.shard_set import ShardSet
from mammolibs.data.validate import SPLITS
from mammolibs.pictures import overlay


def describe(manifest: dict) -> str:
    """Counts per split, source and label, with each label's share, as aligned text."""
    lines = [
        f"{manifest['written']} samples written, {manifest['rejected']} rejected, "
        f"{manifest['image_size']}x{manifest['image_size']} pixels, {len(manifest['shards'])} shards"
    ]
    total = max(1, manifest["written"])
    for split, sources in sorted(manifest["counts_by_split_source_label"].items()):
        for source, labels in sorted(sources.items()):
            counts = ", ".join(f"{label} {n}" for label, n in sorted(labels.items()))
            lines.append(f"  {split:<5} {source:<12} {counts}")
    lines.append(
        "  class balance: "
        + ", ".join(f"{label} {100 * n / total:.1f}%" for label, n in sorted(manifest["counts"]["label"].items()))
    )
    return "\n".join(lines)


def contact_sheet(data: ShardSet, out_url: str, per_group: int = 4, tile: int = 160) -> int:
    """Write a PNG with up to ``per_group`` samples of each (source, label), masks outlined in red.

    Returns the number of tiles drawn.
    """
    groups: dict[tuple[str, str], list] = {}
    for split in SPLITS:
        for sample in data.iter_samples(split):
            group = groups.setdefault((sample.meta["source"], sample.label), [])
            if len(group) < per_group:
                group.append(sample)
    rows = [groups[key] for key in sorted(groups)]
    if not rows:
        raise ValueError(f"{data.url}: the shards hold no samples to show")
    sheet = Image.new("RGB", (tile * per_group, tile * len(rows)), "black")
    for row, samples in enumerate(rows):
        for column, sample in enumerate(samples):
            picture = overlay(sample.image, sample.mask > 0.5, [], []).resize((tile, tile))
            ImageDraw.Draw(picture).text(
                (3, 3), f"{sample.meta['source']} {sample.label}\n{sample.key}", fill=(0, 255, 120)
            )
            sheet.paste(picture, (column * tile, row * tile))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    storage.write_bytes_atomic(out_url, buffer.getvalue())
    return sum(len(r) for r in rows)


def inspect(data_url: str, out_url: str | None = None, per_group: int = 4) -> str:
    """Describe the shard set at ``data_url`` and write its contact sheet (default ``<data>/contact_sheet.png``)."""
    out_url = out_url or storage.join(data_url, "contact_sheet.png")
    data = ShardSet.open(data_url)
    tiles = contact_sheet(data, out_url, per_group)
    return describe(data.manifest) + f"\ncontact sheet of {tiles} samples: {out_url}"
