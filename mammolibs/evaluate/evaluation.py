"""``mammo evaluate``: score the deployed chain (U-Net finds lesions, the classifier scores them) on held-out
patients of one or several shard sets, overall and per source.

1. The operating point is chosen on the validation split (of ``--calibrate-on``, default the data
   scored): the U-Net threshold with the best mean Dice, then the malignancy threshold giving the
   target specificity (malignant vs the rest, per image). It is stored with the classifier.
2. The scored split gets, per source and overall: segmentation (Dice, IoU per lesion image; normal
   images with a finding), detection (FROC), image-level classification end to end (the malignancy
   of an image's most lesion-like finding: malignant vs rest and vs benign) and lesion-level
   classification (snips cut from the true masks), with bootstrap 95% intervals.

The three-class calls (normal: no finding; malignant: at the malignancy threshold; benign: the rest)
get a confusion matrix and a classification report (precision, recall, F1 per class, accuracy); Dice is
given per class too, and its spread in a histogram.

Writes ``metrics.json``, ``operating_point.json``, ``roc.json``, ``roc.png``, ``dice-histogram.png``,
``segmentation-<source>.png`` and ``report.html`` under ``--out``.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from mammolibs import storage
from mammolibs.data.shard_set import ShardSet
from mammolibs.data.shards import StandardSample, stack_images
from mammolibs.data.snips import make_snips
from mammolibs.data.views import is_segmentable
from mammolibs.evaluate.metrics import (
    binary_metrics,
    classification_report,
    froc,
    overlap_per_image,
    roc_points,
    small_sample_warning,
    summarize,
    threshold_at_specificity,
)
from mammolibs.evaluate.plots import save_dice_histogram, save_roc, save_segmentation_sheet, save_tradeoff
from mammolibs.evaluate.report import html_report
from mammolibs.inference import NOTE
from mammolibs.inference.checkpoints import load_detector
from mammolibs.inference.detector import Detector, class_probabilities
from mammolibs.inference.operating_point import (
    LESION_THRESHOLDS,
    OPERATING_POINT,
    UNET_THRESHOLDS,
    operating_point_url,
)
from mammolibs.models import SNIP_CLASSES

log = logging.getLogger(__name__)

SAFE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,40}")
SHEET_IMAGES = 8
"""Lesion images per source on the segmentation sheets."""


@dataclass
class ImageRecord:
    """What the chain made of one image, and the truth, for the figures of any group of images."""

    source: str
    label: str
    localized: bool
    scanner: str = ""  # the scanner's model where the source names it (a closed vocabulary), else ""
    dice: float | None = None  # lesion images only
    iou: float | None = None
    findings: int = 0
    malignancy: float = 0.0
    lesion_scores: list[float] = field(default_factory=list)  # per true lesion: best overlapping finding, NaN if missed
    false_scores: list[float] = field(default_factory=list)  # findings that overlap no lesion

    def call(self, threshold: float) -> str:
        """The chain's three-class call: malignant at a malignancy of at least ``threshold`` (as the
        malignant-vs-rest call), else benign where a finding is left, else normal."""
        return "malignant" if self.malignancy >= threshold else "benign" if self.findings else "normal"


def data_image_size(shard_sets: list[ShardSet]) -> int:
    """The image side shared by every shard set; sets standardized at different sizes are refused."""
    sizes = {data.url: data.image_size for data in shard_sets}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"shard sets of different image sizes {sizes}; standardize them with one --image-size")
    return next(iter(sizes.values()))


def modalities(samples: list[StandardSample]) -> list[str]:
    return [s.meta.get("modality", "MG") for s in samples]


def read_split(shard_sets: list[ShardSet], split: str) -> list[StandardSample]:
    return [s for data in shard_sets for s in data.samples(split)]


def score_images(
    detector: Detector,
    samples: list[StandardSample],
    batch_size: int = 16,
    sheet: dict | None = None,
    progress: bool = False,
) -> list[ImageRecord]:
    """Run the chain on every labelled sample; ``sheet`` collects (image, truth, prediction) of the
    first lesion images of each source for the pictures."""
    labelled = [s for s in samples if s.label in SNIP_CLASSES]
    records = []
    for start in tqdm(range(0, len(labelled), batch_size), desc="score images", disable=not progress):
        batch = labelled[start : start + batch_size]
        for sample, (_, labels, findings, malignancy) in zip(
            batch, detector.find(stack_images(batch), modalities(batch))
        ):
            record = ImageRecord(
                sample.meta["source"],
                sample.label,
                is_segmentable(sample.meta),
                scanner=str(sample.meta.get("scanner", "")),
                findings=len(findings),
                malignancy=malignancy,
            )
            if record.localized:
                _score_localization(record, sample.lesions > 0, labels, [f.score for f in findings])
                if sheet is not None and sample.label != "normal" and len(sheet[record.source]) < SHEET_IMAGES:
                    sheet[record.source].append((sample.image, sample.lesions > 0, labels > 0))
            records.append(record)
    return records


def _score_localization(record: ImageRecord, truth: np.ndarray, labels: np.ndarray, scores: list[float]) -> None:
    """Dice/IoU of the findings against the truth, and which findings hit which true lesion."""
    if truth.any():
        dice, iou = overlap_per_image((labels > 0)[None], truth[None])
        record.dice, record.iou = float(dice[0]), float(iou[0])
    lesions, count = ndimage.label(truth)
    hits = np.bincount(labels[truth], minlength=len(scores) + 1)  # pixels of each finding inside a lesion
    record.false_scores = [s for number, s in enumerate(scores, start=1) if hits[number] == 0]
    for lesion in range(1, count + 1):
        overlapping = np.unique(labels[lesions == lesion])
        record.lesion_scores.append(max((scores[n - 1] for n in overlapping if n), default=float("nan")))


def group_metrics(
    records: list[ImageRecord], snips: tuple[np.ndarray, np.ndarray] | None, threshold: float, seed: int
) -> dict:
    """Every figure of one group of images (a source, or all of them)."""
    lesion = [r for r in records if r.localized and r.label != "normal"]
    normal = [r for r in records if r.localized and r.label == "normal"]
    segmentation = {
        "lesion_images": len(lesion),
        "dice": summarize([r.dice for r in lesion if r.dice is not None], seed),
        "dice_by_class": {
            label: summarize([r.dice for r in lesion if r.label == label and r.dice is not None], seed)
            for label in SNIP_CLASSES[1:]
        },
        "iou": summarize([r.iou for r in lesion if r.iou is not None], seed),
        "normal_images": len(normal),
        "normal_images_with_findings": float(np.mean([r.findings > 0 for r in normal])) if normal else None,
    }
    if len(normal) < 10 and normal:
        segmentation["warning"] = f"small sample ({len(normal)} normal images): the share of false findings is rough"
    localized = [r for r in records if r.localized]
    detection = froc(
        [s for r in localized for s in r.lesion_scores], [s for r in localized for s in r.false_scores], len(localized)
    )
    malignancy = np.array([r.malignancy for r in records])
    malignant = np.array([r.label == "malignant" for r in records])
    lesional = np.array([r.label != "normal" for r in records], dtype=bool)
    result = {
        "images": len(records),
        "segmentation": segmentation,
        "detection": detection,
        "image_level": {
            "malignant_vs_rest": binary_metrics(malignancy, malignant, threshold, seed),
            "malignant_vs_benign": binary_metrics(
                malignancy[lesional], malignant[lesional], threshold, seed, names=("benign", "malignant")
            ),
            "three_class": classification_report(
                [r.label for r in records], [r.call(threshold) for r in records], SNIP_CLASSES
            ),
        },
        "lesion_level": None,
    }
    if detection["lesions"] and (
        warning := small_sample_warning(
            {"negatives": len(localized), "positives": detection["lesions"]}, ("images", "lesions")
        )
    ):
        detection["warning"] = warning
    if snips is not None:
        result["lesion_level"] = binary_metrics(snips[0], snips[1], threshold, seed)
    return result


def snip_scores(
    detector: Detector, samples: list[StandardSample], seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per source: malignancy of snips cut from the true masks (lesions and normal tissue), and the truth."""
    by_source: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if detector.snip_size is None:
        return by_source
    for source in sorted({s.meta["source"] for s in samples}):
        snips = make_snips([s for s in samples if s.meta["source"] == source], size=detector.snip_size, seed=seed)
        if snips:
            scores = class_probabilities(detector.classifier, np.stack([s for s, _ in snips]))
            by_source[source] = (
                scores[:, SNIP_CLASSES.index("malignant")],
                np.array([label == SNIP_CLASSES.index("malignant") for _, label in snips]),
            )
    return by_source


KEEP_LESIONS = 0.9
"""Share of the validation lesions the U-Net finds that the confidence gate must keep."""


def choose_thresholds(detector: Detector, samples: list[StandardSample], keep: float = KEEP_LESIONS) -> dict:
    """Set, and return, the U-Net threshold (:data:`UNET_THRESHOLDS`) with the best mean Dice over the lesion images of
    ``samples`` (ties: nearer 0.5), then the highest lesion threshold on the findings' confidence
    (:data:`LESION_THRESHOLDS`) that still keeps ``keep`` of the true lesions found there: the fewest
    normal images flagged at nearly unchanged sensitivity. It stays 0 without a lesion found."""
    localized = [s for s in samples if is_segmentable(s.meta)]
    normal = np.array([s.label == "normal" for s in localized], dtype=bool)
    if normal.all():
        return {"unet_threshold": 0.5, "lesion_threshold": 0.0}
    images, kinds = stack_images(localized), modalities(localized)
    truth = np.stack([s.lesions > 0 for s in localized])
    maps = detector.segment(images, kinds)
    dice = {t: overlap_per_image(maps[~normal] > t, truth[~normal])[0].mean() for t in UNET_THRESHOLDS}
    detector.unet_threshold = max(UNET_THRESHOLDS, key=lambda t: (dice[t], -abs(t - 0.5)))
    detector.lesion_threshold = 0.0
    found = detector.find(images, kinds, maps=maps)
    hits = []  # per finding: (lesion probability, the (image, lesion) pairs it overlaps)
    for index, (_, labels, image_findings, _) in enumerate(found):
        lesions = ndimage.label(truth[index])[0]
        hits += [
            (f.confidence, {(index, n) for n in np.unique(lesions[labels == number]) if n})
            for number, f in enumerate(image_findings, start=1)
        ]

    def found_lesions(threshold: float) -> int:
        return len(set().union(*(hit for p, hit in hits if p >= threshold)))

    def kept_at(threshold: float) -> np.ndarray:
        return np.stack(
            [
                np.isin(labels, [n for n, f in enumerate(image_findings, start=1) if f.confidence >= threshold])
                for _, labels, image_findings, _ in found
            ]
        )

    vetted = LESION_THRESHOLDS if found_lesions(0.0) else (0.0,)
    detector.lesion_threshold = lesion_threshold = max(
        t for t in vetted if found_lesions(t) >= keep * found_lesions(0.0)
    )
    kept = kept_at(lesion_threshold)
    lesions = sum(ndimage.label(t)[1] for t in truth[~normal])
    tradeoff = [  # what each lesion threshold would give on this split: lesions found vs normal images flagged
        {
            "lesion_threshold": t,
            "lesions_found": found_lesions(t) / lesions if lesions else None,
            "normal_images_flagged": float(kept_at(t)[normal].any(axis=(1, 2)).mean()) if normal.any() else None,
        }
        for t in vetted
    ]
    return {
        "unet_threshold": detector.unet_threshold,
        "lesion_threshold": lesion_threshold,
        "validation_dice": float(overlap_per_image(kept[~normal], truth[~normal])[0].mean()),
        "validation_normal_images_clean": float((~kept[normal].any(axis=(1, 2))).mean()) if normal.any() else None,
        "tradeoff": tradeoff,
    }


MIN_CASES = 20
"""Malignant and other images the validation split needs before a malignancy threshold is chosen on it: a
threshold set by the 90th-percentile score of a handful of cases moves with every case."""
NO_PRIOR = 0.5
"""The prior when the training data's counts are unknown: call an image malignant when its most
lesion-like finding is more likely malignant than not."""


def malignant_share(shard_sets: list[ShardSet], split: str = "train") -> float:
    """The share of malignant images among the benign and malignant ones of ``split`` of these shard sets:
    the base rate a classifier trained on them learned (:data:`NO_PRIOR` when they hold none)."""
    counts = [data.lesion_counts(split) for data in shard_sets]
    malignant, benign = sum(m for m, _ in counts), sum(b for _, b in counts)
    return malignant / (malignant + benign) if malignant + benign else NO_PRIOR


def choose_operating_point(
    detector: Detector, samples: list[StandardSample], target_specificity: float, prior: float = NO_PRIOR
) -> dict:
    """Set the detector's U-Net and lesion thresholds by :func:`choose_thresholds` on ``samples``, then
    find the malignancy threshold with ``target_specificity`` per image. With fewer than :data:`MIN_CASES`
    malignant or other images the threshold is ``prior`` instead (documented: the training data's share of
    malignant lesions, :func:`malignant_share`, so that an image is called malignant when its finding is more
    likely malignant than the base rate says); ``malignancy_threshold_from`` says which."""
    lesion = [s for s in samples if is_segmentable(s.meta) and s.label != "normal"]
    point = {
        **choose_thresholds(detector, samples),
        "malignancy_threshold": prior,
        "target_specificity": target_specificity,
    }
    records = score_images(detector, samples)
    malignant = np.array([r.label == "malignant" for r in records], dtype=bool)
    cases = {"malignant": int(malignant.sum()), "other": int((~malignant).sum())}
    chosen = threshold_at_specificity(np.array([r.malignancy for r in records]), malignant, target_specificity)
    if chosen is not None and min(cases.values()) >= MIN_CASES:
        point["malignancy_threshold"] = chosen
        point["malignancy_threshold_from"] = f"validation split: {target_specificity:.0%} specificity"
    else:
        point["malignancy_threshold_from"] = (
            f"prior {prior:.3f} (the training data's share of malignant lesions): the validation split has "
            f"{cases['malignant']} malignant and {cases['other']} other images, fewer than {MIN_CASES} of a class"
        )
        log.warning(
            "malignancy threshold: %s; widen the validation split to choose it there",
            point["malignancy_threshold_from"],
        )
    point["chosen_on"] = {"images": len(records), "malignant": cases["malignant"], "lesion_images": len(lesion)}
    if not lesion:
        log.warning("the validation split lacks lesion images: the U-Net threshold stays 0.5")
    return point


def evaluate(
    data: list[str] | str,
    unet_url: str,
    classifier_url: str,
    out: str,
    split: str = "test",
    calibrate_on: list[str] | None = None,
    target_specificity: float = 0.9,
    seed: int = 0,
    save_operating_point: bool = True,
    progress: bool = False,
) -> dict:
    """Score the chain on ``split`` of the shard sets ``data``; return and write the figures (see the module)."""
    data = [data] if isinstance(data, str) else list(data)
    calibrate_on = list(calibrate_on or data)
    opened = {url: ShardSet.open(url) for url in dict.fromkeys(data + calibrate_on)}  # each set read once
    scored_sets, calibration_sets = [opened[url] for url in data], [opened[url] for url in calibrate_on]
    detector, unet_checkpoint, classifier_checkpoint = load_detector(
        unet_url, classifier_url, data_image_size(list(opened.values()))
    )
    samples = read_split(scored_sets, split)
    if not any(s.label in SNIP_CLASSES for s in samples):
        raise ValueError(
            f"{', '.join(data)}: split '{split}' has no labelled image; standardize more patients or pass --split val"
        )
    point = choose_operating_point(
        detector, read_split(calibration_sets, "val"), target_specificity, malignant_share(calibration_sets)
    )
    point.update(calibrated_on=calibrate_on, unet=unet_checkpoint["url"], classifier=classifier_checkpoint["url"])
    sheet: dict = defaultdict(list)
    records = score_images(detector, samples, sheet=sheet, progress=progress)
    snips = snip_scores(detector, samples, seed)
    threshold = point["malignancy_threshold"]
    sources = sorted({r.source for r in records})
    all_snips = (
        (np.concatenate([snips[s][0] for s in snips]), np.concatenate([snips[s][1] for s in snips])) if snips else None
    )
    metrics = {
        "split": split,
        "data": data,
        "samples": len(samples),
        "operating_point": point,
        "overall": group_metrics(records, all_snips, threshold, seed),
        "sources": {
            s: group_metrics([r for r in records if r.source == s], snips.get(s), threshold, seed) for s in sources
        },
        "scanners": {  # where sources name their scanners: does the chain keep working on each?
            f"{s} {scanner}": group_metrics(
                [r for r in records if (r.source, r.scanner) == (s, scanner)], None, threshold, seed
            )
            for s, scanner in sorted({(r.source, r.scanner) for r in records if r.scanner})
        },
        "unet": _describe(unet_checkpoint),
        "classifier": _describe(classifier_checkpoint),
        "note": NOTE,
    }
    storage.write_text_atomic(storage.join(out, "metrics.json"), json.dumps(metrics, indent=2))
    storage.write_text_atomic(storage.join(out, OPERATING_POINT), json.dumps(point, indent=2))
    if save_operating_point:
        storage.write_text_atomic(operating_point_url(classifier_checkpoint["url"]), json.dumps(point, indent=2))
    storage.write_text_atomic(
        storage.join(out, "report.html"), html_report(metrics, _pictures(records, sheet, point, out))
    )
    return metrics


def _describe(checkpoint: dict) -> dict:
    return {
        "url": checkpoint["url"],
        "stage": checkpoint["stage"],
        "epoch": checkpoint.get("epoch"),
        "step": checkpoint.get("step"),
        "validation": checkpoint.get("validation", {}),
    }


def _pictures(records: list[ImageRecord], sheet: dict, point: dict, out: str) -> dict[str, bytes]:
    """ROC curves per source (image level, malignant vs rest), the validation trade-off of lesions found
    against normal images flagged with the operating point on it, and a segmentation sheet per source."""
    pictures = {}
    curves = {}
    for source in ["all", *sorted({r.source for r in records})]:
        group = [r for r in records if source in ("all", r.source)]
        positives = np.array([r.label == "malignant" for r in group], dtype=bool)
        if 0 < positives.sum() < len(group):
            curves[source] = (np.array([r.malignancy for r in group]), positives)
    if "all" in curves:
        storage.write_text_atomic(storage.join(out, "roc.json"), json.dumps(roc_points(*curves["all"])))
        drawn = curves if len(curves) > 2 else {"all": curves["all"]}  # one source: its curve is the "all" one
        pictures["roc.png"] = save_roc(drawn, storage.join(out, "roc.png"))
    dice = {label: [r.dice for r in records if r.label == label and r.dice is not None] for label in SNIP_CLASSES[1:]}
    if any(dice.values()):
        pictures["dice-histogram.png"] = save_dice_histogram(dice, storage.join(out, "dice-histogram.png"))
    if any(
        p["lesions_found"] is not None and p["normal_images_flagged"] is not None for p in point.get("tradeoff", [])
    ):
        pictures["tradeoff.png"] = save_tradeoff(point, storage.join(out, "tradeoff.png"))
    for number, (source, tiles) in enumerate(sorted(sheet.items())):
        name = f"segmentation-{source if SAFE_NAME.fullmatch(source) else number}.png"  # a name from data, checked
        images, truths, predictions = (list(column) for column in zip(*tiles))
        pictures[name] = save_segmentation_sheet(images, truths, predictions, storage.join(out, name))
    return pictures
