"""What each pipeline step runs on: image, accelerator and machine, for Vertex AI or Kubeflow on GKE.

Chosen when the pipeline is compiled (``python -m pipelines.mammoflow compile --help``)::

    --target vertex   --accelerator encoder=tpu-v5e:8 --accelerator finetune=nvidia-l4:1
    --target kubeflow --accelerator finetune=tpu-v5e:4 --machine-type standardize=n2-standard-16

Vertex AI reads a step's accelerator type and count, and sizes its machine from the CPU and memory
limits. GKE places the pod through node selectors (accelerator, TPU topology, machine type) and
the accelerator's resource limit (``google.com/tpu``, ``nvidia.com/gpu``). A TPU step runs the TPU
image with ``PJRT_DEVICE=TPU`` (one process, every chip); a step with N GPUs runs the CUDA image
under ``torchrun`` with N processes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mammolibs import __version__
from mammolibs.train import RECIPE

TARGETS = ("vertex", "kubeflow")
STEPS = ("standardize", "merge", *RECIPE, "evaluate", "predict", "generalize")
TRAINING_STEPS = (*RECIPE, "generalize")  # generalize: one process


@dataclass(frozen=True)
class Accelerator:
    name: str  # what users write: tpu-v5e, nvidia-l4, ...
    vertex_type: str  # Vertex AI's AcceleratorType
    gke_label: str  # the GKE node label value of such nodes
    image: str  # which mammoflow image runs on it: tpu or cuda
    tpu_topologies: dict[int, str] = field(default_factory=dict)  # chips on one host -> GKE topology

    @property
    def is_tpu(self) -> bool:
        return self.image == "tpu"


ACCELERATORS = {
    a.name: a
    for a in (
        Accelerator("tpu-v5e", "TPU_V5_LITEPOD", "tpu-v5-lite-podslice", "tpu", {1: "1x1", 4: "2x2", 8: "2x4"}),
        Accelerator("tpu-v4", "TPU_V4_POD", "tpu-v4-podslice", "tpu", {4: "2x2x1"}),
        Accelerator("nvidia-t4", "NVIDIA_TESLA_T4", "nvidia-tesla-t4", "cuda"),
        Accelerator("nvidia-l4", "NVIDIA_L4", "nvidia-l4", "cuda"),
        Accelerator("nvidia-a100", "NVIDIA_TESLA_A100", "nvidia-tesla-a100", "cuda"),
        Accelerator("nvidia-a100-80gb", "NVIDIA_A100_80GB", "nvidia-a100-80gb", "cuda"),
        Accelerator("nvidia-h100", "NVIDIA_H100_80GB", "nvidia-h100-80gb", "cuda"),
    )
}

MACHINES = {  # machine type -> (vCPUs, memory GB), for Vertex AI's CPU and memory limits
    "e2-standard-4": (4, 16),
    "e2-standard-8": (8, 32),
    "e2-standard-16": (16, 64),
    "e2-standard-32": (32, 128),
    "n1-standard-4": (4, 15),
    "n1-standard-8": (8, 30),
    "n1-standard-16": (16, 60),
    "n1-standard-32": (32, 120),
    "n2-standard-8": (8, 32),
    "n2-standard-16": (16, 64),
    "n2-standard-32": (32, 128),
    "n2-highmem-16": (16, 128),
    "g2-standard-8": (8, 32),
    "g2-standard-12": (12, 48),
    "g2-standard-16": (16, 64),
    "g2-standard-24": (24, 96),
    "a2-highgpu-1g": (12, 85),
    "a2-highgpu-2g": (24, 170),
    "a2-highgpu-4g": (48, 340),
    "a2-ultragpu-1g": (12, 170),
}


@dataclass(frozen=True)
class StepHardware:
    accelerator: Accelerator | None = None
    count: int = 0
    machine_type: str | None = None

    @property
    def image(self) -> str:
        return self.accelerator.image if self.accelerator else "cpu"

    @property
    def processes(self) -> int:
        """Training processes: one per GPU; one for a TPU host (SPMD over its chips) or a CPU machine."""
        return self.count if self.accelerator and not self.accelerator.is_tpu else 1


@dataclass(frozen=True)
class Hardware:
    """Images and per-step hardware for one compile target."""

    target: str = "kubeflow"
    registry: str = "mammoflow"
    tag: str = __version__
    steps: dict[str, StepHardware] = field(default_factory=dict)

    def image(self, step: str) -> str:
        return f"{self.registry}/mammoflow-{self.step(step).image}:{self.tag}"

    def step(self, step: str) -> StepHardware:
        return self.steps.get(step, StepHardware())

    def processes(self, step: str) -> int:
        return self.step(step).processes

    def apply(self, task, step: str):
        """Set ``task``'s image, accelerator, machine and environment for ``step``; returns the task."""
        hardware = self.step(step)
        task.set_container_image(self.image(step))
        accelerator = hardware.accelerator
        if accelerator and accelerator.is_tpu:
            task.set_env_variable("PJRT_DEVICE", "TPU")
        if self.target == "vertex":
            if accelerator:
                task.set_accelerator_type(accelerator.vertex_type).set_accelerator_limit(hardware.count)
            if hardware.machine_type:
                cpus, memory = MACHINES[hardware.machine_type]
                task.set_cpu_limit(str(cpus)).set_memory_limit(f"{memory}G")
            return task
        from kfp import kubernetes

        if accelerator:
            resource = "google.com/tpu" if accelerator.is_tpu else "nvidia.com/gpu"
            task.set_accelerator_type(resource).set_accelerator_limit(hardware.count)
            if accelerator.is_tpu:
                kubernetes.add_node_selector(task, "cloud.google.com/gke-tpu-accelerator", accelerator.gke_label)
                kubernetes.add_node_selector(
                    task, "cloud.google.com/gke-tpu-topology", accelerator.tpu_topologies[hardware.count]
                )
            else:
                kubernetes.add_node_selector(task, "cloud.google.com/gke-accelerator", accelerator.gke_label)
        if hardware.machine_type:
            kubernetes.add_node_selector(task, "node.kubernetes.io/instance-type", hardware.machine_type)
        return task


PLACEHOLDER = re.compile(r"(^|/)(REGISTRY|PROJECT|BUCKET|REGION)(/|$)|[<>$]|\.\.\.")


def _check_registry(target: str, registry: str) -> None:
    """Refuse a registry copied from an example (``REGISTRY``, ``.../PROJECT/...``, ``<...>``), and on
    Vertex AI one without a host (``mammoflow``: not a registry Vertex can pull the images from)."""
    if PLACEHOLDER.search(registry):
        raise ValueError(
            f"--registry {registry}: still a placeholder; give where 'make images' pushed the images, "
            "e.g. us-docker.pkg.dev/my-project/mammoflow (terraform -chdir=infra output registry)"
        )
    host = registry.split("/", 1)[0]
    if target == "vertex" and ("." not in host and ":" not in host):
        raise ValueError(
            f"--registry {registry}: Vertex AI pulls images from a registry host, e.g. "
            "us-docker.pkg.dev/my-project/mammoflow; push them there with 'make images REGISTRY=...'"
        )


def parse_hardware(
    target: str, accelerators: list[str], machine_types: list[str], registry: str = "mammoflow", tag: str = __version__
) -> Hardware:
    """``--accelerator STEP=NAME:COUNT`` and ``--machine-type STEP=TYPE`` entries -> :class:`Hardware`,
    with every mistake named (unknown step, accelerator, count or machine) before anything compiles."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    chosen: dict[str, dict] = {}
    for entry in accelerators:
        step, kind = _step_entry(entry, "--accelerator", "STEP=NAME:COUNT, e.g. finetune=nvidia-l4:1")
        if step not in TRAINING_STEPS:
            raise ValueError(f"--accelerator {entry}: accelerators go to training steps ({', '.join(TRAINING_STEPS)})")
        name, _, count_text = kind.partition(":")
        if name not in ACCELERATORS:
            raise ValueError(
                f"--accelerator {entry}: unknown accelerator {name!r}; choose one of {', '.join(ACCELERATORS)}"
            )
        if not count_text.isdigit() or int(count_text) < 1:
            raise ValueError(f"--accelerator {entry}: give a count of 1 or more after the colon, e.g. {name}:1")
        accelerator, count = ACCELERATORS[name], int(count_text)
        if accelerator.is_tpu and count not in accelerator.tpu_topologies:
            raise ValueError(
                f"--accelerator {entry}: a {name} step runs on one TPU host of "
                f"{' or '.join(map(str, accelerator.tpu_topologies))} chips"
            )
        chosen.setdefault(step, {}).update(accelerator=accelerator, count=count)
    for entry in machine_types:
        step, machine = _step_entry(entry, "--machine-type", "STEP=TYPE, e.g. standardize=n2-standard-16")
        chosen.setdefault(step, {})["machine_type"] = machine
    for step, settings in chosen.items():
        if target == "vertex" and settings.get("machine_type"):
            _check_vertex_machine(step, settings)
    _check_registry(target, registry)
    return Hardware(target, registry, tag, {step: StepHardware(**settings) for step, settings in chosen.items()})


def _step_entry(entry: str, flag: str, form: str) -> tuple[str, str]:
    step, sep, value = entry.partition("=")
    if not sep or not value:
        raise ValueError(f"{flag} {entry!r}: write {form}")
    if step not in STEPS:
        raise ValueError(f"{flag} {entry}: unknown step {step!r}; the steps are {', '.join(STEPS)}")
    return step, value


def _check_vertex_machine(step: str, settings: dict) -> None:
    machine = settings["machine_type"]
    accelerator = settings.get("accelerator")
    if accelerator and accelerator.is_tpu:
        raise ValueError(
            f"--machine-type {step}={machine}: on Vertex AI a TPU step's machine follows from its "
            "accelerator; leave --machine-type out for that step"
        )
    if machine not in MACHINES:
        raise ValueError(
            f"--machine-type {step}={machine}: Vertex AI sizes a step by CPU and memory, known here for "
            f"{', '.join(MACHINES)}"
        )
