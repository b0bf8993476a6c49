"""Every registered model trains a step; the stage losses behave as their definitions say."""
from __future__ import annotations

import pytest
import torch

from mammolibs.models import MODELS, create_model, load_matching
from mammolibs.train.stages import STAGES

MODEL_KWARGS = {"unet": {"width": 4}, "unet_encoder": {"width": 4}, "resnet": {}}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_runs_forward_and_backward(name):
    model = create_model(name, **MODEL_KWARGS[name])
    output = model(torch.rand(2, 1, 32, 32))
    output.float().pow(2).mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_encoder_weights_load_into_the_unet_by_name():
    encoder, unet = create_model("unet_encoder", width=4), create_model("unet", width=4)
    taken = load_matching(unet, encoder.state_dict(), "encoder")
    assert taken and all(k.split(".")[0] in ("conv_0", "down_1", "down_2", "down_3", "down_4") for k in taken)
    assert torch.equal(unet.state_dict()["conv_0.conv_0.conv.weight"], encoder.state_dict()["conv_0.conv_0.conv.weight"])


def test_loading_unrelated_weights_fails_loudly():
    with pytest.raises(ValueError, match="no parameter matches"):
        load_matching(create_model("unet", width=4), create_model("resnet").state_dict(), "resnet.pt")


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
