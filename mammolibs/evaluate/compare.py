"""``mammo evaluate --compare RUN_A RUN_B ...``: several models scored on the same data, side by side.

A RUN is a folder holding ``finetune/`` and ``classifier/`` (or ``whole_image/``) stage folders, as
``mammo train`` writes them under one root, or ``UNET,CLASSIFIER`` (two checkpoints or stage folders).
"""

from __future__ import annotations

import html
import json

from mammolibs import storage
from mammolibs.evaluate.evaluation import evaluate
from mammolibs.evaluate.report import headline, page, table
from mammolibs.inference import NOTE
from mammolibs.train import serving


def parse_run(run: str) -> tuple[str, str]:
    """(U-Net URL, classifier URL) of a RUN (see the module)."""
    if "," in run:
        unet, classifier = (part.strip() for part in run.split(",", 1))
        return unet, classifier
    [unet] = serving("unet")
    for classifier in serving("classifier"):
        if storage.exists(storage.join(run, classifier)):
            return storage.join(run, unet), storage.join(run, classifier)
    raise FileNotFoundError(
        f"{run}: no {' or '.join(f'{name}/' for name in serving('classifier'))} folder there; give a folder "
        "holding the stages' --out folders, or UNET,CLASSIFIER"
    )


def compare(data: list[str], runs: list[str], out: str, **options) -> dict:
    """Evaluate each run on ``data`` into ``out/run-N/``; write ``comparison.json`` and ``comparison.html``."""
    results = {}
    for number, run in enumerate(runs, start=1):
        unet, classifier = parse_run(run)
        results[run] = evaluate(data, unet, classifier, storage.join(out, f"run-{number}"), **options)
    sources = sorted({s for metrics in results.values() for s in metrics["sources"]})
    rows = {
        f"{run} / {group}": headline(metrics["overall"] if group == "all sources" else metrics["sources"][group])
        for run, metrics in results.items()
        for group in ["all sources", *sources]
        if group == "all sources" or group in metrics["sources"]
    }
    storage.write_text_atomic(
        storage.join(out, "comparison.json"),
        json.dumps(
            {"data": data, "runs": {run: f"run-{n}" for n, run in enumerate(runs, 1)}, "figures": rows}, indent=2
        ),
    )
    body = (
        "<h1>Models side by side</h1>"
        f"<p>Scored on {html.escape(', '.join(data))}; each run's full report is in its run-N folder.</p>"
        f"<p class='note'>{NOTE}</p>{table(rows, 'run / source')}"
    )
    storage.write_text_atomic(storage.join(out, "comparison.html"), page("mammoflow comparison", body))
    return {"runs": results, "figures": rows}
