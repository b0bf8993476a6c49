"""What the segmentation stages see: lesion-balanced mammogram patches, whole ultrasound frames, and
whole images predicted back from patches by sliding window."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mammolibs.data.shard_set import ShardSet
from mammolibs.data.views import ContrastiveView, SegmentationView
from mammolibs.inference.detector import Detector, segment, strongest_spot


def _lesion_samples(data: str):
    shards = ShardSet.open(data)
    return [s for s in shards.samples("train") + shards.samples("val") if s.lesions.any()]


def test_mammogram_patches_hold_a_lesion_at_least_half_the_time_and_repeat_with_their_seed(small_shards):
    view = SegmentationView(patch_size=32)
    sample = min(_lesion_samples(small_shards), key=lambda s: s.lesions.sum())  # the smallest lesion
    assert sample.lesions.mean() < 0.1
    patches = [view(sample, seed) for seed in range(60)]
    assert all(image.shape == (1, 32, 32) and mask.shape == (1, 32, 32) for image, mask, _ in patches)
    with_lesion = np.mean([mask.any().item() for _, mask, _ in patches])
    assert 0.45 <= with_lesion < 1.0  # positive crops always hold it; negative ones only by chance
    again = view(sample, 7)
    assert all(torch.equal(a, b) for a, b in zip(again, patches[7]))
    assert len({p[0].sum().item() for p in patches}) > 30  # augmented: (nearly) every patch differs


def test_validation_patches_are_fixed_and_centred_on_the_lesions(small_shards):
    view = SegmentationView(patch_size=32, augment="none")
    sample = _lesion_samples(small_shards)[0]
    first, second = view(sample, 1), view(sample, 2)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    mask = first[1][0].numpy()
    assert mask[12:20, 12:20].any()  # the lesions' centre is the patch's


def test_ultrasound_frames_are_resized_whole_to_the_patch_side(busi_shards):
    sample = _lesion_samples(busi_shards)[0]
    image, mask, _ = SegmentationView(patch_size=32, augment="none")(sample, 0)
    assert image.shape == mask.shape == (1, 32, 32)
    assert mask.float().mean().item() == pytest.approx((sample.lesions > 0).mean(), abs=0.05)
    first, second = ContrastiveView(patch_size=32)(sample, 0)
    assert first.shape == second.shape == (1, 32, 32)


def test_scanner_augmentation_changes_the_image_as_another_scanner_would_and_never_the_lesion(busi_shards):
    sample = _lesion_samples(busi_shards)[0]
    strong, scanner = SegmentationView(augment="strong"), SegmentationView(augment="scanner")
    seeds = range(40)
    pairs = [(strong(sample, seed), scanner(sample, seed)) for seed in seeds]
    for (_, strong_mask, _), (image, mask, _) in pairs:
        assert torch.equal(mask, strong_mask)  # same geometry: the lesion moves only with the shared transforms
        assert image.shape == (1, *sample.image.shape) and torch.isfinite(image).all()
    changed = [not torch.allclose(a[0], b[0]) for a, b in pairs]
    assert 0.3 < np.mean(changed) < 1.0  # intensity, blur, noise or resolution changed some images, not all
    again = scanner(sample, 3)
    assert all(torch.equal(a, b) for a, b in zip(again, pairs[3][1]))  # repeats with its seed
    with pytest.raises(ValueError, match="augment 'speckles'"):
        SegmentationView(augment="speckles")


class _Identity(nn.Module):
    """Logit = pixel value * 8 - 4: a translation-equivariant 'U-Net' with a known answer."""

    def forward(self, x):
        return x * 8 - 4


def test_sliding_window_with_mirroring_recovers_the_whole_image_prediction():
    images = np.random.default_rng(0).random((3, 80, 80)).astype(np.float32)
    expected = torch.sigmoid(torch.from_numpy(images) * 8 - 4).numpy()
    by_window = segment(_Identity(), images, patch_size=32, modalities=["MG", "MG", "MG"])
    assert by_window.shape == images.shape
    np.testing.assert_allclose(by_window, expected, atol=1e-5)
    ramp = np.broadcast_to(np.linspace(0, 1, 80, dtype=np.float32), (1, 80, 80))  # smooth: survives resizing
    whole = segment(_Identity(), ramp.copy(), patch_size=32, modalities=["US"])  # resized, predicted, resized back
    assert whole.shape == ramp.shape
    np.testing.assert_allclose(whole, torch.sigmoid(torch.from_numpy(ramp.copy()) * 8 - 4).numpy(), atol=0.03)


class _Fixed(nn.Module):
    """A snip classifier that calls everything normal tissue with probability ~0.73."""

    def forward(self, x):
        return torch.tensor([[1.0, 0.0, 0.0]]).expand(len(x), 3)


def test_findings_the_classifier_calls_normal_tissue_are_dropped_above_the_lesion_threshold():
    image = np.zeros((1, 64, 64), dtype=np.float32)
    image[0, 10:20, 10:20] = 1.0
    detector = Detector(_Identity(), _Fixed(), snip_size=32, unet_threshold=0.5)
    [(_, labels, findings, _)] = detector.find(image)
    assert len(findings) == 1 and labels.max() == 1 and findings[0].lesion_probability == pytest.approx(0.42, abs=0.01)
    detector.lesion_threshold = 0.5
    [(_, labels, findings, malignancy)] = detector.find(image)
    assert findings == [] and labels.max() == 0  # no lesion here
    assert malignancy == pytest.approx(0.5)  # ranked by the region the U-Net found all the same


class _ByBrightness(nn.Module):
    """A snip classifier that calls a snip malignant by how bright it is at its centre (a spot cut
    from a bright lesion is malignant, one of dark background benign)."""

    def forward(self, x):
        centre = x[:, 0, x.shape[2] // 2, x.shape[3] // 2]
        return torch.stack([torch.zeros_like(centre), -4 * centre, 4 * centre], 1)


def test_an_image_without_a_finding_takes_the_malignancy_of_its_strongest_spot():
    images = np.zeros((2, 64, 64), dtype=np.float32)
    images[0, 30:40, 40:50] = 0.45  # a lesion the U-Net sees, but under its threshold (probability ~0.40)
    detector = Detector(_Identity(), _ByBrightness(), snip_size=32, unet_threshold=0.5)
    [(_, labels, findings, faint), (_, _, none, blank)] = detector.find(images)
    assert findings == [] and labels.max() == 0 and none == []  # nothing shown at the threshold
    assert faint > 0.8 and blank == pytest.approx(0.5, abs=0.01)  # the faint lesion still ranks its image
    spot = strongest_spot(detector.segment(images)[0])
    assert spot.box == (40, 30, 50, 40) and spot.score == pytest.approx(0.40, abs=0.01)


class _NoOpinion(nn.Module):
    """A whole-image classifier without an opinion: benign and malignant alike."""

    def forward(self, x):
        return torch.zeros(len(x), 2)


def test_findings_the_unet_is_unsure_of_as_a_whole_are_dropped_without_a_snip_classifier():
    image = np.zeros((1, 64, 64), dtype=np.float32)
    image[0, 5:15, 5:15], image[0, 40:50, 40:50] = 1.0, 0.6  # a sure region (p 0.98) and a faint one (p 0.69)
    detector = Detector(_Identity(), _NoOpinion(), snip_size=None, unet_threshold=0.5)
    [(_, _, findings, malignancy)] = detector.find(image)
    assert [round(f.presence, 2) for f in findings] == [0.98, 0.69] and malignancy == pytest.approx(0.5)
    assert [f.confidence for f in findings] == [f.presence for f in findings]  # no snip classifier: the U-Net's
    detector.lesion_threshold = 0.8
    [(_, labels, findings, _)] = detector.find(image)
    assert len(findings) == 1 and labels[5:15, 5:15].all() and not labels[40:50, 40:50].any()


def test_training_snips_move_around_the_lesion_box_as_findings_do():
    from mammolibs.data.views import jittered

    rng = np.random.default_rng(0)
    boxes = [jittered((100, 200, 140, 260), rng) for _ in range(200)]
    widths = np.array([x1 - x0 for x0, _, x1, _ in boxes])
    centres = np.array([(x0 + x1) / 2 for x0, _, x1, _ in boxes])
    assert 28 <= widths.min() < 36 and 44 < widths.max() <= 53  # 40 px wide, +-30%
    assert 114 <= centres.min() < 117 and 123 < centres.max() <= 126  # centre 120, +-15% of 40 px
