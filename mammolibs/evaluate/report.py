"""The evaluation as one self-contained HTML page: figures per source, operating point, confusion
matrix, pictures inline; and :func:`headline`, the row of key figures the comparison, the
generalization matrix and the quality benchmark all print."""

from __future__ import annotations

import base64
import html

from mammolibs.inference import NOTE

IMAGE_MALIGNANCY = "the malignancy of the image's most lesion-like finding, 0 without any"
"""How the chain scores an image (:func:`mammolibs.inference.detector.image_malignancy`), as reports say it."""
CAPTIONS = {
    "roc.png": f"ROC curves of the image-level malignancy ({IMAGE_MALIGNANCY}), per source.",
    "dice-histogram.png": "Dice of each lesion image, benign and malignant stacked: the spread behind the mean.",
    "tradeoff.png": "Validation split: lesions found against normal images with a finding, for each lesion threshold "
    "of the snip classifier (numbers); the operating point circled.",
}
STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #bbb;padding:.3em .8em;text-align:right}th{background:#eee}.note{color:#a00}"
)


def page(title: str, body: str) -> str:
    """A self-contained HTML page in the reports' style; ``body`` is HTML."""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>"
    )


def figure(group: dict | None, path: tuple[str, ...]) -> float | None:
    """The number at ``path`` in a group of ``metrics.json`` (e.g. ``("segmentation", "dice", "mean")``),
    ``None`` where it is undefined or missing."""
    for key in path:
        if not isinstance(group, dict):
            return None
        group = group.get(key)
    return group if isinstance(group, (int, float)) and not isinstance(group, bool) else None


def _interval(summary: dict | None) -> str:
    if not summary or summary.get("mean") is None:
        return "n/a"
    ci = summary.get("ci95")
    return f"{summary['mean']:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def _auroc(figures: dict | None) -> str:
    if not figures or figures.get("auroc") is None:
        return "n/a"
    ci = figures.get("auroc_ci95")
    return f"{figures['auroc']:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def headline(group: dict) -> dict[str, str]:
    """The key figures of one group of images (a source, or all), formatted: column -> text."""
    seg, image = group["segmentation"], group["image_level"]["malignant_vs_rest"]
    froc = group["detection"]["points"]
    return {
        "images": str(group["images"]),
        "Dice [95% CI]": _interval(seg["dice"]),
        "IoU": _interval(seg["iou"]).split(" ")[0],
        "normal with finding": _share(seg["normal_images_with_findings"]),
        "FROC sens @0.25/0.5/1/2 FP": "/".join(f"{froc[r]:.2f}" for r in ("0.25", "0.5", "1", "2")) if froc else "n/a",
        "AUROC malignant vs rest": _auroc(image),
        "AUROC malignant vs benign": _auroc(group["image_level"]["malignant_vs_benign"]),
        "sensitivity": _share(image["sensitivity"]),
        "specificity": _share(image["specificity"]),
        "lesion AUROC (snips)": _auroc(group.get("lesion_level")),
    }


def table(rows: dict[str, dict[str, str]], corner: str = "") -> str:
    """An HTML table of rows (name -> column -> text)."""
    if not rows:
        return "<p>nothing to show</p>"
    columns = list(next(iter(rows.values())))
    head = f"<tr><th>{html.escape(corner)}</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>"
    body = "".join(
        f"<tr><th>{html.escape(name)}</th>"
        + "".join(f"<td>{html.escape(str(row.get(c, '')))}</td>" for c in columns)
        + "</tr>"
        for name, row in rows.items()
    )
    return f"<table>{head}{body}</table>"


def warnings_of(metrics: dict) -> list[str]:
    """Every small-sample warning of the evaluation, naming its group and figure."""
    found = []
    for name, group in [("all sources", metrics["overall"]), *metrics["sources"].items()]:
        for figure, values in [
            ("segmentation", group["segmentation"]),
            ("detection", group["detection"]),
            *[(f"image level, {k.replace('_', ' ')}", v) for k, v in group["image_level"].items()],
            ("lesion level", group.get("lesion_level") or {}),
        ]:
            if values.get("warning"):
                found.append(f"{name}, {figure}: {values['warning']}")
    return found


def html_report(metrics: dict, pictures: dict[str, bytes]) -> str:
    """A page that Kubeflow and Vertex AI show as the run's HTML artifact, and any browser opens."""
    point = metrics["operating_point"]
    rows = {"all sources": headline(metrics["overall"]), **{s: headline(g) for s, g in metrics["sources"].items()}}
    confusion = metrics["overall"]["image_level"]["malignant_vs_rest"]["confusion_matrix"]
    parts = [
        "<h1>mammoflow evaluation</h1>",
        f"<p>{metrics['samples']} images of the <b>{html.escape(metrics['split'])}</b> split of "
        f"{html.escape(', '.join(metrics['data']))} (patients never seen in training).</p>",
        f"<p class='note'>{NOTE}</p>",
        "<h2>Figures per source</h2>",
        table(rows),
        "<p>Dice and IoU per image with a lesion (mean, bootstrap 95% interval); detection sensitivity at 0.25, 0.5, 1 "
        f"and 2 false findings per image; image-level AUROC of the chain's malignancy ({IMAGE_MALIGNANCY}); "
        "sensitivity and specificity at the operating point below; lesion-level AUROC on snips cut from "
        "the true masks.</p>",
        *(
            ["<h2>Figures per scanner</h2>", table({name: headline(g) for name, g in metrics["scanners"].items()})]
            if metrics.get("scanners")
            else []
        ),
        "<h2>Operating point (chosen on the validation split)</h2>",
        table(
            {
                "threshold": {
                    "U-Net probability": f"{point['unet_threshold']:.2f}",
                    "finding confidence (U-Net x snip classifier)": f"{point.get('lesion_threshold', 0.0):.2f}",
                    "malignancy": f"{point['malignancy_threshold']:.3f}",
                    "target specificity": f"{point['target_specificity']:.2f}",
                }
            }
        ),
        f"<p>Malignancy threshold from the {html.escape(point.get('malignancy_threshold_from', 'validation split'))}."
        "</p>",
        "<h2>Image-level calls, all sources</h2>",
        _confusion(confusion, _called_malignant(point["malignancy_threshold"]) + "."),
        "<h2>Three classes, all sources</h2>",
        _three_classes(metrics["overall"], point["malignancy_threshold"]),
    ]
    warnings = warnings_of(metrics)
    if warnings:
        parts.append("<h2>Small samples</h2><ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in warnings) + "</ul>")
    for name, png in pictures.items():
        data = base64.b64encode(png).decode("ascii")
        caption = CAPTIONS.get(name) or (
            f"Lesion images of {name[len('segmentation-') : -4]}: truth outlined in green, the U-Net's findings in red."
        )
        parts.append(
            f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{data}' style='max-width:100%'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    parts.append(
        f"<p>U-Net: {html.escape(str(metrics['unet']['url']))} (epoch {metrics['unet']['epoch']})<br>"
        f"classifier: {html.escape(str(metrics['classifier']['url']))} (epoch {metrics['classifier']['epoch']})"
        "</p>"
    )
    return page("mammoflow evaluation", "\n".join(parts))


def _three_classes(group: dict, threshold: float) -> str:
    """The three-class confusion matrix, the classification report and Dice by class."""
    report = group["image_level"]["three_class"]
    rows = {
        name: {
            "precision": _share(figures["precision"]),
            "recall": _share(figures["recall"]),
            "F1": _share(figures["f1"]),
            "images": str(figures["support"]),
            "Dice [95% CI]": _interval(group["segmentation"]["dice_by_class"].get(name)),
        }
        for name, figures in report["per_class"].items()
    }
    return (
        _confusion(
            report["confusion_matrix"],
            _called_malignant(threshold) + "; called benign where a finding is left below it, normal where none is.",
        )
        + table(rows, "class")
        + f"<p>Accuracy {_share(report['accuracy'])}, macro F1 {_share(report['macro_f1'])} "
        f"over {report['cases']} images.</p>"
    )


def _called_malignant(threshold: float) -> str:
    return f"Images called malignant at a malignancy of at least {threshold:.3f}"


def _confusion(confusion: dict, caption: str) -> str:
    """Rows: the truth; columns: the chain's call; ``caption`` says how the call is made."""
    categories = [html.escape(c) for c in confusion["categories"]]
    header = "<tr><th>truth \\ called</th>" + "".join(f"<th>{c}</th>" for c in categories) + "</tr>"
    rows = "".join(
        f"<tr><th>{c}</th>" + "".join(f"<td>{n}</td>" for n in row) + "</tr>"
        for c, row in zip(categories, confusion["matrix"])
    )
    return f"<table>{header}{rows}</table><p>{html.escape(caption)}</p>"
