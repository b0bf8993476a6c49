"""Where one machine of a multi-machine step meets the others: its node rank, the count of nodes and
node 0's address, from what the platform sets on each machine.

- Vertex AI custom jobs: ``CLUSTER_SPEC`` (``{"cluster": {"workerpool0": ["host:port"], "workerpool1":
  [...]}, "task": {"type": "workerpool1", "index": 0}}``), worker pool 0 being node 0;
- Kubeflow Training Operator ``PyTorchJob``: ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK`` (the replica,
  Master 0) and ``WORLD_SIZE`` (the replicas), one replica per machine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

PYTORCH_JOB = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE")


@dataclass(frozen=True)
class Rendezvous:
    node_rank: int
    nodes: int
    address: str  # node 0's host
    port: int

    def torchrun_flags(self) -> list[str]:
        return [
            f"--nnodes={self.nodes}",
            f"--node-rank={self.node_rank}",
            f"--master-addr={self.address}",
            f"--master-port={self.port}",
        ]


def node_rendezvous(environ: Mapping[str, str] = os.environ) -> Rendezvous:
    """This machine's :class:`Rendezvous`, from Vertex AI's ``CLUSTER_SPEC`` or a PyTorchJob's variables."""
    if "CLUSTER_SPEC" in environ:
        return _vertex(environ["CLUSTER_SPEC"])
    if all(name in environ for name in PYTORCH_JOB):
        try:
            node_rank, nodes, port = (int(environ[name]) for name in ("RANK", "WORLD_SIZE", "MASTER_PORT"))
        except ValueError:
            raise ValueError(f"RANK, WORLD_SIZE and MASTER_PORT must be whole numbers: {_show(environ)}") from None
        return _checked(Rendezvous(node_rank, nodes, environ["MASTER_ADDR"], port), "the PyTorchJob's variables")
    raise ValueError(
        "this machine is one node of several, but nothing says where node 0 is: run it as a replica of a "
        f"Vertex AI custom job (CLUSTER_SPEC) or of a Kubeflow PyTorchJob ({', '.join(PYTORCH_JOB)})"
    )


def _vertex(text: str) -> Rendezvous:
    try:
        spec = json.loads(text)
        cluster, task = spec["cluster"], spec["task"]
        primary, workers = cluster["workerpool0"], cluster.get("workerpool1", [])
        host, _, port = primary[0].rpartition(":")
        pool, index = task["type"], int(task["index"])
        node_rank = 0 if pool == "workerpool0" else 1 + index
        if pool not in ("workerpool0", "workerpool1"):
            raise ValueError(f"a replica of {pool}")
        return _checked(Rendezvous(node_rank, len(primary) + len(workers), host, int(port)), "CLUSTER_SPEC")
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise ValueError(f"CLUSTER_SPEC does not read as Vertex AI's cluster of worker pools ({err}): {text[:200]}")


def _checked(rendezvous: Rendezvous, source: str) -> Rendezvous:
    if not (rendezvous.address and 0 < rendezvous.port < 65536 and 0 <= rendezvous.node_rank < rendezvous.nodes):
        raise ValueError(f"{source} gives no usable node 0 and rank: {rendezvous}")
    return rendezvous


def _show(environ: Mapping[str, str]) -> str:
    return ", ".join(f"{name}={environ[name]!r}" for name in PYTORCH_JOB)
