"""Start a step's Kubernetes job (:mod:`mammolibs.pipeline.jobs`) from the step's own pod, and wait for it.

The job gets a fresh name and its pods the ``mammo`` arguments; the step then waits until the Training
Operator (PyTorchJob) or the JobSet controller reports it succeeded or failed, and fails with it. A step
stopped while it waits (the run cancelled) deletes the job, so no machine is left training. The step's
service account needs to create, get and delete the job's kind in its namespace (see the README).
"""

from __future__ import annotations

import copy
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator

log = logging.getLogger(__name__)

PLURALS = {"PyTorchJob": "pytorchjobs", "JobSet": "jobsets"}
SUCCEEDED = {"Succeeded", "Completed"}  # PyTorchJob's and JobSet's word for it
FAILED = "Failed"
POD_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
POLL_S = 30.0
"""Seconds between two looks at the job's status."""


def run_job(job: dict, args: list[str], prefix: str) -> str:
    """Start ``job`` with its pods running ``replica ... -- ARGS``; return its name once it succeeded.
    Raises RuntimeError naming the job when it fails."""
    from kubernetes import client, config

    config.load_config(**kubeconfig())  # in a pod: its service account; elsewhere $KUBECONFIG
    api = client.CustomObjectsApi()
    group, version = job["apiVersion"].split("/")
    where = (group, version, namespace(), PLURALS[job["kind"]])
    name = f"{prefix}-{secrets.token_hex(4)}"
    main_thread = threading.current_thread() is threading.main_thread()  # where signals can be caught
    stop = signal.signal(signal.SIGTERM, _stopped) if main_thread else None  # before the job can exist
    try:
        api.create_namespaced_custom_object(*where, with_arguments(job, name, args))
        log.warning("started %s %s in namespace %s; waiting for it", job["kind"], name, where[2])
        while True:
            status = api.get_namespaced_custom_object(*where, name).get("status") or {}
            done = {c["type"]: c.get("message", "") for c in status.get("conditions", []) if c.get("status") == "True"}
            if SUCCEEDED & done.keys():
                return name
            if FAILED in done:
                raise RuntimeError(f"{job['kind']} {name} failed: {done[FAILED]}")
            time.sleep(POLL_S)
    except (KeyboardInterrupt, SystemExit):
        _delete(api, where, name, job["kind"])
        raise
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, stop)


def _delete(api, where: tuple[str, ...], name: str, kind: str) -> None:
    """Delete the job, which may not exist yet when the step was stopped while creating it."""
    from kubernetes.client.exceptions import ApiException

    try:
        api.delete_namespaced_custom_object(*where, name, propagation_policy="Foreground")
    except ApiException as error:
        if error.status != 404:
            raise
        log.warning("stopped before %s %s was created", kind, name)
        return
    log.warning("stopped: deleted %s %s", kind, name)


def with_arguments(job: dict, name: str, args: list[str]) -> dict:
    """A copy of ``job`` named ``name`` whose containers get ``-- ARGS`` after their command."""
    job = copy.deepcopy(job)
    job["metadata"]["name"] = name
    for pod in pod_templates(job):
        for container in pod["spec"]["containers"]:
            container["args"] = ["--", *args]
    return job


def pod_templates(job: dict) -> Iterator[dict]:
    """The pod templates of a PyTorchJob's replicas or a JobSet's jobs."""
    spec = job["spec"]
    for replica in spec.get("pytorchReplicaSpecs", {}).values():
        yield replica["template"]
    for replicated in spec.get("replicatedJobs", []):
        yield replicated["template"]["spec"]["template"]


def namespace() -> str:
    """The step's namespace: its pod's, else the current kubeconfig context's, else ``default``."""
    if os.path.exists(POD_NAMESPACE):
        with open(POD_NAMESPACE) as f:
            return f.read().strip()
    from kubernetes import config

    try:
        _, context = config.list_kube_config_contexts(**kubeconfig())
    except config.ConfigException:
        return "default"
    return context.get("context", {}).get("namespace", "default")


def kubeconfig() -> dict:
    """``$KUBECONFIG`` as it is now (the kubernetes client reads it once, when first imported)."""
    return {"config_file": os.environ["KUBECONFIG"]} if os.environ.get("KUBECONFIG") else {}


def _stopped(signum, frame) -> None:
    raise SystemExit(f"stopped by signal {signum}")
