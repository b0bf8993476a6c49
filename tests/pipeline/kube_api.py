"""A Kubernetes API server on 127.0.0.1 for custom objects, with a PyTorchJob controller that runs each
replica's container command here as a process, with the variables the Kubeflow Training Operator sets
(MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE), and reports the job Running, Succeeded or Failed.

The step's launcher reaches it through the production ``kubernetes`` client and a kubeconfig."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

OBJECTS = re.compile(
    r"/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)(/(?P<name>[^/?]+))?"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class KubeApi:
    """``created``: the bodies posted, in order; ``deleted``: the names deleted; ``logs``: each replica's
    output (written under ``log_dir``), by job name."""

    def __init__(self, cwd: Path, env: dict[str, str], log_dir: Path):
        self.cwd, self.env, self.log_dir = cwd, env, log_dir
        self.created: list[dict] = []
        self.deleted: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.replicas: dict[str, list[subprocess.Popen]] = {}
        self.logs: dict[str, list[str]] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def kubeconfig(self, path: Path, namespace: str) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "here", "cluster": {"server": self.url}}],
                    "users": [{"name": "step", "user": {"token": "a-service-account-token"}}],
                    "contexts": [
                        {"name": "here", "context": {"cluster": "here", "user": "step", "namespace": namespace}}
                    ],
                    "current-context": "here",
                }
            )
        )
        return path

    def close(self) -> None:
        for processes in self.replicas.values():
            for process in processes:
                process.kill()
                process.wait()
        self.server.shutdown()
        self.server.server_close()

    def _start(self, job: dict) -> None:
        """The Training Operator's part: one process per replica, Master rank 0."""
        specs = job["spec"]["pytorchReplicaSpecs"]
        ranks = [("Master", 0)] + [("Worker", i) for i in range(specs.get("Worker", {}).get("replicas", 0))]
        port, world = free_port(), len(ranks)
        processes = []
        for rank, (kind, _) in enumerate(ranks):
            [container] = specs[kind]["template"]["spec"]["containers"]
            command = [sys.executable if part == "python" else part for part in container["command"]]
            env = {**self.env, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank)}
            env["WORLD_SIZE"] = str(world)
            processes.append(
                subprocess.Popen(
                    [*command, *container.get("args", [])],
                    cwd=self.cwd,
                    env=env,
                    stdout=(self.log_dir / f"{job['metadata']['name']}-{rank}.log").open("w"),
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        self.replicas[job["metadata"]["name"]] = processes

    def _status(self, name: str) -> dict:
        processes = self.replicas[name]
        codes = [process.poll() for process in processes]
        if None in codes:
            return {"conditions": [{"type": "Running", "status": "True"}]}
        if name not in self.logs:
            self.logs[name] = [(self.log_dir / f"{name}-{rank}.log").read_text() for rank in range(len(processes))]
        if any(codes):
            message = f"replicas exited with {codes}"
            return {"conditions": [{"type": "Failed", "status": "True", "message": message}]}
        return {"conditions": [{"type": "Succeeded", "status": "True"}]}

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self):
                api.requests.append((self.command, self.path))
                match = OBJECTS.fullmatch(self.path.split("?")[0])
                if not match or self.headers.get("Authorization") != "Bearer a-service-account-token":
                    self._answer(404 if match is None else 401, {"kind": "Status", "status": "Failure"})
                    return None
                return match

            def do_POST(self) -> None:
                if (match := self._route()) is None:
                    return
                job = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.created.append({**job, "_namespace": match["ns"]})
                api._start(job)
                self._answer(201, job)

            def do_GET(self) -> None:
                if (match := self._route()) is None:
                    return
                [job] = [j for j in api.created if j["metadata"]["name"] == match["name"]]
                self._answer(200, {**job, "status": api._status(match["name"])})

            def do_DELETE(self) -> None:
                if (match := self._route()) is None:
                    return
                api.deleted.append(match["name"])
                for process in api.replicas.get(match["name"], []):
                    process.kill()
                self._answer(200, {"kind": "Status", "status": "Success"})

        return Handler
