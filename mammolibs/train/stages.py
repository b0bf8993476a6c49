"""The training stages: what each one trains, on which view of the data, with which loss.

Registry: ``STAGES["encoder"]`` ... Adding a stage is one small class here (and its name in
:data:`mammolibs.train.STAGE_SPECS`, with its script under ``train/``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import ContrastiveLoss, DiceCELoss
from torch import nn
from torchmetrics.functional.classification import binary_auroc

from mammolibs.data.views import (
    NO_CLASS,
    ContrastiveView,
    DenoisingView,
    SegmentationView,
    SnipView,
    View,
    WholeImageView,
)
from mammolibs.models.catalog import (
    CLASSIFICATION,
    DEFAULT_WIDTH,
    MODEL_NAMES,
    SNIP_CLASSES,
    WHOLE_IMAGE_CLASSES,
)
from mammolibs.train import STAGE_SPECS, check_model
from mammolibs.train.config import TrainConfig

Batch = tuple[torch.Tensor, ...]


def _rgb(grey: torch.Tensor) -> torch.Tensor:
    return grey.float().clamp(0, 1).expand(-1, 3, -1, -1)


def side_by_side(*greys: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x (k W): grey images next to each other, for TensorBoard."""
    return torch.cat([_rgb(g) for g in greys], dim=3)


def is_multitask(model: nn.Module) -> bool:
    """Whether ``model`` (possibly wrapped for data parallelism) also returns class logits when asked."""
    return getattr(getattr(model, "module", model), "multitask", False)


class Stage:
    """What varies between stages. The engine (:mod:`mammolibs.train.engine`) does the rest."""

    name = ""
    role = "segmentation"  # how the model is built: see mammolibs.models.registry.ROLES
    classes: tuple[str, ...] = ()
    min_batch = 1  # contrastive loss needs negatives in the batch
    metric = "loss"  # the validation figure that picks best.pt: a loss is minimised, any other figure maximised

    def model_spec(self, config: TrainConfig, source: dict | None = None) -> tuple[str, dict]:
        """(model name, build arguments): ``--model`` and ``--width`` where given, else those of ``source``
        (the checkpoint resumed or started from) where this stage can train its model, else the defaults."""
        source = source or {}
        inherited = source.get("model_name") in STAGE_SPECS[self.name].models()
        name = check_model(
            self.name, config.model or (source["model_name"] if inherited else STAGE_SPECS[self.name].default_model)
        )
        kwargs = {"num_classes": len(self.classes)} if self.role in ("classifier", "autoencoder") else {}
        if MODEL_NAMES[name][0] != CLASSIFICATION:
            kwargs["width"] = (
                config.width or (source["model_kwargs"].get("width") if inherited else None) or DEFAULT_WIDTH
            )
        return name, kwargs

    def view(self, config: TrainConfig, image_size: int, train: bool) -> View:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(scalar loss, model output)."""
        raise NotImplementedError

    def picture(self, batch: Batch, output: torch.Tensor) -> torch.Tensor | None:
        """N x 3 x H x W images of what the model made of ``batch``, or ``None``."""
        return None

    def scores(self, batch: Batch, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(is positive, score) pairs for a precision-recall curve, or ``None``."""
        return None

    def metric_sums(self, batch: Batch, output: torch.Tensor) -> torch.Tensor | None:
        """(sum, count) of the per-sample :attr:`metric` in ``batch``, on the device, or ``None``."""
        return None

    def metric_value(self, sums: torch.Tensor | None, positives: torch.Tensor, scores: torch.Tensor) -> float | None:
        """:attr:`metric` over the validation split, from the summed :meth:`metric_sums` or the
        :meth:`scores` pairs; ``None`` when it is undefined there."""
        return float(sums[0] / sums[1]) if sums is not None and sums[1] > 0 else None


class AurocStage(Stage):
    """A classifier over :attr:`classes` (cross-entropy), kept by its validation AUROC of malignant vs the rest."""

    role, metric = "classifier", "auroc"

    def loss(self, model, batch):
        inputs, labels = batch
        logits = model(inputs).float()
        return F.cross_entropy(logits, labels), logits

    def scores(self, batch, output):
        malignant = self.classes.index("malignant")
        return batch[1] == malignant, torch.softmax(output, dim=1)[:, malignant]

    def metric_value(self, sums, positives, scores):
        if len(positives) == 0 or positives.all() or not positives.any():
            return None
        return float(binary_auroc(scores.float(), positives.long()))


class EncoderStage(Stage):
    """Self-supervised: two augmentations of one image attract, other images repel (NT-Xent)."""

    name, role, min_batch = "encoder", "contrastive", 2

    def __init__(self, temperature: float = 0.2):
        self.criterion = ContrastiveLoss(temperature=temperature)

    def view(self, config, image_size, train):
        return ContrastiveView(config.patch_size)  # labels unused: unlabelled images welcome

    def loss(self, model, batch):
        first, second = batch
        projected = model(torch.cat([first, second]))
        half = first.shape[0]
        return self.criterion(projected[:half].float(), projected[half:].float()), projected

    def picture(self, batch, output):
        return side_by_side(*batch)


class AutoencoderStage(Stage):
    """Reconstruct the clean image from a masked, noised one, and tell the image's class (normal, benign,
    malignant) from the encoder where it has one (label-only films too); starts from the encoder's weights."""

    name, role, classes = "autoencoder", "autoencoder", SNIP_CLASSES
    class_weight = 0.1  # of the image-class cross-entropy beside the reconstruction error

    def view(self, config, image_size, train):
        return DenoisingView(image_size, config.patch_size)

    def loss(self, model, batch):
        corrupted, clean, label = batch
        logits, class_logits = model(corrupted)
        reconstruction = torch.sigmoid(logits.float())
        labelled = (label != NO_CLASS).sum().clamp(min=1)  # a batch of unlabelled images adds 0, not NaN
        classes = F.cross_entropy(class_logits.float(), label, ignore_index=NO_CLASS, reduction="sum") / labelled
        return F.mse_loss(reconstruction, clean) + self.class_weight * classes, reconstruction

    def picture(self, batch, output):
        corrupted, clean, _ = batch
        return side_by_side(corrupted, output, clean)


class SegmentationStage(Stage):
    """Lesion masks, BCE + Dice (0 at a perfect mask), on patches about half of which hold a lesion
    (``--patch-size``); starts from the autoencoder's weights. Multi-task models (FCN) also learn the
    image's class (normal, benign, malignant) from their encoder."""

    name, metric, classes = "finetune", "dice", SNIP_CLASSES

    def __init__(self):
        self.criterion = DiceCELoss(sigmoid=True, batch=True)  # Dice over the batch: empty masks score 0 too

    def view(self, config, image_size, train):
        return SegmentationView(config.patch_size, augment=config.augment if train else "none")

    def loss(self, model, batch):
        image, mask, label = batch
        if not is_multitask(model):
            logits = model(image).float()
            return self.criterion(logits, mask), logits
        logits, class_logits = model(image, with_classes=True)
        logits = logits.float()
        return self.criterion(logits, mask) + F.cross_entropy(class_logits.float(), label), logits

    def picture(self, batch, output):
        """The image, the true mask in green and the predicted mask in red."""
        image, mask, _ = batch
        overlay = _rgb(image).clone()
        predicted = (output > 0).float()
        overlay[:, 1] = torch.maximum(overlay[:, 1], 0.6 * mask[:, 0].float())
        overlay[:, 0] = torch.maximum(overlay[:, 0], 0.6 * predicted[:, 0])
        return torch.cat([_rgb(image), overlay], dim=3)

    def metric_sums(self, batch, output):
        """Dice of each image with a lesion (prediction at probability 0.5), as ``mammo evaluate`` scores it."""
        truth = batch[1].flatten(1) > 0.5
        predicted = output.flatten(1) > 0
        dice = 2 * (truth & predicted).sum(1) / (truth.sum(1) + predicted.sum(1)).clamp(min=1)
        lesion = truth.any(1)
        return torch.stack([(dice * lesion).sum(), lesion.sum()]).float()


class ClassifierStage(AurocStage):
    """Snips of normal tissue, benign and malignant lesions; the encoder by default from the autoencoder."""

    name, classes = "classifier", SNIP_CLASSES

    def view(self, config, image_size, train):
        return SnipView(config.snip_size, augment=train)


class WholeImageStage(AurocStage):
    """Baseline: ResNet on the whole standard image, benign vs malignant (no lesion localisation)."""

    name, classes = "whole_image", WHOLE_IMAGE_CLASSES

    def view(self, config, image_size, train):
        return WholeImageView(augment=train)


STAGES: dict[str, Stage] = {
    s.name: s for s in (EncoderStage(), AutoencoderStage(), SegmentationStage(), ClassifierStage(), WholeImageStage())
}
