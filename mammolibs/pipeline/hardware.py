"""What each pipeline step runs on: image, accelerator and machine, for Vertex AI or Kubeflow on GKE.

Chosen when the pipeline is compiled (``mammo pipeline compile --help``)::

    --target vertex   --accelerator encoder=tpu-v5e:8 --accelerator finetune=nvidia-h100:8
    --target vertex   --machine-type standardize=c3-highcpu-22 --machine-type finetune=a2-ultragpu-1g \
                      --accelerator finetune=nvidia-a100-80gb:1
    --target kubeflow --accelerator finetune=tpu-v5e:4 --machine-type standardize=n2-standard-16
    --target vertex   --accelerator encoder=tpu-v5e:16 --accelerator finetune=nvidia-h100:8x4

A TPU count is the chips of a slice: 1, 4 or 8 fit one host; a larger slice (``tpu-v5e:16``, topology
4x4) spans several hosts of 4 chips, each running the same command, torch-xla finding its process index
and count. A GPU count may name several machines, ``COUNTxMACHINES``: ``nvidia-h100:8x4`` is four
machines of eight GPUs, one torchrun node each (:mod:`mammolibs.pipeline.replica`). On Vertex AI such a
step is a custom job of that many replicas (a slice: its machine type and topology); on Kubeflow the
step's pod starts a JobSet (TPU slice) or a Training Operator PyTorchJob (GPU machines) and waits for it
(:mod:`mammolibs.pipeline.jobs`). Node 0 (host 0) alone writes checkpoints, logs and the step's model.

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
    vertex_type: str  # Vertex AI's AcceleratorType of a GPU (a TPU machine type names its chips)
    gke_label: str  # the GKE node label value of such nodes
    image: str  # which mammoflow image runs on it: tpu or cuda
    vertex_machines: dict[int, str]  # count -> the Vertex AI machine type that carries that many
    vertex_families: tuple[str, ...]  # prefixes of the Vertex AI machine types that carry it
    tpu_topologies: dict[int, str] = field(default_factory=dict)  # chips of a slice -> its topology
    host_chips: int = 0  # chips on each host of a slice of several hosts

    @property
    def is_tpu(self) -> bool:
        return self.image == "tpu"

    def tpu_hosts(self, chips: int) -> int:
        """Hosts of a slice of ``chips``: one where a machine carries them all, else hosts of ``host_chips``."""
        return 1 if chips in self.vertex_machines else chips // self.host_chips


def _sizes(pattern: str, counts: tuple[int, ...]) -> dict[int, str]:
    return {count: pattern.format(count) for count in counts}


TOPOLOGIES_2D = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16", 256: "16x16"}
TOPOLOGIES_3D = {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4", 128: "4x4x8", 256: "4x8x8"}
"""Slice topologies as GKE's ``cloud.google.com/gke-tpu-topology`` and Vertex AI's ``tpu_topology`` name
them: v5e and v6e slices are 2D, v4 and v5p 3D."""

ACCELERATORS = {
    a.name: a
    for a in (
        Accelerator(
            "tpu-v5e",
            "",
            "tpu-v5-lite-podslice",
            "tpu",
            _sizes("ct5lp-hightpu-{}t", (1, 4, 8)),
            ("ct5lp-",),
            TOPOLOGIES_2D,
            host_chips=4,
        ),
        Accelerator(
            "tpu-v6e",
            "",
            "tpu-v6e-slice",
            "tpu",
            _sizes("ct6e-standard-{}t", (1, 4, 8)),
            ("ct6e-",),
            TOPOLOGIES_2D,
            host_chips=4,
        ),
        Accelerator("tpu-v4", "", "tpu-v4-podslice", "tpu", {4: "ct4p-hightpu-4t"}, ("ct4p-",), TOPOLOGIES_3D, 4),
        Accelerator("tpu-v5p", "", "tpu-v5p-slice", "tpu", {4: "ct5p-hightpu-4t"}, ("ct5p-",), TOPOLOGIES_3D, 4),
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
    count: int = 0  # GPUs of each machine, or chips of the TPU slice
    machine_type: str | None = None
    machines: int = 1  # GPU machines

    @property
    def image(self) -> str:
        return self.accelerator.image if self.accelerator else "cpu"

    @property
    def is_tpu(self) -> bool:
        return bool(self.accelerator and self.accelerator.is_tpu)

    @property
    def processes(self) -> int:
        """Training processes on each machine: one per GPU; one for a TPU host (SPMD over its chips) or a
        CPU machine."""
        return self.count if self.accelerator and not self.is_tpu else 1

    @property
    def hosts(self) -> int:
        """Machines the step runs on: its GPU machines, or the hosts of its TPU slice."""
        return self.accelerator.tpu_hosts(self.count) if self.is_tpu else self.machines  # type: ignore[union-attr]

    @property
    def nodes(self) -> int:
        """torchrun nodes: the GPU machines (a TPU slice is one torch-xla program over its hosts)."""
        return 1 if self.is_tpu else self.machines

    @property
    def host_accelerators(self) -> int:
        """Accelerators on each machine: its GPUs, or its host's share of the slice's chips."""
        return self.count // self.hosts if self.is_tpu else self.count

    @property
    def host_machine(self) -> str:
        """The Vertex AI machine type of each machine."""
        accelerator = self.accelerator
        if self.machine_type or accelerator is None:
            return self.machine_type or ""
        return accelerator.vertex_machines[self.host_accelerators]

    @property
    def tpu_topology(self) -> str:
        return self.accelerator.tpu_topologies[self.count] if self.is_tpu else ""  # type: ignore[union-attr]

    @property
    def placement(self) -> dict:
        """What the step's training command needs to know of its machines (``steps.train_stage``)."""
        return {"processes": self.processes, "nodes": self.nodes}


@dataclass(frozen=True)
class Hardware:
    """Images and per-step hardware for one compile target."""

    target: str = "kubeflow"
    registry: str = "mammoflow"
    tag: str = __version__
    steps: dict[str, StepHardware] = field(default_factory=dict)

    def image(self, step: str) -> str:
        return self.image_of(self.step(step).image)

    def image_of(self, kind: str) -> str:
        """The image of ``kind``: cpu, cuda or tpu."""
        return f"{self.registry}/mammoflow-{kind}:{self.tag}"

    def step(self, step: str) -> StepHardware:
        return self.steps.get(step, StepHardware())

    def starts_job(self, step: str) -> bool:
        """On Kubeflow, a step of several machines is a CPU pod that starts their job (``jobs.py``)."""
        return self.target == "kubeflow" and self.step(step).hosts > 1

    def task(self, component, step: str, **arguments):
        """Call ``component`` with ``arguments`` as pipeline step ``step``, on its hardware; returns the task.
        On Vertex AI a step with an accelerator or a machine type becomes a custom job on that machine
        (or those machines); on Kubeflow a step of several machines is a CPU pod that starts their job."""
        hardware = self.step(step)
        if self.target == "vertex" and (hardware.accelerator or hardware.machine_type):
            return self._custom_job(component, step)(**arguments)
        if self.starts_job(step):
            return component(**arguments).set_container_image(self.image_of("cpu"))
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
        for label, value in node_selectors(hardware).items():
            kubernetes.add_node_selector(task, label, value)
        return task

    def _custom_job(self, component, step: str):
        """``component`` as a Vertex AI custom job on the step's machines, running the step's image: one
        replica per machine (worker pool 0 the primary, pool 1 the rest), or per TPU slice."""
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
            replica_count=hardware.nodes,  # a TPU slice is one replica, its hosts Vertex AI's to start
            machine_type=hardware.host_machine,
            accelerator_type=accelerator.vertex_type if gpus else "",  # type: ignore[union-attr]
            accelerator_count=hardware.count if gpus else 0,
            env=[{"name": "PJRT_DEVICE", "value": "TPU"}] if hardware.is_tpu else None,
            restart_job_on_worker_restart=hardware.hosts > 1,  # every node back at the last checkpoint
        )
        for pool in job.component_spec.inputs["worker_pool_specs"].default:
            pool["container_spec"]["image_uri"] = self.image(step)
            if hardware.is_tpu:
                pool["machine_spec"]["tpu_topology"] = hardware.tpu_topology
        return job


def node_selectors(hardware: StepHardware) -> dict[str, str]:
    """The GKE node labels of the machines a step runs on: accelerator, TPU topology, machine type."""
    selectors = {}
    accelerator = hardware.accelerator
    if accelerator and accelerator.is_tpu:
        selectors["cloud.google.com/gke-tpu-accelerator"] = accelerator.gke_label
        selectors["cloud.google.com/gke-tpu-topology"] = hardware.tpu_topology
    elif accelerator:
        selectors["cloud.google.com/gke-accelerator"] = accelerator.gke_label
    if hardware.machine_type:
        selectors["node.kubernetes.io/instance-type"] = hardware.machine_type
    return selectors


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
        chosen.setdefault(step, {}).update(_parse_accelerator(entry, step, kind))
    for entry in machine_types:
        step, machine = _step_entry(entry, "--machine-type", "STEP=TYPE, e.g. standardize=n2-standard-16")
        chosen.setdefault(step, {})["machine_type"] = machine
    for step, settings in chosen.items():
        _check_machine(target, step, settings)
    _check_registry(target, registry)
    return Hardware(target, registry, tag, {step: StepHardware(**settings) for step, settings in chosen.items()})


def _parse_accelerator(entry: str, step: str, kind: str) -> dict:
    """``NAME:COUNT`` or, for GPUs, ``NAME:COUNTxMACHINES`` -> StepHardware's accelerator settings."""
    if step not in TRAINING_STEPS:
        raise ValueError(f"--accelerator {entry}: accelerators go to training steps ({', '.join(TRAINING_STEPS)})")
    name, _, size = kind.partition(":")
    if name not in ACCELERATORS:
        raise ValueError(
            f"--accelerator {entry}: unknown accelerator {name!r}; choose one of {', '.join(ACCELERATORS)}"
        )
    accelerator = ACCELERATORS[name]
    count_text, times, machines_text = size.partition("x")
    if not count_text.isdigit() or int(count_text) < 1:
        raise ValueError(f"--accelerator {entry}: give a count of 1 or more after the colon, e.g. {name}:1")
    count, machines = int(count_text), int(machines_text) if machines_text.isdigit() else 0
    if accelerator.is_tpu:
        if times or count not in accelerator.tpu_topologies:
            raise ValueError(
                f"--accelerator {entry}: a {name} step runs on a slice of "
                f"{' or '.join(map(str, accelerator.tpu_topologies))} chips (more than "
                f"{max(accelerator.vertex_machines)}: hosts of {accelerator.host_chips}), e.g. {name}:16"
            )
    elif times and machines < 1:
        raise ValueError(
            f"--accelerator {entry}: write GPUs per machine x machines, e.g. {name}:{count}x2 for two machines"
        )
    multi_machine = machines > 1 or (accelerator.is_tpu and accelerator.tpu_hosts(count) > 1)
    if multi_machine and step not in RECIPE:
        raise ValueError(f"--accelerator {entry}: {step} runs on one machine; several go to {', '.join(RECIPE)}")
    return {"accelerator": accelerator, "count": count, "machines": machines or 1}


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
    if machine is None and not accelerator.is_tpu and count not in accelerator.vertex_machines:
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
