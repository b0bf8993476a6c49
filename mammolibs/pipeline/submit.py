"""Submitting a compiled pipeline (``make compile`` -> ``mammoflow.yaml``) to a Kubeflow Pipelines endpoint."""
from __future__ import annotations

import json
import os


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


def submit_to_kubeflow(package: str, host: str, experiment: str, run_name: str, parameters: dict,
                       pipeline_root: str | None = None, service_account: str | None = None) -> str:
    """Start a run of the compiled ``package`` on the Kubeflow Pipelines API at ``host``; returns its run id."""
    import kfp
    import yaml

    if not os.path.isfile(package):
        raise FileNotFoundError(f"{package}: no compiled pipeline there; run 'make compile' first")
    with open(package, encoding="utf-8") as f:
        known = yaml.safe_load(f)["root"]["inputDefinitions"]["parameters"]
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ValueError(f"{package} has no parameter {', '.join(unknown)}; its parameters: {', '.join(sorted(known))}")
    client = kfp.Client(host=host)
    run = client.create_run_from_pipeline_package(package, arguments=parameters, run_name=run_name,
                                                  experiment_name=experiment, pipeline_root=pipeline_root,
                                                  service_account=service_account)
    return run.run_id
