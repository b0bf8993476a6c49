"""The figures of ``mammo evaluate``, from plain arrays: overlap, detection (FROC), classification,
operating points and bootstrap intervals.

torchmetrics computes Dice, IoU, AUROC and the ROC curve. Our own code does what it does not:
bootstrap intervals, the FROC step curve (MONAI's ``compute_froc_curve_data`` drops the
lowest-scoring detection and interpolates between points) and the threshold at a target
specificity. A figure from fewer than :data:`SMALL_SAMPLE` cases of a class carries a warning.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from numpy.typing import ArrayLike
from torchmetrics.functional.classification import binary_auroc, binary_roc, multiclass_confusion_matrix
from torchmetrics.functional.segmentation import dice_score, mean_iou

SMALL_SAMPLE = 10
"""Fewer positives (or negatives) than this and a figure says it is unreliable."""
FROC_RATES = (0.25, 0.5, 1.0, 2.0)
"""False positives per image at which detection sensitivity is reported."""
RESAMPLES = 1000


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float | None], cases: int, seed: int, resamples: int = RESAMPLES
) -> list[float] | None:
    """95% percentile interval of ``statistic(indices)`` over resamples (with replacement) of ``cases`` cases.

    Resamples where the statistic is undefined (``None``, e.g. one class only) are skipped; ``None``
    when fewer than half of them are defined. The same ``seed`` gives the same interval.
    """
    if cases < 2:
        return None
    rng = np.random.default_rng(seed)
    values = [v for indices in rng.integers(0, cases, size=(resamples, cases)) if (v := statistic(indices)) is not None]
    if len(values) < resamples // 2:
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def summarize(values: ArrayLike, seed: int) -> dict:
    """Mean, median and a bootstrap 95% interval of the mean of per-case values (``None`` when there are none)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return {"n": 0, "mean": None, "median": None, "ci95": None}
    return {
        "n": len(values),
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "ci95": bootstrap_interval(lambda idx: float(values[idx].mean()), len(values), seed),
    }


def overlap_per_image(predicted: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dice and IoU of each image, for boolean masks of shape (N, H, W) (torchmetrics, per sample).

    An image whose truth and prediction are both empty scores 1 (nothing to find, nothing found).
    """
    if len(predicted) == 0:
        return np.zeros(0), np.zeros(0)
    preds = torch.as_tensor(np.asarray(predicted), dtype=torch.long)[:, None]
    target = torch.as_tensor(np.asarray(truth), dtype=torch.long)[:, None]
    dice = (
        dice_score(
            preds, target, num_classes=1, average="micro", input_format="one-hot", aggregation_level="samplewise"
        )
        .reshape(-1)
        .numpy()
    )
    iou = mean_iou(preds, target, num_classes=1, input_format="one-hot").reshape(-1).numpy()
    both_empty = ~(preds.flatten(1).any(1) | target.flatten(1).any(1)).numpy()
    dice[both_empty], iou[both_empty] = 1.0, 1.0
    return dice.astype(np.float64), iou.astype(np.float64)


def froc(lesion_scores: ArrayLike, false_scores: ArrayLike, images: int, rates=FROC_RATES) -> dict:
    """Detection sensitivity at each number of false positives per image in ``rates``.

    Args:
        lesion_scores: for each true lesion, the highest score of the findings that overlap it,
            NaN when none does (a missed lesion).
        false_scores: the score of every finding that overlaps no true lesion.
        images: how many images the findings come from (normal images included).

    Returns ``{"lesions", "images", "false_findings", "points": {rate: sensitivity}}``: at each
    rate, the highest sensitivity of any score threshold with at most that many false positives per
    image (the FROC step curve); ``points`` is empty without lesions or images.
    """
    lesion_scores, false_scores = (
        np.asarray(lesion_scores, dtype=np.float64),
        np.asarray(false_scores, dtype=np.float64),
    )
    result = {"lesions": len(lesion_scores), "images": images, "false_findings": len(false_scores), "points": {}}
    if len(lesion_scores) == 0 or images == 0:
        return result
    thresholds = np.unique(np.concatenate([lesion_scores[~np.isnan(lesion_scores)], false_scores, [np.inf]]))
    found = (lesion_scores[None, :] >= thresholds[:, None]).sum(1) / len(lesion_scores)  # NaN >= t is False
    false_per_image = (false_scores[None, :] >= thresholds[:, None]).sum(1) / images
    result["points"] = {f"{rate:g}": float(found[false_per_image <= rate].max()) for rate in rates}
    return result


def threshold_at_specificity(scores: np.ndarray, positives: np.ndarray, specificity: float) -> float | None:
    """The lowest threshold (called positive at ``score >= threshold``) whose specificity is at least
    ``specificity``: the most sensitive such operating point. ``None`` without negatives."""
    scores, positives = np.asarray(scores, dtype=np.float64), np.asarray(positives, dtype=bool)
    negatives = scores[~positives]
    if len(negatives) == 0:
        return None
    candidates = np.unique(np.concatenate([scores, [np.nextafter(scores.max(), np.inf)]]))
    specific = [(negatives < t).mean() >= specificity for t in candidates]
    return float(candidates[np.argmax(specific)])  # candidates ascend; the last one is always specific


def binary_metrics(
    scores: np.ndarray,
    positives: np.ndarray,
    threshold: float,
    seed: int,
    names: tuple[str, str] = ("not malignant", "malignant"),
) -> dict:
    """AUROC with a bootstrap 95% interval, and sensitivity, specificity and the confusion matrix at
    ``threshold`` (called positive at ``score >= threshold``). AUROC is ``None`` when a class is absent."""
    scores, positives = np.asarray(scores, dtype=np.float64), np.asarray(positives, dtype=bool)
    called = scores >= threshold
    counts = {"positives": int(positives.sum()), "negatives": int((~positives).sum())}
    result: dict = {
        "cases": len(scores),
        **counts,
        "auroc": None,
        "auroc_ci95": None,
        "threshold": threshold,
        "sensitivity": float(called[positives].mean()) if counts["positives"] else None,
        "specificity": float((~called[~positives]).mean()) if counts["negatives"] else None,
        "confusion_matrix": {
            "categories": list(names),  # rows: truth, columns: the call
            "matrix": [
                [int((~called & ~positives).sum()), int((called & ~positives).sum())],
                [int((~called & positives).sum()), int((called & positives).sum())],
            ],
        },
    }
    if counts["positives"] and counts["negatives"]:
        result["auroc"] = auroc(scores, positives)
        result["auroc_ci95"] = bootstrap_interval(lambda idx: auroc(scores[idx], positives[idx]), len(scores), seed)
    warning = small_sample_warning(counts, names)
    if warning:
        result["warning"] = warning
    return result


def classification_report(truth: list[str], called: list[str], classes: tuple[str, ...]) -> dict:
    """The confusion matrix of ``classes`` (rows: the truth, columns: the call; torchmetrics), accuracy,
    and each class's precision, recall, F1 and support with their macro average, as in a classification
    report. A figure whose denominator is zero is ``None``, not 0."""
    index = {name: number for number, name in enumerate(classes)}
    matrix = (
        multiclass_confusion_matrix(
            torch.as_tensor([index[c] for c in called], dtype=torch.long),
            torch.as_tensor([index[t] for t in truth], dtype=torch.long),
            num_classes=len(classes),
        ).numpy()
        if truth
        else np.zeros((len(classes), len(classes)), dtype=np.int64)
    )
    per_class = {}
    for number, name in enumerate(classes):
        hits, called_as, actual = matrix[number, number], matrix[:, number].sum(), matrix[number].sum()
        precision = float(hits / called_as) if called_as else None
        recall = float(hits / actual) if actual else None
        f1 = 2 * precision * recall / (precision + recall) if precision and recall else (0.0 if actual else None)
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(actual)}
    f1s = [figures["f1"] for figures in per_class.values() if figures["f1"] is not None]
    return {
        "cases": len(truth),
        "accuracy": float(np.trace(matrix) / len(truth)) if truth else None,
        "macro_f1": float(np.mean(f1s)) if f1s else None,
        "per_class": per_class,
        "confusion_matrix": {"categories": list(classes), "matrix": matrix.astype(int).tolist()},
    }


def auroc(scores: np.ndarray, positives: np.ndarray) -> float | None:
    """Area under the ROC curve (torchmetrics); ``None`` when one class is absent."""
    if positives.all() or not positives.any():
        return None
    return float(
        binary_auroc(torch.as_tensor(scores, dtype=torch.float64), torch.as_tensor(positives, dtype=torch.long))
    )


def small_sample_warning(counts: dict[str, int], names: tuple[str, str] = ("negatives", "positives")) -> str | None:
    """A line saying which class has fewer than :data:`SMALL_SAMPLE` cases, or ``None``."""
    few = [
        f"{counts[key]} {name}" for key, name in zip(("negatives", "positives"), names) if counts[key] < SMALL_SAMPLE
    ]
    return f"small sample ({', '.join(few)}): wide uncertainty, do not rely on this figure" if few else None


def roc_points(scores: np.ndarray, positives: np.ndarray, most: int = 200) -> dict:
    """The ROC curve as lists (``fpr``, ``tpr``, ``thresholds`` in [0, 1]), thinned to at most ``most`` points."""
    fpr, tpr, thresholds = binary_roc(
        torch.as_tensor(scores, dtype=torch.float32), torch.as_tensor(positives, dtype=torch.long)
    )
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(most, len(fpr))).round().astype(int))
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(), "thresholds": thresholds[keep].clamp(0, 1).tolist()}
