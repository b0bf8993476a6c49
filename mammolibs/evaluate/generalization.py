"""``mammo generalize``: does a model work on a dataset it never saw?

Takes one shard set per source, or sets holding several sources (split apart here); sources without
labels (pretraining data) are left out. Trains the recipe on each source alone, on all sources, and
on all sources but one (when there are three or more; with two, "all but X" is the other source
alone), then scores every trained model on the test split of every source, its operating point
chosen on its own training data's val split. Fills the matrix "trained on X -> scored on Y" and the
leave-one-source-out row, and writes ``generalization.json`` and ``generalization.html`` (matrices,
each run's report beside them).
"""

from __future__ import annotations

import html
import json
import logging
import re

from mammolibs import storage
from mammolibs.data.folds import write_source
from mammolibs.data.merge import merge_shard_sets
from mammolibs.data.shard_set import ShardSet
from mammolibs.evaluate.evaluation import evaluate
from mammolibs.evaluate.report import figure, page, table
from mammolibs.inference import NOTE
from mammolibs.models import SNIP_CLASSES
from mammolibs.train.recipe import train_recipe

log = logging.getLogger(__name__)

SOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,40}")
FIGURES = {
    "Dice": ("segmentation", "dice", "mean"),
    "AUROC malignant vs rest": ("image_level", "malignant_vs_rest", "auroc"),
    "sensitivity at the operating point": ("image_level", "malignant_vs_rest", "sensitivity"),
    "specificity at the operating point": ("image_level", "malignant_vs_rest", "specificity"),
}


def per_source(shard_sets: list[str], out: str) -> dict[str, str]:
    """Source name -> a shard set of that source alone: a one-source set as it is, the sources of a
    mixed one copied apart under ``out/data/<source>``. Names are checked: they become folder names."""
    urls: dict[str, str] = {}
    for url in shard_sets:
        manifest = ShardSet.open(url).manifest
        sources = sorted(manifest["counts"]["source"])
        for source in sources:
            if not _labelled(manifest, source):
                log.info("%s: source %s has no labelled image (pretraining data): not in the matrix", url, source)
                continue
            if not SOURCE_NAME.fullmatch(source):
                raise ValueError(f"{url}: source name {source!r} is not a plain name ([a-z0-9_-])")
            if source in urls:
                raise ValueError(f"source {source!r} is in two shard sets: {urls[source]} and {url}")
            urls[source] = url if len(sources) == 1 else storage.join(out, "data", source)
            if len(sources) > 1:
                write_source(url, urls[source], source)
    return urls


def _labelled(manifest: dict, source: str) -> bool:
    return any(
        label in SNIP_CLASSES
        for sources in manifest["counts_by_split_source_label"].values()
        for label in sources.get(source, {})
    )


def training_sets(sources: list[str]) -> dict[str, tuple[str, ...]]:
    """Name -> the sources it trains on: each alone, all, and all but one (three or more sources)."""
    sets: dict[str, tuple[str, ...]] = {name: (name,) for name in sources}
    if len(sources) > 1:
        sets["all"] = tuple(sources)
    if len(sources) > 2:
        sets.update({f"all-but-{name}": tuple(s for s in sources if s != name) for name in sources})
    return sets


def generalization(
    shard_sets: list[str], out: str, schedule: dict[str, dict], split: str = "test", seed: int = 0
) -> dict:
    """Train and score every training set (see the module); returns the matrices."""
    urls = per_source(shard_sets, out)
    if not urls:
        raise ValueError(f"{', '.join(shard_sets)}: no source with labelled images to train and score on")
    sources = sorted(urls)
    results = {}
    for name, members in training_sets(sources).items():
        data = urls[members[0]] if len(members) == 1 else storage.join(out, "data", name)
        if len(members) > 1:
            merge_shard_sets([urls[m] for m in members], data, progress=False)
        models = train_recipe(data, storage.join(out, "runs", name), schedule)
        metrics = evaluate(
            [urls[s] for s in sources],
            models["unet"],
            models["classifier"],
            storage.join(out, "evaluations", name),
            split=split,
            calibrate_on=[data],
            seed=seed,
        )
        results[name] = {
            "trained_on": list(members),
            "seconds": models["seconds"],
            "sources": metrics["sources"],
            "operating_point": metrics["operating_point"],
        }
    matrices = {
        name: {
            trained: {s: figure(result["sources"].get(s), path) for s in sources} for trained, result in results.items()
        }
        for name, path in FIGURES.items()
    }
    unseen = {
        name: {s: matrix[_without(s, sources)][s] for s in sources if _without(s, sources) in matrix}
        for name, matrix in matrices.items()
    }
    summary = {
        "sources": sources,
        "split": split,
        "matrices": matrices,
        "leave_one_source_out": unseen,
        "runs": results,
        "note": NOTE,
    }
    storage.write_text_atomic(storage.join(out, "generalization.json"), json.dumps(summary, indent=2))
    storage.write_text_atomic(storage.join(out, "generalization.html"), matrix_page(summary))
    return summary


def _without(source: str, sources: list[str]) -> str:
    """The training set of every source but ``source``."""
    rest = [s for s in sources if s != source]
    return rest[0] if len(rest) == 1 else f"all-but-{source}"


def matrix_html(summary: dict) -> str:
    """The matrices as HTML tables: rows trained on, columns scored on; the unseen-source row last."""
    parts = []
    for name, matrix in summary["matrices"].items():
        rows = {
            f"trained on {trained}": {f"scored on {s}": _text(v) for s, v in cells.items()}
            for trained, cells in matrix.items()
        }
        rows["never saw it (leave one source out)"] = {
            f"scored on {s}": _text(summary["leave_one_source_out"][name].get(s)) for s in summary["sources"]
        }
        parts.append(f"<h3>{html.escape(name)}</h3>{table(rows)}")
    return "\n".join(parts)


def matrix_page(summary: dict) -> str:
    return page(
        "mammoflow generalization",
        (
            "<h1>Generalization across datasets</h1>"
            f"<p>Each model trained on the sources of its row and scored on the {html.escape(summary['split'])} split "
            "of each column's source; thresholds chosen on the val split of its own training data. Full reports: "
            + ", ".join(
                f"<a href='evaluations/{html.escape(name)}/report.html'>trained on {html.escape(name)}</a>"
                for name in summary["runs"]
            )
            + f".</p><p class='note'>{NOTE}</p>{matrix_html(summary)}"
        ),
    )


def _text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
