"""``mammo pipeline submit`` against a local server that speaks the Kubeflow Pipelines v2beta1 API."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import yaml

from mammolibs.cli import main
from mammolibs.pipeline.submit import parse_parameters
from pipelines.mammoflow import main as pipeline_main


class KubeflowApi(BaseHTTPRequestHandler):
    """Records every request; knows no experiment, so the client creates one, then accepts the run."""

    received: list[tuple[str, str, dict | None]] = []

    def _reply(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.received.append(("GET", self.path, None))
        self._reply({})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.received.append(("POST", self.path, body))
        if self.path.endswith("/experiments"):
            self._reply({"experiment_id": "exp-1", "display_name": body["display_name"]})
        else:
            self._reply({"run_id": "run-1", "display_name": body["display_name"], "experiment_id": "exp-1"})

    def log_message(self, *args):
        pass


@pytest.fixture
def kubeflow():
    KubeflowApi.received = []
    server = HTTPServer(("127.0.0.1", 0), KubeflowApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", KubeflowApi.received
    server.shutdown()


def test_submit_sends_the_compiled_pipeline_with_its_parameters_and_root(kubeflow, tmp_path, capsys):
    host, received = kubeflow
    package = tmp_path / "mammoflow.yaml"
    pipeline_main(["compile", "--output", str(package)])
    status = main(["pipeline", "submit", "--package", str(package), "--host", host, "--experiment", "mias-study",
                   "--run-name", "first", "--param", "image_size=256", "--param", 'finetune_settings={"epochs": 3}',
                   "--pipeline-root", "gs://bucket/pipeline-root", "--service-account", "mammoflow-trainer"])
    assert status == 0 and "run run-1 submitted" in capsys.readouterr().out
    posts = {path: body for method, path, body in received if method == "POST"}
    assert posts["/apis/v2beta1/experiments"]["display_name"] == "mias-study"
    run = posts["/apis/v2beta1/runs"]
    assert run["display_name"] == "first" and run["experiment_id"] == "exp-1"
    assert run["pipeline_spec"] == yaml.safe_load(package.read_text())  # the compiled file, whole
    assert run["runtime_config"] == {"parameters": {"image_size": 256, "finetune_settings": {"epochs": 3}},
                                     "pipeline_root": "gs://bucket/pipeline-root"}
    assert run["service_account"] == "mammoflow-trainer"


def test_submit_says_what_is_missing(kubeflow, tmp_path, capsys):
    host, received = kubeflow
    assert main(["pipeline", "submit", "--package", str(tmp_path / "absent.yaml"), "--host", host]) == 2
    assert "make compile" in capsys.readouterr().err
    package = tmp_path / "mammoflow.yaml"
    pipeline_main(["compile", "--output", str(package)])
    assert main(["pipeline", "submit", "--package", str(package), "--host", host, "--param", "epochs=3"]) == 2
    assert "no parameter epochs; its parameters: classifier_settings" in capsys.readouterr().err
    assert not [r for r in received if r[0] == "POST"]
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_parameters(["epochs"])
    assert parse_parameters(["sources=[\"mias\"]", "note=plain text"]) == {"sources": ["mias"], "note": "plain text"}
