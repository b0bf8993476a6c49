"""What each pipeline step runs on: image, accelerator and machine, for Vertex AI or Kubeflow on GKE.

Chosen when the pipeline is compiled (``mammo pipeline compile --help``)::

    --target vertex   --accelerator encoder=tpu-v5e:8 --accelerator finetune=nvidia-h100:8
    --target vertex   --machine-type standardize=c3-highcpu-22 --machine-type finetune=a2-ultragpu-1g \
                      --accelerator finetune=nvidia-a100-80gb:1
    --target kubeflow --accelerator finetune=tpu-v5e:4 --machine-type standardize=n2-standard-16

On Vertex AI a step with an accelerator or a machine type runs as a custom job (Google Cloud Pipeline
Components' ``create_custom_training_job_from_component``) on exactly that machine, named as Vertex
names it (``a3-highgpu-8g``, ``g2-standard-24``, ``ct5lp-hightpu-4t``, any other); an accelerator
without a machine type gets the machine Vertex pairs with that many of it. GKE places the pod through
node selectors (accelerator, TPU topology, machine type) and the accelerator's resource limit
(``google.com/tpu``, ``nvidia.com/gpu``). A TPU step runs the TPU image with ``PJRT_DEVICE=TPU`` (one
process, every chip); a step with N GPUs runs the CUDA image under ``torchrun`` with N processes.
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
    vertex_machines: dict[int, str]  # count -> the Vertex AI machine type that carries that many
    vertex_families: tuple[str, ...]  # prefixes of the Vertex AI machine types that carry it
    tpu_topologies: dict[int, str] = field(default_factory=dict)  # chips on one host -> topology

    @property
    def is_tpu(self) -> bool:
        return self.image == "tpu"


def _sizes(pattern: str, counts: tuple[int, ...]) -> dict[int, str]:
    return {count: pattern.format(count) for count in counts}


ACCELERATORS = {
    a.name: a
    for a in (
        Accelerator(
            "tpu-v5e",
            "TPU_V5_LITEPOD",
            "tpu-v5-lite-podslice",
            "tpu",
            _sizes("ct5lp-hightpu-{}t", (1, 4, 8)),
            ("ct5lp-",),
            {1: "1x1", 4: "2x2", 8: "2x4"},
        ),
        Accelerator("tpu-v4", "TPU_V4_POD", "tpu-v4-podslice", "tpu", {4: "ct4p-hightpu-4t"}, ("ct4p-",), {4: "2x2x1"}),
        Accelerator(
            "nvidia-t4",
            "NVIDIA_TESLA_T4",
            "nvidia-tesla-t4",
            "cuda",
            {1: "n1-standard-8", 2: "n1-standard-16", 4: "n1-standard-32"},
            ("n1-",),
        ),
        Accelerator(
            "nvidia-l4",
            "NVIDIA_L4",
            "nvidia-l4",
            "cuda",
            {1: "g2-standard-8", 2: "g2-standard-24", 4: "g2-standard-48", 8: "g2-standard-96"},
            ("g2-",),
        ),
        Accelerator(
            "nvidia-a100",
            "NVIDIA_TESLA_A100",
            "nvidia-tesla-a100",
            "cuda",
            {**_sizes("a2-highgpu-{}g", (1, 2, 4, 8)), 16: "a2-megagpu-16g"},
            ("a2-highgpu-", "a2-megagpu-"),
        ),
        Accelerator(
            "nvidia-a100-80gb",
            "NVIDIA_A100_80GB",
            "nvidia-a100-80gb",
            "cuda",
            _sizes("a2-ultragpu-{}g", (1, 2, 4, 8)),
            ("a2-ultragpu-",),
        ),
        Accelerator(
            "nvidia-h100",
            "NVIDIA_H100_80GB",
            "nvidia-h100-80gb",
            "cuda",
            _sizes("a3-highgpu-{}g", (1, 2, 4, 8)),
            ("a3-highgpu-", "a3-megagpu-", "a3-edgegpu-"),
        ),
    )
}

MACHINE_TYPE = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)+")
"""A Compute Engine machine type's form (``n2-standard-16``, ``a3-highgpu-8g``, ``ct5lp-hightpu-4t``)."""


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

    def task(self, component, step: str, **arguments):
        """Call ``component`` with ``arguments`` as pipeline step ``step``, on its hardware; returns the task.
        On Vertex AI a step with an accelerator or a machine type becomes a custom job on that machine."""
        hardware = self.step(step)
        if self.target == "vertex" and (hardware.accelerator or hardware.machine_type):
            return self._custom_job(component, step)(**arguments)
        task = component(**arguments).set_container_image(self.image(step))
        accelerator = hardware.accelerator
        if self.target == "vertex":
            return task
        from kfp import kubernetes

        if accelerator:
            resource = "google.com/tpu" if accelerator.is_tpu else "nvidia.com/gpu"
            task.set_accelerator_type(resource).set_accelerator_limit(hardware.count)
            if accelerator.is_tpu:
                task.set_env_variable("PJRT_DEVICE", "TPU")
                kubernetes.add_node_selector(task, "cloud.google.com/gke-tpu-accelerator", accelerator.gke_label)
                kubernetes.add_node_selector(
                    task, "cloud.google.com/gke-tpu-topology", accelerator.tpu_topologies[hardware.count]
                )
            else:
                kubernetes.add_node_selector(task, "cloud.google.com/gke-accelerator", accelerator.gke_label)
        if hardware.machine_type:
            kubernetes.add_node_selector(task, "node.kubernetes.io/instance-type", hardware.machine_type)
        return task

    def _custom_job(self, component, step: str):
        """``component`` as a Vertex AI custom job on the step's machine, running the step's image."""
        try:
            from google_cloud_pipeline_components.v1.custom_job import create_custom_training_job_from_component
        except ImportError:
            raise ValueError(
                f"{step}: placing a step on a Vertex AI machine needs Google Cloud Pipeline Components; "
                "install them with: pip install 'mammoflow[vertex]'"
            ) from None
        hardware = self.step(step)
        accelerator = hardware.accelerator
        gpus = accelerator and not accelerator.is_tpu
        job = create_custom_training_job_from_component(
            component,
            machine_type=hardware.machine_type or accelerator.vertex_machines[hardware.count],  # type: ignore[union-attr]
            accelerator_type=accelerator.vertex_type if gpus else "",  # type: ignore[union-attr]
            accelerator_count=hardware.count if gpus else 0,
            env=[{"name": "PJRT_DEVICE", "value": "TPU"}] if accelerator and accelerator.is_tpu else None,
        )
        [pool] = job.component_spec.inputs["worker_pool_specs"].default
        pool["container_spec"]["image_uri"] = self.image(step)
        if accelerator and accelerator.is_tpu:
            pool["machine_spec"]["tpu_topology"] = accelerator.tpu_topologies[hardware.count]
        return job


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
        _check_machine(target, step, settings)
    _check_registry(target, registry)
    return Hardware(target, registry, tag, {step: StepHardware(**settings) for step, settings in chosen.items()})


def _step_entry(entry: str, flag: str, form: str) -> tuple[str, str]:
    step, sep, value = entry.partition("=")
    if not sep or not value:
        raise ValueError(f"{flag} {entry!r}: write {form}")
    if step not in STEPS:
        raise ValueError(f"{flag} {entry}: unknown step {step!r}; the steps are {', '.join(STEPS)}")
    return step, value


def _check_machine(target: str, step: str, settings: dict) -> None:
    """A machine type of a machine type's form; on Vertex AI one that carries the step's accelerator, or
    an accelerator count that Vertex AI has a machine for."""
    machine, accelerator = settings.get("machine_type"), settings.get("accelerator")
    if machine is not None and not MACHINE_TYPE.fullmatch(machine):
        raise ValueError(
            f"--machine-type {step}={machine}: not a machine type; write it as Compute Engine names them, "
            "e.g. n2-standard-16, a3-highgpu-8g, ct5lp-hightpu-4t"
        )
    if target != "vertex" or accelerator is None:
        return
    count = settings["count"]
    if machine is None and count not in accelerator.vertex_machines:
        raise ValueError(
            f"--accelerator {step}={accelerator.name}:{count}: Vertex AI has machines with "
            f"{' or '.join(map(str, accelerator.vertex_machines))} of them; choose one of those counts or "
            "name the machine with --machine-type"
        )
    if machine is not None and not machine.startswith(accelerator.vertex_families):
        raise ValueError(
            f"--machine-type {step}={machine}: Vertex AI attaches {accelerator.name} to "
            f"{', '.join(f + '*' for f in accelerator.vertex_families)} machines, e.g. "
            f"{accelerator.vertex_machines[min(accelerator.vertex_machines)]}"
        )
