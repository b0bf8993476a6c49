"""The Kubernetes job of a Kubeflow step that spans several machines, written when the pipeline compiles.

GKE runs a multi-host TPU slice as a JobSet: one indexed Job with a pod on each host, placed by the
slice's accelerator and topology node selectors, each pod asking for its host's chips. Several GPU
machines are a Kubeflow Training Operator ``PyTorchJob``: a Master and Workers, one pod per machine
asking for its GPUs. Every pod runs :mod:`mammolibs.pipeline.replica`, which starts ``mammo train`` as
its node (under torchrun for GPUs; torch-xla finds a TPU host's index itself). The step's own pod fills
in the job's name and the ``mammo`` arguments and starts it (:mod:`mammolibs.pipeline.launcher`).
"""

from __future__ import annotations

from mammolibs.pipeline.hardware import Hardware, StepHardware, node_selectors

REPLICA = ["python", "-m", "mammolibs.pipeline.replica"]
RESTARTS = 3
"""How often a failed job starts again (every pod, from the last checkpoint) before the step fails."""
KEEP_FINISHED_S = 86400
"""How long a finished job and its pods (and their logs) stay."""
LABELS = {"app.kubernetes.io/part-of": "mammoflow"}
NODE_POOL = "cloud.google.com/gke-nodepool"
"""A slice's hosts are one GKE node pool: JobSet puts the slice's pods in one pool, not across two."""


def placement(hardware: Hardware, step: str) -> dict:
    """The ``placement`` argument of a training step: processes and nodes; on Kubeflow, for a step of
    several machines, also the job that its pod starts on them."""
    step_hardware = hardware.step(step)
    if hardware.starts_job(step):
        return {**step_hardware.placement, "job": cluster_job(step_hardware, hardware.image(step))}
    return step_hardware.placement


def cluster_job(hardware: StepHardware, image: str) -> dict:
    """The JobSet (TPU slice) or PyTorchJob (GPU machines) that runs a step on its machines."""
    resource = "google.com/tpu" if hardware.is_tpu else "nvidia.com/gpu"
    container: dict = {
        "name": "mammoflow" if hardware.is_tpu else "pytorch",  # the Training Operator finds "pytorch"
        "image": image,
        "command": [*REPLICA, "--processes", str(hardware.processes), "--nodes", str(hardware.nodes)],
        "resources": {"limits": {resource: hardware.host_accelerators}},
        "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],  # DataLoader workers' batches
    }
    pod: dict = {
        "metadata": {"labels": LABELS},
        "spec": {
            "nodeSelector": node_selectors(hardware),
            "containers": [container],
            "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}],
        },
    }
    if hardware.is_tpu:
        container["env"] = [{"name": "PJRT_DEVICE", "value": "TPU"}]
        container["ports"] = [{"containerPort": 8471}, {"containerPort": 8080}]  # the slice's hosts meet here
        pod["spec"] |= {"restartPolicy": "Never", "hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"}
        return {
            "apiVersion": "jobset.x-k8s.io/v1alpha2",
            "kind": "JobSet",
            "metadata": {"labels": LABELS, "annotations": {"alpha.jobset.sigs.k8s.io/exclusive-topology": NODE_POOL}},
            "spec": {
                "failurePolicy": {"maxRestarts": RESTARTS},
                "ttlSecondsAfterFinished": KEEP_FINISHED_S,
                "replicatedJobs": [
                    {
                        "name": "slice",
                        "replicas": 1,
                        "template": {
                            "spec": {
                                "parallelism": hardware.hosts,
                                "completions": hardware.hosts,
                                "completionMode": "Indexed",
                                "backoffLimit": 0,
                                "template": pod,
                            }
                        },
                    }
                ],
            },
        }
    replica = {"restartPolicy": "OnFailure", "template": pod}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"labels": LABELS},
        "spec": {
            "runPolicy": {"backoffLimit": RESTARTS, "ttlSecondsAfterFinished": KEEP_FINISHED_S},
            "pytorchReplicaSpecs": {
                "Master": {"replicas": 1, **replica},
                "Worker": {"replicas": hardware.hosts - 1, **replica},
            },
        },
    }
