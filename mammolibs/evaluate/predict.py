"""``mammo predict IMAGE``: find lesions with the U-Net, score each with the classifier, call the image
at the operating point chosen by ``mammo evaluate``.

Writes ``<name>.overlay.png`` (findings outlined, boxed with their malignancy score) and
``<name>.lesions.json`` (boxes in original and standard-image pixels, class probabilities, the call).
"""
from __future__ import annotations

import io
import json
import os

from mammolibs import storage
from mammolibs.data.images import read_any
from mammolibs.data.standard_form import to_standard
from mammolibs.evaluate.evaluation import load_detector
from mammolibs.evaluate.operating_point import load_operating_point
from mammolibs.evaluate.plots import overlay
from mammolibs.evaluate.report import NOTE


def predict(image_path: str, unet_url: str, classifier_url: str, out: str, threshold: float | None = None,
            whole_frame: bool = False, operating_point: str | None = None, backend: str = "torch") -> dict:
    """Run both stages on one image file (DICOM, PGM, PNG); return and write the findings.

    The image is put in standard form as in ``mammo standardize`` (breast crop and flip, unless
    ``whole_frame``, as for ultrasound); boxes are reported in the original pixels too. ``threshold``
    overrides the operating point's U-Net threshold. ``backend`` onnx: ``unet_url`` and ``classifier_url``
    are the files of ``mammo export`` (or its folder), run in onnxruntime with their stored thresholds.
    """
    if backend == "onnx":
        from mammolibs.evaluate.export import load_onnx_detector

        detector, exported = load_onnx_detector(unet_url, classifier_url)
        image_size = exported["image_size"]
        point = {**exported["operating_point"], "chosen_on": "the evaluation before 'mammo export'"}
        if operating_point:
            point = load_operating_point(operating_point, "")
    else:
        detector, unet_checkpoint, classifier_checkpoint = load_detector(unet_url, classifier_url)
        image_size = unet_checkpoint["image_size"]
        point = load_operating_point(operating_point, classifier_checkpoint["url"])
    detector.unet_threshold = point["unet_threshold"] if threshold is None else threshold
    detector.lesion_threshold = point.get("lesion_threshold") or 0.0
    image, _, placement = to_standard(read_any(image_path), None, image_size, image_path, crop=not whole_frame)
    [(probability, labels, findings, malignancy)] = detector.find(image[None], ["US" if whole_frame else "MG"])
    order = sorted(range(len(findings)), key=lambda i: -findings[i].malignancy)
    report = {
        "image": image_path,
        "image_size": image_size,
        "operating_point": {"unet_threshold": detector.unet_threshold, "lesion_threshold": detector.lesion_threshold,
                            "malignancy_threshold": point["malignancy_threshold"], "chosen_on": point.get("chosen_on")},
        "malignancy": malignancy,
        "called_malignant": malignancy >= point["malignancy_threshold"],
        "lesions": [
            {"box": placement.to_original(findings[i].box), "box_standard": list(findings[i].box),
             "area_standard": findings[i].area, "unet_score": findings[i].score,
             "malignancy": findings[i].malignancy, "probabilities": findings[i].probabilities}
            for i in order
        ],
        "note": NOTE,
    }
    stem = os.path.splitext(os.path.basename(image_path))[0]
    picture = overlay(image, labels > 0, [findings[i].box for i in order],
                      [f"{findings[i].malignancy:.2f}" for i in order])
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    storage.write_bytes_atomic(storage.join(out, f"{stem}.overlay.png"), buffer.getvalue())
    storage.write_text_atomic(storage.join(out, f"{stem}.lesions.json"), json.dumps(report, indent=2))
    return report
