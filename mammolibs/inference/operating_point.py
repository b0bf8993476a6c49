"""The operating point: the U-Net probability threshold, the lesion threshold under which the snip
classifier drops a finding, and the malignancy threshold, chosen on the validation split and stored
with the model as ``<classifier run>/operating_point.json``.

``mammo evaluate`` chooses and stores it; ``mammo predict`` and the report use it. Without one,
both thresholds are 0.5 and predict says so.
"""

from __future__ import annotations

import json
import logging

from mammolibs import storage

log = logging.getLogger(__name__)

OPERATING_POINT = "operating_point.json"
DEFAULT = {"unet_threshold": 0.5, "lesion_threshold": 0.0, "malignancy_threshold": 0.5, "chosen_on": None}
UNET_THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(1, 10))
"""The U-Net probability thresholds tried on the validation split (the best mean Dice wins)."""
LESION_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(20))
"""The thresholds on a finding's confidence tried (the highest that keeps nearly every lesion found wins:
the fewest normal images flagged at that sensitivity)."""


def run_folder(checkpoint_url: str) -> str:
    """The stage's ``--out`` folder of a checkpoint URL (``.../checkpoints/best.pt`` -> ``...``)."""
    folder = checkpoint_url.rsplit("/", 1)[0]
    return folder.rsplit("/", 1)[0] if folder.endswith("/checkpoints") else folder


def operating_point_url(classifier_checkpoint_url: str) -> str:
    return storage.join(run_folder(classifier_checkpoint_url), OPERATING_POINT)


def load_operating_point(url: str | None, classifier_checkpoint_url: str) -> dict:
    """The operating point at ``url``, else the one stored with the classifier, else the 0.5 defaults."""
    found = url or operating_point_url(classifier_checkpoint_url)
    if url and not url.endswith(".json"):
        found = storage.join(url, OPERATING_POINT)  # an evaluation folder or a run folder
    if not storage.exists(found):
        if url:
            raise FileNotFoundError(
                f"{found}: no operating point there; run 'mammo evaluate' first or leave --operating-point out"
            )
        log.warning(
            "no %s beside the classifier: thresholds 0.5; run 'mammo evaluate' to choose them on the validation split",
            OPERATING_POINT,
        )
        return dict(DEFAULT)
    try:
        point = json.loads(storage.read_text(found))
        point = {"lesion_threshold": 0.0, **point}  # points chosen before findings were vetted
        thresholds = [point[k] for k in ("unet_threshold", "lesion_threshold", "malignancy_threshold")]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{found}: not an operating point ({type(err).__name__}: {err})") from None
    numbers = all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in thresholds)
    if not numbers or not all(0.0 <= t <= 1.0 for t in thresholds):
        shown = [str(t)[:20] for t in thresholds]
        raise ValueError(f"{found}: thresholds must be numbers in [0, 1], found {shown}")
    return point
