"""``mammo evaluate``: segmentation and classification metrics on a held-out split.

Segmentation: Dice and IoU per lesion image (mean), and how often a normal image gets a finding.
Classification (malignant vs benign lesions and normal tissue, on snips cut from the truth masks):
AUROC, sensitivity, specificity and accuracy at 0.5, and sensitivity at a fixed false-positive rate.
"""
from __future__ import annotations

import json

import numpy as np
import torch
from torchmetrics.functional.classification import binary_accuracy, binary_auroc, binary_recall, binary_roc, binary_specificity
from torchmetrics.functional.segmentation import dice_score, mean_iou

from mammolibs import storage
from mammolibs.data.snips import make_snips
from mammolibs.data.views import load_samples, segmentable
from mammolibs.evaluate.inference import classify_snips, segment
from mammolibs.evaluate.plots import save_roc, save_segmentation_sheet
from mammolibs.evaluate.report import html_report
from mammolibs.models import SNIP_CLASSES
from mammolibs.train.checkpoints import load_model


def segmentation_metrics(probabilities: np.ndarray, masks: np.ndarray, labels: list[str]) -> dict:
    """Dice/IoU over images with lesions; the share of normal images with any predicted lesion pixel."""
    predicted = torch.as_tensor(probabilities > 0.5, dtype=torch.long)[:, None]
    truth = torch.as_tensor(masks > 0.5, dtype=torch.long)[:, None]
    lesion = torch.tensor([label != "normal" for label in labels], dtype=torch.bool)
    result: dict = {"lesion_images": int(lesion.sum()), "normal_images": int((~lesion).sum())}
    if lesion.any():
        dice = dice_score(predicted[lesion], truth[lesion], num_classes=1, average="micro", input_format="one-hot")
        iou = mean_iou(predicted[lesion], truth[lesion], num_classes=1, input_format="one-hot")
        result.update(dice=float(dice.mean()), iou=float(iou.mean()))
    if (~lesion).any():
        result["normal_images_with_findings"] = float(predicted[~lesion].flatten(1).any(dim=1).float().mean())
    return result


def classification_metrics(malignancy: np.ndarray, is_malignant: np.ndarray, fixed_fpr: float = 0.1) -> dict:
    """Binary metrics with malignant as the positive class; AUROC is ``None`` when one class is absent."""
    scores, target = torch.as_tensor(malignancy, dtype=torch.float32), torch.as_tensor(is_malignant, dtype=torch.long)
    result = {
        "snips": len(target), "malignant_snips": int(target.sum()),
        "accuracy": float(binary_accuracy(scores, target)), "sensitivity": float(binary_recall(scores, target)),
        "specificity": float(binary_specificity(scores, target)), "auroc": None,
        f"sensitivity_at_fpr_{fixed_fpr:g}": None,
    }
    predicted = scores > 0.5  # as torchmetrics thresholds for the metrics above
    result["confusion_matrix"] = {"categories": ["not malignant", "malignant"],  # rows: truth, columns: prediction
                                  "matrix": [[int((~predicted & (target == 0)).sum()), int((predicted & (target == 0)).sum())],
                                             [int((~predicted & (target == 1)).sum()), int((predicted & (target == 1)).sum())]]}
    if 0 < int(target.sum()) < len(target):
        result["auroc"] = float(binary_auroc(scores, target))
        fpr, tpr, _ = binary_roc(scores, target)
        result[f"sensitivity_at_fpr_{fixed_fpr:g}"] = float(tpr[fpr <= fixed_fpr].max())
    return result


def roc_points(malignancy: np.ndarray, is_malignant: np.ndarray, most: int = 200) -> dict:
    """The ROC curve as lists (``fpr``, ``tpr``, ``thresholds`` in [0, 1]), thinned to at most ``most`` points."""
    fpr, tpr, thresholds = binary_roc(torch.as_tensor(malignancy, dtype=torch.float32),
                                      torch.as_tensor(is_malignant, dtype=torch.long))
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(most, len(fpr))).round().astype(int))
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(), "thresholds": thresholds[keep].clamp(0, 1).tolist()}


def evaluate(data: str, unet_url: str, classifier_url: str, out: str, split: str = "test") -> dict:
    """Score both models on ``split`` of the shards at ``data``; write to ``out``: ``metrics.json``,
    ``roc.json`` and ``roc.png`` (when both classes are present), ``segmentation.png`` and ``report.html``."""
    samples = load_samples(data, split)
    if not samples:
        raise ValueError(f"{data}: split '{split}' is empty; standardize more patients or pass --split val")
    unet, _ = load_model(unet_url)
    classifier, classifier_checkpoint = load_model(classifier_url)

    with_masks = segmentable(samples)
    probabilities = segment(unet, np.stack([s.image for s in with_masks])) if with_masks else np.zeros((0, 1, 1))
    seg = segmentation_metrics(probabilities, np.stack([s.mask for s in with_masks]), [s.label for s in with_masks]) \
        if with_masks else {"lesion_images": 0, "normal_images": 0}

    snips = make_snips(samples, size=classifier_checkpoint["config"]["snip_size"], seed=1)
    scores = classify_snips(classifier, np.stack([s for s, _ in snips])) if snips else np.zeros((0, 3))
    is_malignant = np.array([label == SNIP_CLASSES.index("malignant") for _, label in snips], dtype=bool)
    cls = classification_metrics(scores[:, SNIP_CLASSES.index("malignant")], is_malignant)

    metrics = {"split": split, "samples": len(samples), "segmentation": seg, "classification": cls,
               "unet": unet_url, "classifier": classifier_url}
    storage.write_text_atomic(storage.join(out, "metrics.json"), json.dumps(metrics, indent=2))
    pictures = {}
    if cls["auroc"] is not None:
        malignancy = scores[:, SNIP_CLASSES.index("malignant")]
        storage.write_text_atomic(storage.join(out, "roc.json"), json.dumps(roc_points(malignancy, is_malignant)))
        pictures["roc.png"] = save_roc(malignancy, is_malignant, storage.join(out, "roc.png"))
    lesions = [i for i, s in enumerate(with_masks) if s.label != "normal"][:12]
    if lesions:
        pictures["segmentation.png"] = save_segmentation_sheet(
            [with_masks[i].image for i in lesions], [with_masks[i].mask > 0.5 for i in lesions],
            [probabilities[i] > 0.5 for i in lesions], storage.join(out, "segmentation.png"))
    storage.write_text_atomic(storage.join(out, "report.html"), html_report(metrics, pictures))
    return metrics

