"""Submitting a compiled pipeline (``mammo pipeline compile``) to a Kubeflow Pipelines
endpoint or to Vertex AI Pipelines, after checking its parameters against the file."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator

import yaml


def parse_parameters(pairs: list[str]) -> dict:
    """``["image_size=512", "sources=[\\"mias\\"]"]`` -> ``{"image_size": 512, "sources": ["mias"]}``
    (values read as JSON when they are JSON, else as text)."""
    parameters = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--param {pair!r}: write NAME=VALUE")
        try:
            parameters[name] = json.loads(value)
        except json.JSONDecodeError:
            parameters[name] = value
    return parameters


def read_package(package: str, parameters: dict) -> list[dict]:
    """The YAML documents of a compiled pipeline, once ``parameters`` are known to be its parameters."""
    if not os.path.isfile(package):
        raise FileNotFoundError(f"{package}: no compiled pipeline there; run 'make compile' first")
    with open(package, encoding="utf-8") as f:
        documents = list(yaml.safe_load_all(f))
    known = documents[0]["root"]["inputDefinitions"]["parameters"]
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ValueError(f"{package} has no parameter {', '.join(unknown)}; its parameters: {', '.join(sorted(known))}")
    missing = sorted(name for name, spec in known.items() if not spec.get("isOptional") and name not in parameters)
    if missing:
        raise ValueError(f"{package} needs the parameter(s) {', '.join(missing)}: add --param NAME=VALUE for each")
    return documents


def submit_to_kubeflow(
    package: str,
    host: str,
    experiment: str,
    run_name: str,
    parameters: dict,
    pipeline_root: str | None = None,
    service_account: str | None = None,
) -> str:
    """Start a run of the compiled ``package`` on the Kubeflow Pipelines API at ``host``; returns its run id."""
    import kfp

    read_package(package, parameters)
    try:
        with _quiet_retries():
            client = kfp.Client(host=host)
            run = client.create_run_from_pipeline_package(
                package,
                arguments=parameters,
                run_name=run_name,
                experiment_name=experiment,
                pipeline_root=pipeline_root,
                service_account=service_account,
            )
    except Exception as err:  # kfp's REST client wraps connection failures in several types
        if not _is_connection_error(err):
            raise
        raise ValueError(
            f"cannot reach {host} ({type(err).__name__}); is the port-forward running "
            "('kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80') and the URL right?"
        ) from None
    return run.run_id


@contextlib.contextmanager
def _quiet_retries() -> Iterator[None]:
    """urllib3's "Retrying ..." warnings held back: a host that cannot be reached gets one line, ours."""
    pool = logging.getLogger("urllib3.connectionpool")
    level = pool.level
    pool.setLevel(logging.ERROR)
    try:
        yield
    finally:
        pool.setLevel(level)


def _is_connection_error(err: BaseException | None) -> bool:
    """Whether ``err`` (or what it wraps) is a refused, reset or timed-out connection."""
    import urllib3

    while err is not None:
        if isinstance(err, (ConnectionError, urllib3.exceptions.HTTPError)) and not isinstance(
            err, urllib3.exceptions.ResponseError
        ):
            return True
        err = err.__cause__ or err.__context__
    return False


def submit_to_vertex(
    package: str,
    project: str,
    region: str,
    pipeline_root: str,
    run_name: str,
    parameters: dict,
    service_account: str | None = None,
    experiment: str | None = None,
    api_endpoint: str | None = None,
) -> str:
    """Start a Vertex AI PipelineJob of the compiled ``package``; returns its resource name.

    ``pipeline_root`` must be an existing bucket (``infra/`` makes one): Vertex AI would otherwise make
    one of its own choosing. ``experiment`` becomes a label of the job.
    """
    from google.cloud import aiplatform, storage  # type: ignore[attr-defined]  # a namespace package

    documents = read_package(package, parameters)
    if len(documents) > 1 or any(
        "/" in e["container"].get("resources", {}).get("accelerator", {}).get("resourceType", "")
        for e in documents[0]["deploymentSpec"]["executors"].values()
    ):
        raise ValueError(f"{package} was compiled for Kubeflow on GKE; compile it with --target vertex for Vertex AI")
    if not pipeline_root.startswith("gs://"):
        raise ValueError(
            f"--pipeline-root {pipeline_root}: Vertex AI needs a gs:// URL, e.g. gs://BUCKET/pipeline-root"
        )
    bucket = pipeline_root[len("gs://") :].split("/")[0]
    if not storage.Client(project=project).bucket(bucket).exists():
        raise FileNotFoundError(
            f"gs://{bucket} does not exist or is not visible to you; create it with infra/ "
            "(terraform apply) and give the pipeline runner access"
        )
    aiplatform.init(
        project=project,
        location=region,
        api_endpoint=api_endpoint,
        api_transport="rest" if api_endpoint and api_endpoint.startswith("http") else None,
    )
    job = aiplatform.PipelineJob(
        display_name=run_name,
        template_path=package,
        pipeline_root=pipeline_root,
        parameter_values=parameters,
        labels={"experiment": experiment} if experiment else None,
    )
    job.submit(service_account=service_account)
    return job.resource_name
