"""Submitting the compiled pipeline, against local servers on 127.0.0.1 that speak the Kubeflow Pipelines
v2beta1 API and the Vertex AI v1 REST API, checking the requests that arrive."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml
from google.auth import jwt

from mammolibs.cli import main
from mammolibs.pipeline.submit import parse_parameters
from pipelines.mammoflow import main as pipeline_main
from tests.conftest import free_port, send_json


class RecordingApi(BaseHTTPRequestHandler):
    """Records every request (method, path, JSON body, headers) and answers with :meth:`answer`."""

    received: list[tuple[str, str, dict | None, dict]] = []

    def answer(self, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        raise NotImplementedError

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = {"form": raw.decode()}
        self.received.append((method, self.path, body, {k.lower(): v for k, v in self.headers.items()}))
        status, reply = self.answer(method, self.path, body)
        send_json(self, status, reply)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def log_message(self, *args):
        pass


class KubeflowApi(RecordingApi):
    """Knows no experiment, so clients create one; accepts the run and reports it pending."""

    RUN = {
        "run_id": "run-1",
        "display_name": "first",
        "experiment_id": "exp-1",
        "state": "PENDING",
        "created_at": "2026-11-24T12:00:00Z",
    }

    def answer(self, method, path, body):
        if method == "POST" and path.endswith("/experiments"):
            return 200, {"experiment_id": "exp-1", "display_name": body["display_name"]}
        if method == "POST" and path.endswith("/runs"):
            return 200, {**self.RUN, "display_name": body["display_name"]}
        if path.startswith("/apis/v2beta1/runs/run-1"):
            return 200, self.RUN
        return 200, {}


class VertexApi(RecordingApi):
    """The Vertex AI ``pipelineJobs.create`` method, and the token service that Cloud Storage clients ask
    (the Vertex client signs its own tokens)."""

    def answer(self, method, path, body):
        if method == "POST" and path == "/token":
            return 200, {"access_token": "storage-token", "expires_in": 3600, "token_type": "Bearer"}
        if method == "POST" and "/pipelineJobs?" in path:
            parent = path.split("?")[0].removeprefix("/v1/")
            return 200, {**body, "name": f"{parent}/job-7", "state": "PIPELINE_STATE_PENDING"}
        return 404, {"error": {"code": 404, "message": f"{path} is not served here"}}


def serve(handler: type[RecordingApi]):
    handler.received = []
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


@pytest.fixture
def kubeflow():
    server, url = serve(KubeflowApi)
    yield url, KubeflowApi.received
    server.shutdown()


def service_account_key() -> tuple[dict, bytes]:
    """A service-account key file's contents with a new RSA key, and its public key. The Vertex client signs
    its own tokens (JWT) with the key; a Cloud Storage client asks ``token_uri`` for one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "type": "service_account",
        "project_id": "lab",
        "private_key_id": "test-key",
        "private_key": pem.decode(),
        "client_email": "submitter@lab.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }, public


@pytest.fixture
def vertex(gcs_bucket, tmp_path, monkeypatch):
    """The Vertex API, a service-account key, and the GCS emulator's bucket."""
    server, url = serve(VertexApi)
    credentials = tmp_path / "key.json"
    key, public = service_account_key()
    credentials.write_text(json.dumps({**key, "token_uri": f"{url}/token"}))  # no internet: a local token service
    from google.cloud.aiplatform.utils import resource_manager_utils

    # Resource Manager has no emulator and is out of reach here: the library's bucket-ownership check would
    # retry it for 48 s. Answer as it would (our own code never asks it).
    monkeypatch.setattr(resource_manager_utils, "get_project_number", lambda project, **_: 123456789)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(credentials))
    yield url, VertexApi.received, gcs_bucket[0], public
    server.shutdown()


@pytest.fixture
def package(tmp_path) -> str:
    path = tmp_path / "mammoflow.yaml"
    pipeline_main(["compile", "--output", str(path)])
    return str(path)


def posts(received) -> dict:
    return {path: body for method, path, body, _ in received if method == "POST"}


def test_mammo_submits_to_kubeflow_with_parameters_root_and_account(kubeflow, package, capsys):
    host, received = kubeflow
    status = main(
        [
            "pipeline",
            "submit",
            "--package",
            package,
            "--host",
            host,
            "--experiment",
            "mias-study",
            "--run-name",
            "first",
            "--param",
            "image_size=256",
            "--param",
            'finetune_settings={"lr": 0.001}',
            "--param",
            'sources=["mias=gs://data/mini-MIAS"]',
            "--pipeline-root",
            "gs://bucket/pipeline-root",
            "--service-account",
            "mammoflow-trainer",
        ]
    )
    assert status == 0 and "run run-1 submitted" in capsys.readouterr().out
    sent = posts(received)
    assert sent["/apis/v2beta1/experiments"]["display_name"] == "mias-study"
    run = sent["/apis/v2beta1/runs"]
    assert run["display_name"] == "first" and run["experiment_id"] == "exp-1"
    assert run["pipeline_spec"] == yaml.safe_load(open(package))  # the compiled file, whole
    assert run["runtime_config"] == {
        "parameters": {"image_size": 256, "finetune_settings": {"lr": 0.001}, "sources": ["mias=gs://data/mini-MIAS"]},
        "pipeline_root": "gs://bucket/pipeline-root",
    }
    assert run["service_account"] == "mammoflow-trainer"


def test_kfp_cli_submits_the_compiled_file(kubeflow, package):
    host, received = kubeflow
    kfp = Path(sys.executable).parent / "kfp"  # the kfp package's console script, beside this interpreter
    result = subprocess.run(
        [
            str(kfp),
            "--endpoint",
            host,
            "run",
            "submit",
            "-e",
            "mias-study",
            "-r",
            "first",
            "-f",
            package,
            "finetune_epochs=3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    run = posts(received)["/apis/v2beta1/runs"]
    assert run["pipeline_spec"] == yaml.safe_load(open(package))
    assert run["runtime_config"]["parameters"] == {"finetune_epochs": 3}
    assert run["display_name"] == "first" and run["experiment_id"] == "exp-1"


def test_mammo_submits_a_vertex_pipeline_job(vertex, tmp_path, capsys):
    url, received, bucket, public_key = vertex
    package = str(tmp_path / "vertex.yaml")
    pipeline_main(
        [
            "compile",
            "--target",
            "vertex",
            "--registry",
            "us-docker.pkg.dev/lab/mammoflow",
            "--accelerator",
            "finetune=nvidia-l4:1",
            "--output",
            package,
        ]
    )
    status = main(
        [
            "pipeline",
            "submit",
            "--package",
            package,
            "--project",
            "lab",
            "--region",
            "us-central1",
            "--pipeline-root",
            f"gs://{bucket}/pipeline-root",
            "--service-account",
            "pipeline-runner@lab.iam.gserviceaccount.com",
            "--api-endpoint",
            url,
            "--run-name",
            "first",
            "--experiment",
            "mias-study",
            "--param",
            'sources=["mias=gs://data/mini-MIAS"]',
            "--param",
            "finetune_epochs=3",
        ]
    )
    assert status == 0, capsys.readouterr().err
    assert "projects/lab/locations/us-central1/pipelineJobs/job-7 submitted" in capsys.readouterr().out
    [(path, job, headers)] = [(p, b, h) for m, p, b, h in received if m == "POST" and "/pipelineJobs" in p]
    assert path.startswith("/v1/projects/lab/locations/us-central1/pipelineJobs?pipelineJobId=mammoflow-")
    claims = jwt.decode(headers["authorization"].removeprefix("Bearer "), certs=public_key)  # signed with the key
    assert claims["iss"] == "submitter@lab.iam.gserviceaccount.com"
    assert job["displayName"] == "first" and job["labels"] == {"experiment": "mias-study"}
    assert job["serviceAccount"] == "pipeline-runner@lab.iam.gserviceaccount.com"
    compiled = yaml.safe_load(open(package))
    assert job["pipelineSpec"]["deploymentSpec"] == compiled["deploymentSpec"]
    assert job["pipelineSpec"]["root"] == compiled["root"]
    assert job["runtimeConfig"]["gcsOutputDirectory"] == f"gs://{bucket}/pipeline-root"
    assert job["runtimeConfig"]["parameterValues"] == {"sources": ["mias=gs://data/mini-MIAS"], "finetune_epochs": 3}


def test_vertex_submission_says_what_is_wrong_before_sending(vertex, package, tmp_path, capsys):
    url, received, bucket, _ = vertex
    vertex_flags = [
        "--project",
        "lab",
        "--region",
        "us-central1",
        "--api-endpoint",
        url,
        "--param",
        'sources=["mias=gs://data/mini-MIAS"]',
    ]
    gpu_package = str(tmp_path / "gke.yaml")
    pipeline_main(["compile", "--accelerator", "finetune=nvidia-l4:1", "--output", gpu_package])
    assert (
        main(["pipeline", "submit", "--package", gpu_package, *vertex_flags, "--pipeline-root", f"gs://{bucket}/root"])
        == 2
    )
    assert "compile it with --target vertex" in capsys.readouterr().err
    assert (
        main(["pipeline", "submit", "--package", package, *vertex_flags, "--pipeline-root", "gs://no-such-bucket/root"])
        == 2
    )
    assert "gs://no-such-bucket does not exist" in capsys.readouterr().err
    assert main(["pipeline", "submit", "--package", package, *vertex_flags]) == 2
    assert "--pipeline-root gs://BUCKET" in capsys.readouterr().err
    assert main(["pipeline", "submit", "--package", package, "--host", url, *vertex_flags]) == 2
    assert "not both or neither" in capsys.readouterr().err
    assert not [r for r in received if "/pipelineJobs" in r[1]]


def test_submission_checks_the_file_and_parameters_first(kubeflow, package, tmp_path, capsys):
    host, received = kubeflow
    assert main(["pipeline", "submit", "--package", str(tmp_path / "absent.yaml"), "--host", host]) == 2
    assert "make compile" in capsys.readouterr().err
    assert main(["pipeline", "submit", "--package", package, "--host", host, "--param", "epochs=3"]) == 2
    parameters = "autoencoder_epochs, classifier_encoder_epochs, classifier_epochs, classifier_pretrain_settings"
    assert f"no parameter epochs; its parameters: {parameters}" in capsys.readouterr().err
    assert main(["pipeline", "submit", "--package", package, "--host", host, "--param", "image_size=64"]) == 2
    assert "needs the parameter(s) sources: add --param NAME=VALUE" in capsys.readouterr().err
    assert not [r for r in received if r[0] == "POST"]
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_parameters(["epochs"])
    assert parse_parameters(['sources=["mias"]', "note=plain text"]) == {"sources": ["mias"], "note": "plain text"}


def test_an_unreachable_kubeflow_host_is_one_line_naming_the_port_forward(package, capsys, caplog):
    port = free_port()
    assert (
        main(
            [
                "pipeline",
                "submit",
                "--package",
                package,
                "--host",
                f"http://127.0.0.1:{port}",
                "--param",
                'sources=["mias=gs://data/mini-MIAS"]',
            ]
        )
        == 2
    )
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"mammo pipeline: cannot reach http://127.0.0.1:{port}") and "port-forward" in error
    assert "\n" not in error and "Traceback" not in error
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]  # no "Retrying ..." lines
