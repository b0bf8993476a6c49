"""Trained runs shared by the training tests: each stage a few steps on real films and DICOMs."""
from __future__ import annotations

import pytest

from mammolibs.train.cli import main

COMMON = ["--batch-size", "4", "--width", "4", "--no-progress", "--log-every", "1"]


@pytest.fixture(scope="session")
def runs(small_shards, tmp_path_factory):
    """encoder -> autoencoder -> finetune, and the classifier, each a few steps on 64x64 images."""
    root = tmp_path_factory.mktemp("runs")
    data = ["--data", small_shards]
    main("encoder", data + ["--out", str(root / "encoder"), "--epochs", "1"] + COMMON)
    main("autoencoder", data + ["--out", str(root / "autoencoder"), "--epochs", "1",
                                "--encoder", str(root / "encoder")] + COMMON)
    main("finetune", data + ["--out", str(root / "finetune"), "--epochs", "6", "--lr", "3e-3",
                             "--init", str(root / "autoencoder")] + COMMON)
    main("classifier", data + ["--out", str(root / "classifier"), "--epochs", "3", "--snip-size", "32"] + COMMON)
    return root


