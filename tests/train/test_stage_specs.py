"""Each stage is declared once (:data:`mammolibs.train.STAGE_SPECS`) and every consumer agrees with the
declaration: the stage classes, the model registry, the scripts under ``train/``, the recipe and the
pipeline's parameters."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from mammolibs import models
from mammolibs.models import MODEL_NAMES
from mammolibs.pipeline.definition import build_pipeline
from mammolibs.train import RECIPE, STAGE_SPECS, check_model, default_epochs, serving
from mammolibs.train.stages import STAGES
from tests.conftest import REPO


def test_the_stage_classes_are_the_declared_stages_in_order():
    assert list(STAGES) == list(STAGE_SPECS)
    assert all(STAGES[name].name == name for name in STAGES)


def test_every_catalogued_model_has_an_architecture():
    assert set(models.ARCHITECTURES) == set(MODEL_NAMES)  # the first use registers them


@pytest.mark.parametrize("stage", list(STAGE_SPECS))
def test_each_stage_trains_its_default_model_and_refuses_others(stage):
    spec = STAGE_SPECS[stage]
    assert check_model(stage, spec.default_model) == spec.default_model
    others = [name for name in MODEL_NAMES if name not in spec.models()]
    for name in others:
        with pytest.raises(ValueError, match=f"cannot train model '{name}'"):
            check_model(stage, name)


@pytest.mark.parametrize("stage", list(STAGE_SPECS))
def test_each_stage_has_its_script_and_the_script_trains_that_stage(stage):
    script = REPO / STAGE_SPECS[stage].script
    assert f'main("{stage}")' in script.read_text()
    shown = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, check=True)
    assert f"training stage '{stage}'" in shown.stdout and STAGE_SPECS[stage].init.split()[0] in shown.stdout
    assert sorted(p.relative_to(REPO).as_posix() for p in (REPO / "train").rglob("*.py")) == sorted(
        spec.script for spec in STAGE_SPECS.values()
    )


def test_the_pipeline_takes_each_recipe_steps_epochs_and_settings():
    parameters = inspect.signature(build_pipeline().pipeline_func).parameters
    for step, spec in RECIPE.items():
        assert parameters[f"{step}_epochs"].default == default_epochs(step)
        assert spec.settings in parameters
        assert spec.stage in STAGE_SPECS and (
            spec.init is None or list(RECIPE).index(spec.init) < list(RECIPE).index(step)
        )


def test_the_chain_takes_its_u_net_from_finetune_and_its_classifier_from_either_classifier_stage():
    assert serving("unet") == ("finetune",) and serving("classifier") == ("classifier", "whole_image")
