"""``mammo predict IMAGE``: find lesions with the U-Net, score each with the ResNet.

Writes ``<name>.overlay.png`` (mask outlined, findings boxed with their malignancy score) and
``<name>.lesions.json`` (boxes in original and standard-image pixels, class probabilities).
"""
from __future__ import annotations

import io
import json
import os

from mammolibs import storage
from mammolibs.data.images import read_any
from mammolibs.data.standard_form import to_standard
from mammolibs.evaluate.inference import find_lesions
from mammolibs.evaluate.plots import overlay
from mammolibs.train.checkpoints import load_model


def predict(image_path: str, unet_url: str, classifier_url: str, out: str, threshold: float = 0.5,
            whole_frame: bool = False) -> dict:
    """Run both stages on one image file (DICOM, PGM, PNG); return and write the findings.

    The image is put in standard form as in ``mammo standardize`` (breast crop and flip, unless
    ``whole_frame``, as for ultrasound); boxes are reported in the original pixels too.
    """
    unet, unet_checkpoint = load_model(unet_url)
    classifier, classifier_checkpoint = load_model(classifier_url)
    image, _, placement = to_standard(read_any(image_path), None, unet_checkpoint["image_size"], image_path,
                                      crop=not whole_frame)
    probability, findings = find_lesions(image, unet, classifier, classifier_checkpoint["config"]["snip_size"],
                                         threshold=threshold)
    report = {
        "image": image_path,
        "image_size": unet_checkpoint["image_size"],
        "threshold": threshold,
        "lesions": [
            {"box": placement.to_original(f.box), "box_standard": list(f.box), "area_standard": f.area,
             "malignancy": f.malignancy, "probabilities": f.probabilities}
            for f in findings
        ],
        "note": "Research software, not a medical device: not for diagnosis.",
    }
    stem = os.path.splitext(os.path.basename(image_path))[0]
    picture = overlay(image, probability > threshold, [f.box for f in findings],
                      [f"{f.malignancy:.2f}" for f in findings])
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    storage.write_bytes_atomic(storage.join(out, f"{stem}.overlay.png"), buffer.getvalue())
    storage.write_text_atomic(storage.join(out, f"{stem}.lesions.json"), json.dumps(report, indent=2))
    return report
