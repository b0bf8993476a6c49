"""Each figure of ``mammo evaluate`` against small cases computed by hand: empty masks, no findings,
ties, one class absent; the bootstrap reproducible from its seed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mammolibs.evaluate.evaluation import ImageRecord, _score_localization, group_metrics
from mammolibs.evaluate.metrics import (
    auroc,
    binary_metrics,
    bootstrap_interval,
    classification_report,
    froc,
    overlap_per_image,
    roc_points,
    summarize,
    threshold_at_specificity,
)
from mammolibs.inference.detector import Finding, image_malignancy, regions


def masks(*pixel_lists, shape=(4, 4)) -> np.ndarray:
    out = np.zeros((len(pixel_lists), *shape), dtype=bool)
    for i, pixels in enumerate(pixel_lists):
        for r, c in pixels:
            out[i, r, c] = True
    return out


def test_dice_and_iou_per_image_by_hand():
    truth = masks([(0, 0), (0, 1), (1, 0), (1, 1)], [(2, 2)], [], [(3, 3)])
    predicted = masks([(0, 0), (0, 1), (3, 0), (3, 1)], [], [], [(3, 3)])
    dice, iou = overlap_per_image(predicted, truth)
    # 2 of 4 + 4 pixels shared: Dice 2*2/8, IoU 2/6; nothing predicted: 0; both empty: 1; identical: 1
    assert dice == pytest.approx([0.5, 0.0, 1.0, 1.0])
    assert iou == pytest.approx([1 / 3, 0.0, 1.0, 1.0])


def test_froc_step_curve_by_hand():
    # three lesions: found at 0.9 and 0.4, one missed; false findings at 0.8, 0.3 and 0.2 over 4 images
    result = froc(np.array([0.9, 0.4, np.nan]), np.array([0.8, 0.3, 0.2]), images=4, rates=(0.0, 0.25, 0.5, 1.0))
    assert result["points"] == pytest.approx({"0": 1 / 3, "0.25": 2 / 3, "0.5": 2 / 3, "1": 2 / 3})
    assert (result["lesions"], result["false_findings"], result["images"]) == (3, 3, 4)


def test_froc_ties_count_both_the_lesion_and_the_false_finding():
    result = froc(np.array([0.5]), np.array([0.5]), images=2, rates=(0.25, 0.5))
    assert result["points"] == {"0.25": 0.0, "0.5": 1.0}  # at 0.5 one false finding per two images comes along


def test_froc_without_findings_or_lesions():
    assert froc(np.array([np.nan, np.nan]), np.array([]), images=3)["points"] == {
        "0.25": 0.0,
        "0.5": 0.0,
        "1": 0.0,
        "2": 0.0,
    }
    assert froc(np.array([]), np.array([0.7]), images=3)["points"] == {}  # no lesion: sensitivity undefined


def test_threshold_at_specificity_is_the_most_sensitive_specific_one():
    negatives = np.round(np.arange(1, 11) / 10, 2)  # 0.1 ... 1.0
    scores = np.concatenate([negatives, [0.95, 0.5]])
    positives = np.array([False] * 10 + [True, True])
    threshold = threshold_at_specificity(scores, positives, 0.9)
    assert threshold == 0.95  # 9 of 10 negatives below it; 0.9 would leave only 8
    metrics = binary_metrics(scores, positives, threshold, seed=0)
    assert (metrics["specificity"], metrics["sensitivity"]) == (0.9, 0.5)
    assert metrics["confusion_matrix"]["matrix"] == [[9, 1], [1, 1]]
    assert threshold_at_specificity(np.array([0.2, 0.3]), np.array([True, True]), 0.9) is None  # no negatives


def test_threshold_above_every_score_when_all_negatives_tie_high():
    scores, positives = np.array([0.7, 0.7, 0.7]), np.array([False, False, True])
    threshold = threshold_at_specificity(scores, positives, 0.9)
    assert threshold > 0.7 and binary_metrics(scores, positives, threshold, 0)["specificity"] == 1.0


def test_auroc_by_hand_ties_and_one_class():
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True])) == pytest.approx(0.75)
    assert auroc(np.array([0.5, 0.5, 0.5, 0.5]), np.array([False, True, False, True])) == pytest.approx(0.5)
    only_positive = binary_metrics(np.array([0.2, 0.9]), np.array([True, True]), 0.5, seed=0)
    assert only_positive["auroc"] is None and only_positive["specificity"] is None
    assert only_positive["sensitivity"] == 0.5 and "2 positive" not in only_positive["warning"]
    assert "0 not malignant" in only_positive["warning"] and "2 malignant" in only_positive["warning"]


def test_small_samples_warn_and_large_ones_do_not():
    rng = np.random.default_rng(0)
    positives = np.arange(60) < 30
    large = binary_metrics(rng.random(60) + positives, positives, 1.0, seed=0)
    assert "warning" not in large and large["auroc"] > 0.5
    small = binary_metrics(rng.random(20), np.arange(20) < 3, 0.5, seed=0)
    assert "3 malignant" in small["warning"]


def test_bootstrap_is_reproducible_from_its_seed():
    values = np.random.default_rng(1).random(40)
    first = summarize(values, seed=7)
    assert first == summarize(values, seed=7)
    assert first["ci95"] != summarize(values, seed=8)["ci95"]
    low, high = first["ci95"]
    assert low < first["mean"] < high and first["median"] == pytest.approx(np.median(values))
    assert bootstrap_interval(lambda idx: None, 10, seed=0) is None  # never defined: no interval
    assert summarize([], seed=0) == {"n": 0, "mean": None, "median": None, "ci95": None}


def test_auroc_interval_skips_resamples_with_one_class():
    scores, positives = np.array([0.9, 0.1, 0.2, 0.3, 0.4]), np.array([True, False, False, False, False])
    result = binary_metrics(scores, positives, 0.5, seed=3)
    assert result["auroc"] == 1.0 and result["auroc_ci95"] == [1.0, 1.0]


def test_regions_and_matching_by_hand():
    probability = np.zeros((12, 12))
    probability[0:4, 0:4] = 0.9  # overlaps the lesion
    probability[8:12, 8:12] = 0.6  # a false finding
    probability[6, 0] = 0.95  # one pixel: below the smallest finding
    labels, findings = regions(probability, threshold=0.5)
    assert [f.area for f in findings] == [16, 16] and [f.score for f in findings] == [0.9, 0.6]
    assert labels[0, 0] == 1 and labels[9, 9] == 2 and labels[6, 0] == 0
    truth = np.zeros((12, 12), dtype=bool)
    truth[2:6, 2:6] = True  # one lesion, partly found
    truth[0, 10] = True  # a second lesion nothing finds
    record = ImageRecord("mias", "malignant", True)
    _score_localization(record, truth, labels, [f.score for f in findings])
    assert record.false_scores == [0.6]
    found, missed = sorted(record.lesion_scores, key=math.isnan)
    assert found == 0.9 and math.isnan(missed)
    assert record.dice == pytest.approx(2 * 4 / (32 + 17))


def test_group_metrics_of_normals_only_and_no_findings():
    records = [
        ImageRecord("busi", "normal", True, findings=0, malignancy=0.0),
        ImageRecord("busi", "normal", True, findings=2, malignancy=0.4, false_scores=[0.7, 0.6]),
    ]
    group = group_metrics(records, None, threshold=0.5, seed=0)
    assert group["segmentation"]["normal_images_with_findings"] == 0.5
    assert group["segmentation"]["dice"]["mean"] is None and group["detection"]["points"] == {}
    image = group["image_level"]["malignant_vs_rest"]
    assert image["auroc"] is None and image["specificity"] == 1.0 and image["sensitivity"] is None
    assert group["lesion_level"] is None


def test_three_class_calls_and_the_classification_report_by_hand():
    records = [
        ImageRecord("busi", "normal", True, findings=0, malignancy=0.1),  # called normal
        ImageRecord("busi", "normal", True, findings=1, malignancy=0.2),  # a finding left: called benign
        ImageRecord("busi", "benign", True, dice=0.8, findings=1, malignancy=0.3),  # benign
        ImageRecord("busi", "benign", True, dice=0.4, findings=1, malignancy=0.9),  # called malignant
        ImageRecord("busi", "malignant", True, dice=0.6, findings=1, malignancy=0.7),  # malignant
        ImageRecord("busi", "malignant", True, dice=0.0, findings=0, malignancy=0.1),  # missed: called normal
    ]
    group = group_metrics(records, None, threshold=0.5, seed=0)
    report = group["image_level"]["three_class"]
    assert report["confusion_matrix"] == {
        "categories": ["normal", "benign", "malignant"],
        "matrix": [[1, 1, 0], [0, 1, 1], [1, 0, 1]],  # rows: truth, columns: the call
    }
    assert report["accuracy"] == pytest.approx(3 / 6)
    normal, benign, malignant = (report["per_class"][c] for c in ("normal", "benign", "malignant"))
    assert (normal["precision"], normal["recall"], normal["support"]) == (0.5, 0.5, 2)
    assert benign["precision"] == 0.5 and benign["recall"] == 0.5 and benign["f1"] == pytest.approx(0.5)
    assert malignant["precision"] == 0.5 and malignant["recall"] == 0.5
    assert report["macro_f1"] == pytest.approx(0.5)
    by_class = group["segmentation"]["dice_by_class"]
    assert by_class["benign"]["mean"] == pytest.approx(0.6) and by_class["malignant"]["mean"] == pytest.approx(0.3)
    assert by_class["benign"]["n"] == by_class["malignant"]["n"] == 2


def test_a_class_never_called_has_no_precision_and_an_f1_of_zero():
    report = classification_report(["benign", "malignant"], ["benign", "benign"], ("normal", "benign", "malignant"))
    assert report["per_class"]["malignant"] == {"precision": None, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["per_class"]["normal"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    assert report["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)


def test_roc_points_are_thinned_and_bounded():
    rng = np.random.default_rng(0)
    malignant = rng.random(2000) < 0.3
    scores = np.clip(malignant * 0.3 + rng.random(2000) * 0.7, 0, 1)
    roc = roc_points(scores, malignant, most=50)
    assert len(roc["fpr"]) == len(roc["tpr"]) == len(roc["thresholds"]) <= 50
    assert roc["fpr"][0] == 0.0 and roc["fpr"][-1] == 1.0 and roc["tpr"][-1] == 1.0
    assert all(0.0 <= t <= 1.0 for t in roc["thresholds"])
    assert roc["fpr"] == sorted(roc["fpr"])


def test_an_image_takes_the_malignancy_of_its_most_confident_finding():
    lesion = Finding(
        box=(10, 10, 40, 40), area=700, score=0.9, probabilities={"normal": 0.1, "benign": 0.6, "malignant": 0.3}
    )
    shadow = Finding(
        box=(60, 5, 70, 15), area=60, score=0.6, probabilities={"normal": 0.7, "benign": 0.05, "malignant": 0.25}
    )
    assert lesion.malignancy == pytest.approx(1 / 3) and shadow.malignancy == pytest.approx(0.25 / 0.3)
    assert lesion.lesion_probability == pytest.approx(0.9)
    assert image_malignancy([shadow, lesion]) == pytest.approx(1 / 3)  # not the shadow's 0.83
    faint = Finding(  # the classifier finds it as lesion-like, but the U-Net is barely sure of the region
        box=(50, 50, 60, 60), area=80, score=0.6, presence=0.2, probabilities={"normal": 0.05, "malignant": 0.95}
    )
    assert faint.lesion_probability > lesion.lesion_probability and faint.confidence < lesion.confidence
    assert image_malignancy([faint, lesion]) == pytest.approx(1 / 3)
    assert image_malignancy([]) == 0.0
    assert Finding(box=(0, 0, 1, 1), area=1, score=1, probabilities={"normal": 1.0}).malignancy == 0.0
