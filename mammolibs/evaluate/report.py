"""The evaluation as one self-contained HTML page: metrics, confusion matrix and pictures inline."""
from __future__ import annotations

import base64
import html

CAPTIONS = {
    "roc.png": "ROC curve of the classifier's malignancy score, per snip.",
    "segmentation.png": "Lesion images of the split: truth outlined in green, the U-Net's prediction in red.",
}


def html_report(metrics: dict, pictures: dict[str, bytes]) -> str:
    """A page that Kubeflow and Vertex AI show as the run's HTML artifact, and any browser opens."""
    seg, cls = metrics["segmentation"], metrics["classification"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>mammoflow evaluation</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #bbb;padding:.3em .8em;text-align:right}th{background:#eee}"
        ".note{color:#a00}</style></head><body>",
        "<h1>mammoflow evaluation</h1>",
        f"<p>{metrics['samples']} images of the <b>{html.escape(metrics['split'])}</b> split (patients never seen in "
        "training).</p>",
        "<p class='note'>Research software, not a medical device: not for diagnosis.</p>",
        "<h2>Segmentation (U-Net)</h2>", _table(seg),
        "<h2>Lesion classification (ResNet on snips, malignant vs rest)</h2>",
        _table({k: v for k, v in cls.items() if k != "confusion_matrix"}),
        _confusion(cls["confusion_matrix"]),
    ]
    for name, png in pictures.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(f"<figure><img alt='{name}' src='data:image/png;base64,{data}' style='max-width:100%'>"
                     f"<figcaption>{html.escape(CAPTIONS.get(name, name))}</figcaption></figure>")
    parts.append(f"<p>U-Net: {html.escape(str(metrics['unet']))}<br>classifier: "
                 f"{html.escape(str(metrics['classifier']))}</p></body></html>")
    return "\n".join(parts)


def _table(values: dict) -> str:
    rows = "".join(f"<tr><th>{html.escape(name.replace('_', ' '))}</th><td>{_number(value)}</td></tr>"
                   for name, value in values.items())
    return f"<table>{rows}</table>"


def _number(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def _confusion(confusion: dict) -> str:
    """Rows: the truth; columns: the classifier's call at a malignancy score of 0.5."""
    categories = [html.escape(c) for c in confusion["categories"]]
    header = "<tr><th>truth \\ called</th>" + "".join(f"<th>{c}</th>" for c in categories) + "</tr>"
    rows = "".join(f"<tr><th>{c}</th>" + "".join(f"<td>{n}</td>" for n in row) + "</tr>"
                   for c, row in zip(categories, confusion["matrix"]))
    return f"<table>{header}{rows}</table><p>Confusion matrix at a malignancy score of 0.5.</p>"
