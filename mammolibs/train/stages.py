"""The four training stages: what each one trains, on which view of the data, with which loss.

Registry: ``STAGES["encoder"]`` ... Adding a stage is one small class here, not a new script.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import ContrastiveLoss, DiceCELoss
from torch import nn
from torch.utils.data import Dataset

from mammolibs.data.shards import StandardSample
from mammolibs.data.snips import make_snips
from mammolibs.data.views import ContrastiveView, DenoisingView, SegmentationView, SnipView


class Stage:
    """What varies between stages. The engine (:mod:`mammolibs.train.engine`) does the rest."""

    name = ""
    model_name = ""
    min_batch = 1  # batches smaller than this are skipped (contrastive loss needs negatives)

    def model_kwargs(self, config: dict) -> dict:
        return {"width": config["width"]}

    def dataset(self, samples: list[StandardSample], config: dict, train: bool) -> Dataset:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError


class EncoderStage(Stage):
    """Self-supervised: two augmentations of one image attract, other images repel (NT-Xent)."""

    name, model_name, min_batch = "encoder", "unet_encoder", 2

    def __init__(self, temperature: float = 0.2):
        self.criterion = ContrastiveLoss(temperature=temperature)

    def dataset(self, samples, config, train):
        return ContrastiveView(samples)  # labels unused: unlabelled images welcome

    def loss(self, model, batch):
        first, second = batch
        return self.criterion(model(first), model(second))


class AutoencoderStage(Stage):
    """Reconstruct the clean image from a masked, noised one; starts from the encoder's weights."""

    name, model_name = "autoencoder", "unet"

    def dataset(self, samples, config, train):
        return DenoisingView(samples)

    def loss(self, model, batch):
        corrupted, clean = batch
        return F.mse_loss(torch.sigmoid(model(corrupted)), clean)


class SegmentationStage(Stage):
    """Lesion masks, BCE + Dice (0 at a perfect mask); starts from the autoencoder's weights."""

    name, model_name = "finetune", "unet"

    def __init__(self):
        self.criterion = DiceCELoss(sigmoid=True, batch=True)  # Dice over the batch: empty masks score 0 too

    def dataset(self, samples, config, train):
        return SegmentationView(samples, augment=train)

    def loss(self, model, batch):
        image, mask = batch
        return self.criterion(model(image), mask)


class ClassifierStage(Stage):
    """ResNet on snips: normal tissue, benign and malignant lesions."""

    name, model_name = "classifier", "resnet"

    def model_kwargs(self, config):
        return {}

    def dataset(self, samples, config, train):
        snips = make_snips(samples, size=config["snip_size"], seed=config["seed"])
        return SnipView(snips, augment=train)

    def loss(self, model, batch):
        snips, labels = batch
        return F.cross_entropy(model(snips), labels)


STAGES: dict[str, Stage] = {s.name: s for s in (EncoderStage(), AutoencoderStage(), SegmentationStage(), ClassifierStage())}
