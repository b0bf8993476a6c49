"""``mammo export --format onnx``: the U-Net and the classifier as ONNX files (dynamic batch), each
carrying what a runtime needs to use it alone: its input (side, preprocessing), its outputs, and
the operating point's thresholds. ``mammo predict --backend onnx`` runs them in onnxruntime.
"""

from __future__ import annotations

import io
import json
import logging
from typing import cast

import numpy as np
import torch

from mammolibs import storage
from mammolibs.inference.checkpoints import load_detector, model_card
from mammolibs.inference.detector import Detector, Net
from mammolibs.inference.operating_point import load_operating_point
from mammolibs.models import SNIP_CLASSES, WHOLE_IMAGE_CLASSES

log = logging.getLogger(__name__)

FILES = {"unet": "unet.onnx", "classifier": "classifier.onnx"}
METADATA_KEY = "mammoflow"
PREPROCESSING = (
    "one grey channel, float32 in [0, 1]: the standard form of 'mammo standardize' (mammograms: breast "
    "cropped, flipped to face right, padded square, resized; ultrasound: the whole frame, resized)"
)


def _export(model: Net, side: int, path: str, metadata: dict) -> None:
    """One model to ``path`` with a dynamic batch, its ``metadata`` as JSON in the file's metadata."""
    import onnx

    buffer = io.BytesIO()
    try:
        torch.onnx.export(
            cast(torch.nn.Module, model).eval(),  # the PyTorch models of load_detector
            (torch.zeros(1, 1, side, side),),
            buffer,  # type: ignore[arg-type]  # a file object works; torch's annotation names paths only
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            dynamo=False,
        )
    except Exception as err:
        raise ValueError(
            f"{metadata['model_name']}: cannot be exported to ONNX ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]})"
        ) from None
    graph = onnx.load_from_string(buffer.getvalue())
    graph.metadata_props.add(key=METADATA_KEY, value=json.dumps(metadata))
    storage.write_bytes_atomic(path, graph.SerializeToString())


def export_onnx(unet_url: str, classifier_url: str, out: str, operating_point: str | None = None) -> dict[str, str]:
    """Write ``out/unet.onnx`` and ``out/classifier.onnx``; returns their URLs."""
    detector, unet_checkpoint, classifier_checkpoint = load_detector(unet_url, classifier_url)
    point = load_operating_point(operating_point, classifier_checkpoint["url"])
    image_size = unet_checkpoint["image_size"]
    shared = {
        "image_size": image_size,
        "preprocessing": PREPROCESSING,
        "operating_point": {k: point.get(k) for k in ("unet_threshold", "lesion_threshold", "malignancy_threshold")},
    }
    paths = {role: storage.join(out, name) for role, name in FILES.items()}
    unet_side = detector.patch_size or image_size
    _export(
        detector.unet,
        unet_side,
        paths["unet"],
        {
            **shared,
            "stage": "finetune",
            "model_name": unet_checkpoint["model_name"],
            "input_side": unet_side,
            "card": model_card("unet", unet_checkpoint),
            "patch_size": detector.patch_size,
            "output": "lesion logits (N, 1, side, side); sigmoid for probabilities. With patch_size, mammograms are "
            "predicted by sliding window and ultrasound resized to the patch side, as in training",
        },
    )
    whole_image = detector.snip_size is None
    classifier_side = detector.snip_size if detector.snip_size is not None else image_size
    classes = WHOLE_IMAGE_CLASSES if whole_image else SNIP_CLASSES
    _export(
        detector.classifier,
        classifier_side,
        paths["classifier"],
        {
            **shared,
            "stage": classifier_checkpoint["stage"],
            "model_name": classifier_checkpoint["model_name"],
            "input_side": classifier_side,
            "snip_size": detector.snip_size,
            "classes": list(classes),
            "card": model_card("classifier", classifier_checkpoint),
            "output": f"class logits (N, {len(classes)}) over {', '.join(classes)}; softmax for probabilities"
            + ("" if whole_image else ". Input: a snip around a finding (mammolibs.data.snips.crop_snip)"),
        },
    )
    return paths


class OnnxNet:
    """An ONNX model called like the torch model it was exported from: (N, 1, S, S) tensor -> logits tensor."""

    def __init__(self, path: str):
        import onnx
        import onnxruntime

        data = storage.read_bytes(path)
        try:
            props = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
            self.metadata = json.loads(props[METADATA_KEY])
        except Exception as err:  # not ONNX, or not written by mammo export
            raise ValueError(f"{path}: not an ONNX file written by 'mammo export' ({type(err).__name__})") from None
        try:
            self.session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        except Exception as err:  # external data, unknown operators, a damaged graph: onnxruntime's own types
            reason = " ".join(str(err).split())[:200]
            raise ValueError(
                f"{path}: onnxruntime cannot load it ({reason}); export it again with 'mammo export'"
            ) from None

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"image": np.ascontiguousarray(batch.numpy(), np.float32)})[0])


def load_onnx_detector(unet: str, classifier: str) -> tuple[Detector, dict, list[dict]]:
    """The chain from two exported files (or an export folder for either): (detector with the exported
    thresholds, the U-Net's metadata, the two models' cards)."""

    def file(url: str, role: str) -> str:
        return url if url.endswith(".onnx") else storage.join(url, FILES[role])

    unet_net, classifier_net = OnnxNet(file(unet, "unet")), OnnxNet(file(classifier, "classifier"))
    meta, point = unet_net.metadata, unet_net.metadata["operating_point"]
    if classifier_net.metadata["image_size"] != meta["image_size"]:
        raise ValueError(
            f"{classifier}: exported for {classifier_net.metadata['image_size']}-pixel images, the U-Net "
            f"for {meta['image_size']}; export them together"
        )
    detector = Detector(
        unet_net,
        classifier_net,
        classifier_net.metadata["snip_size"],
        patch_size=meta["patch_size"],
        unet_threshold=point["unet_threshold"],
        lesion_threshold=point.get("lesion_threshold") or 0.0,
    )
    cards = [
        {
            **net.metadata.get("card", {"role": role}),
            "trained_on": {"sources": (net.metadata.get("card", {}).get("trained_on") or {}).get("sources")},
            "file": storage.basename(path),  # the file's name, never where it lies
            "backend": "onnx",
        }
        for role, net, path in (
            ("unet", unet_net, file(unet, "unet")),
            ("classifier", classifier_net, file(classifier, "classifier")),
        )
    ]
    return detector, meta, cards
