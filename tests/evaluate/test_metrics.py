"""The classifier's numbers agree with each other: confusion matrix, sensitivity, specificity, ROC points."""
from __future__ import annotations

import numpy as np
import pytest

from mammolibs.evaluate.metrics import classification_metrics, roc_points


def test_confusion_matrix_agrees_with_sensitivity_and_specificity():
    scores = np.array([0.9, 0.6, 0.5, 0.2, 0.7, 0.4, 0.1, 0.3])
    malignant = np.array([1, 1, 1, 0, 0, 0, 0, 0], dtype=bool)
    result = classification_metrics(scores, malignant)
    [[tn, fp], [fn, tp]] = result["confusion_matrix"]["matrix"]
    assert (tn, fp, fn, tp) == (4, 1, 1, 2)  # 0.5 itself is not above the threshold
    assert result["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert result["specificity"] == pytest.approx(tn / (tn + fp))
    assert result["confusion_matrix"]["categories"] == ["not malignant", "malignant"]


def test_roc_points_are_thinned_and_bounded():
    rng = np.random.default_rng(0)
    malignant = rng.random(2000) < 0.3
    scores = np.clip(malignant * 0.3 + rng.random(2000) * 0.7, 0, 1)
    roc = roc_points(scores, malignant, most=50)
    assert len(roc["fpr"]) == len(roc["tpr"]) == len(roc["thresholds"]) <= 50
    assert roc["fpr"][0] == 0.0 and roc["fpr"][-1] == 1.0 and roc["tpr"][-1] == 1.0
    assert all(0.0 <= t <= 1.0 for t in roc["thresholds"])
    assert roc["fpr"] == sorted(roc["fpr"])
