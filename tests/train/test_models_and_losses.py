"""Every registered model keeps its contract, trains a few steps in its stages and round-trips its
checkpoint; weights move between stages only where the encoder matches; the losses behave."""

from __future__ import annotations

import pytest
import torch

from mammolibs.data.views import NO_CLASS
from mammolibs.models import MODEL_NAMES, create_model, encoder_names
from mammolibs.models.catalog import CLASSIFICATION
from mammolibs.models.transfer import transfer
from mammolibs.train import STAGE_SPECS
from mammolibs.train.checkpoints import load_checkpoint, load_model
from mammolibs.train.engine import TrainConfig, fit
from mammolibs.train.stages import STAGES

SEGMENTATION_MODELS = [name for name, (kind, _) in MODEL_NAMES.items() if kind != CLASSIFICATION]


@pytest.mark.parametrize("name", SEGMENTATION_MODELS)
def test_segmentation_models_keep_their_contract(name):
    """One grey channel in, one logit map at the input's size out, for sides that are not powers of two."""
    model = create_model(name, width=4).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 72, 56)).shape == (2, 1, 72, 56)
    for role, width in (("contrastive", 128), ("classifier", 3)):
        assert create_model(name, role, width=4)(torch.rand(2, 1, 64, 64)).shape == (2, width)
    reconstruction, classes = create_model(name, "autoencoder", width=4)(torch.rand(2, 1, 64, 64))
    assert reconstruction.shape == (2, 1, 64, 64) and classes.shape == (2, 3)
    encoder = encoder_names(name, 4)
    assert encoder and encoder < set(model.state_dict())  # an encoder, and a decoder beside it


def _train(stage: str, data: str, out, **settings) -> str:
    fit(stage, TrainConfig(data=data, out=str(out), epochs=1, batch_size=2, max_steps=2, progress=False, **settings))
    return str(out)


@pytest.mark.parametrize("name", [*SEGMENTATION_MODELS, "resnet18"])
def test_every_model_trains_a_few_steps_and_round_trips_its_checkpoint(name, small_shards, tmp_path):
    stages = [s for s in ("finetune", "classifier") if name in STAGE_SPECS[s].models()]
    for stage in stages:
        out = _train(stage, small_shards, tmp_path / stage, model=name, width=4, patch_size=32, snip_size=32)
        model, checkpoint = load_model(out)
        assert (checkpoint["stage"], checkpoint["model_name"]) == (stage, name)
        trained = load_checkpoint(out)["model"]
        assert all(torch.equal(trained[k], v) for k, v in model.state_dict().items())
        probe = torch.rand(2, 1, 64, 64)
        with torch.no_grad():
            again = load_model(out)[0](probe)
            assert torch.equal(model(probe), again)


def test_stages_chain_by_name_and_refuse_an_encoder_that_does_not_fit(small_shards, tmp_path):
    autoencoder = _train("autoencoder", small_shards, tmp_path / "autoencoder", model="segresnet", width=4)
    unet = _train("finetune", small_shards, tmp_path / "finetune", init=autoencoder, patch_size=32)
    checkpoint = load_checkpoint(unet)
    assert (checkpoint["model_name"], checkpoint["model_kwargs"]["width"]) == ("segresnet", 4)  # taken from --init
    with pytest.raises(ValueError, match=r"segresnet \(width 4\) does not fit this run's segresnet \(width 8\)"):
        _train("finetune", small_shards, tmp_path / "wider", init=autoencoder, width=8)
    with pytest.raises(ValueError, match="does not fit this run's basic_unet"):
        _train("finetune", small_shards, tmp_path / "other", init=autoencoder, model="basic_unet")


def test_transfer_takes_the_encoder_of_a_contrastive_checkpoint_and_nothing_else():
    encoder = create_model("deeplabv3", "contrastive", width=4)
    checkpoint = {
        "model": encoder.state_dict(),
        "model_name": "deeplabv3",
        "model_role": "contrastive",
        "model_kwargs": {"width": 4},
    }
    unet = create_model("deeplabv3", width=4)
    taken = transfer(unet, "deeplabv3", "segmentation", 4, checkpoint, "encoder.pt")
    assert set(taken) == encoder_names("deeplabv3", 4)  # the decoder never trained: not taken
    assert torch.equal(unet.state_dict()["stem.0.weight"], encoder.state_dict()["net.stem.0.weight"])
    resnet = {
        "model": create_model("resnet18", "classifier").state_dict(),
        "model_name": "resnet18",
        "model_role": "classifier",
        "model_kwargs": {"num_classes": 3},
    }
    with pytest.raises(ValueError, match="cannot start a deeplabv3 segmentation"):
        transfer(unet, "deeplabv3", "segmentation", 4, resnet, "resnet.pt")


def test_multitask_fcn_learns_the_class_too(small_shards, tmp_path):
    stage = STAGES["finetune"]
    model = create_model("fcn8s", width=4)
    image, mask = torch.rand(2, 1, 64, 64), torch.zeros(2, 1, 64, 64)
    loss, _ = stage.loss(model, (image, mask, torch.tensor([0, 2])))
    segmentation_only = stage.criterion(model(image).float(), mask)
    assert loss.item() > segmentation_only.item()  # the class term adds to it


def test_autoencoder_learns_image_classes_where_images_have_one_and_ignores_the_rest():
    stage = STAGES["autoencoder"]
    model = create_model("basic_unet", "autoencoder", width=4)
    corrupted, clean = torch.rand(4, 1, 32, 32), torch.rand(4, 1, 32, 32)
    unlabelled, _ = stage.loss(model, (corrupted, clean, torch.full((4,), NO_CLASS)))
    reconstruction = torch.nn.functional.mse_loss(torch.sigmoid(model(corrupted)[0]), clean)
    assert unlabelled.item() == pytest.approx(reconstruction.item(), rel=1e-5)  # no label: no class term, no NaN
    labelled, _ = stage.loss(model, (corrupted, clean, torch.tensor([0, 1, 2, NO_CLASS])))
    assert labelled.item() > unlabelled.item()


def test_segmentation_loss_is_zero_at_a_perfect_mask_and_large_when_wrong():
    mask = torch.zeros(2, 1, 16, 16)
    mask[0, :, 4:9, 4:9] = 1
    stage = STAGES["finetune"]
    perfect = stage.criterion(mask * 40 - 20, mask)
    inverted = stage.criterion(20 - mask * 40, mask)
    assert perfect.item() == pytest.approx(0.0, abs=1e-4) and inverted.item() > 1.0


def test_contrastive_loss_prefers_matching_views():
    stage = STAGES["encoder"]
    a = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    assert stage.criterion(a, a).item() < stage.criterion(a, a.roll(1, dims=0)).item()


FAULTS = """
import resource, numpy as np
from mammolibs.train.allocator import keep_freed_memory
print(keep_freed_memory())
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    np.ones(64 * 1024 * 1024 // 8)  # a 64 MiB buffer, made and freed like a step's activations
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_training_keeps_freed_memory_instead_of_faulting_it_in_every_step():
    """glibc hands large buffers back to the kernel at once; training keeps them (MAMMOFLOW_MALLOC=system: not)."""
    import os
    import subprocess
    import sys

    def faults(setting: str) -> tuple[str, int]:
        done = subprocess.run(
            [sys.executable, "-c", FAULTS],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "MAMMOFLOW_MALLOC": setting},
        )
        applied, count = done.stdout.split()
        return applied, int(count)

    (applied, kept), (untouched, default) = faults("keep"), faults("system")
    assert (applied, untouched) == ("True", "False")
    assert kept * 5 < default, (kept, default)
