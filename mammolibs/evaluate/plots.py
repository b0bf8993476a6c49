"""Pictures people would rather look at than read: ROC curves, the lesion-threshold trade-off, the
spread of Dice per image, and segmentation sheets."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from scipy import ndimage  # noqa: E402
from torchmetrics.functional.classification import binary_auroc, binary_roc  # noqa: E402

from mammolibs import storage  # noqa: E402


def save_roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], url: str) -> bytes:
    """ROC curves (name -> (malignancy scores, is malignant)), each with its AUROC, as a PNG at ``url``
    (also returned)."""
    figure, axes = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    for name, (scores, positives) in curves.items():
        preds, target = torch.as_tensor(scores, dtype=torch.float32), torch.as_tensor(positives, dtype=torch.long)
        fpr, tpr, _ = binary_roc(preds, target)
        axes.plot(
            fpr.numpy(),
            tpr.numpy(),
            label=f"{name}: AUROC {float(binary_auroc(preds, target)):.3f} "
            f"({int(target.sum())}/{len(target)} malignant)",
        )
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.set(xlabel="false-positive rate (1 - specificity)", ylabel="sensitivity", title="Malignant vs rest, per image")
    axes.legend(loc="lower right", fontsize=7)
    return _save(figure, url)


def save_tradeoff(point: dict, url: str) -> bytes:
    """:func:`draw_tradeoff` as a PNG at ``url`` (also returned)."""
    figure, axes = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    draw_tradeoff(axes, point, "Validation split: each lesion threshold")
    return _save(figure, url)


def draw_tradeoff(axes, point: dict, title: str) -> None:
    """Lesions found against normal images with a finding, one point per lesion threshold tried on the
    validation split (``point["tradeoff"]``), the operating point circled."""
    curve = [p for p in point["tradeoff"] if p["lesions_found"] is not None and p["normal_images_flagged"] is not None]
    axes.plot([p["normal_images_flagged"] for p in curve], [p["lesions_found"] for p in curve], marker=".")
    for p in curve:
        axes.annotate(f"{p['lesion_threshold']:.2f}", (p["normal_images_flagged"], p["lesions_found"]), fontsize=6)
    chosen = [p for p in curve if p["lesion_threshold"] == point["lesion_threshold"]]
    if chosen:
        axes.scatter(
            [chosen[0]["normal_images_flagged"]],
            [chosen[0]["lesions_found"]],
            s=120,
            facecolors="none",
            edgecolors="red",
            label=f"operating point (lesion threshold {point['lesion_threshold']:.2f})",
        )
        axes.legend(loc="lower right", fontsize=7)
    axes.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="normal images with a finding", ylabel="lesions found")
    axes.set_title(title, fontsize=8)


def save_dice_histogram(dice_by_class: dict[str, list[float]], url: str) -> bytes:
    """How Dice spreads over the lesion images, one histogram per class stacked, as a PNG at ``url``
    (also returned): a mean hides whether the U-Net misses some lesions outright or outlines all loosely."""
    figure, axes = plt.subplots(figsize=(4.5, 3.2), dpi=120)
    drawn = {name: values for name, values in dice_by_class.items() if values}
    axes.hist(
        list(drawn.values()),
        bins=np.linspace(0, 1, 21).tolist(),
        stacked=True,
        label=[f"{name} ({len(values)} images, mean {np.mean(values):.2f})" for name, values in drawn.items()],
    )
    axes.set(xlabel="Dice per lesion image", ylabel="images", xlim=(0, 1), title="Spread of Dice")
    axes.legend(loc="upper center", fontsize=7)
    return _save(figure, url)


def _save(figure, url: str) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    storage.write_bytes_atomic(url, buffer.getvalue())
    return buffer.getvalue()


def save_segmentation_sheet(
    images: list[np.ndarray], truths: list[np.ndarray], predictions: list[np.ndarray], url: str, columns: int = 4
) -> bytes:
    """Images side by side, the true lesion outlined in green and the U-Net's in red, as a PNG at ``url``."""
    tiles = []
    for image, truth, predicted in zip(images, truths, predictions):
        grey = (np.clip(image, 0, 1) * 255).astype(np.uint8)
        rgb = np.stack([grey] * 3, axis=-1)
        rgb[truth & ~ndimage.binary_erosion(truth)] = (40, 220, 40)
        rgb[predicted & ~ndimage.binary_erosion(predicted)] = (255, 40, 40)
        zoom = max(1, -(-192 // rgb.shape[0]))  # small images drawn at least 192 pixels high
        tiles.append(rgb.repeat(zoom, axis=0).repeat(zoom, axis=1))
    rows = -(-len(tiles) // columns)
    height, width = tiles[0].shape[:2]
    sheet = np.zeros((rows * height, min(columns, len(tiles)) * width, 3), dtype=np.uint8)
    for i, tile in enumerate(tiles):
        top, left = (i // columns) * height, (i % columns) * width
        sheet[top : top + height, left : left + width] = tile
    buffer = io.BytesIO()
    Image.fromarray(sheet).save(buffer, format="PNG")
    storage.write_bytes_atomic(url, buffer.getvalue())
    return buffer.getvalue()
