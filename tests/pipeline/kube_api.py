"""A Kubernetes API server on 127.0.0.1 for custom objects, with a PyTorchJob controller that runs each
replica's container command here as a process, with the variables the Kubeflow Training Operator sets
(MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE), and reports the job Running, Succeeded or Failed. With
``restart_when``, it kills every replica once that condition holds and starts them all again, as the
operator does when a machine of the job is lost. Clearing ``answer_creates`` holds the answer to a create
(the job exists, its creator does not know yet) until it is set again.

The step's launcher reaches it through the production ``kubernetes`` client and a kubeconfig."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.conftest import free_port, send_json

OBJECTS = re.compile(
    r"/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)(/(?P<name>[^/?]+))?"
)


class KubeApi:
    """``created``: the bodies posted, in order; ``deleted``: the names deleted; ``restarts``: the jobs
    restarted; ``logs``: each replica's output of the job's last start (written under ``log_dir``)."""

    def __init__(self, cwd: Path, env: dict[str, str], log_dir: Path):
        self.cwd, self.env, self.log_dir = cwd, env, log_dir
        self.restart_when: Callable[[], bool] | None = None
        self.restarts: list[str] = []
        self.answer_creates = threading.Event()
        self.answer_creates.set()
        self.lock = threading.Lock()  # no request sees a start, restart or stop half done
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
        for name in self.replicas:
            self._stop(name)
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
                    stdout=self._log(job["metadata"]["name"], rank).open("w"),
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        self.replicas[job["metadata"]["name"]] = processes
        if self.restart_when is not None and not self.restarts:
            threading.Thread(target=self._restart_once, args=(job,), daemon=True).start()

    def _stop(self, name: str) -> None:
        """Kill every process of the job's pods, as a pod's end does: each replica, its torchrun and their
        workers (which torchrun starts in sessions of their own)."""
        for process in self.replicas.get(name, []):
            for pid in [process.pid, *_descendants(process.pid)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.wait()

    def _log(self, name: str, rank: int) -> Path:
        """The log of a replica's latest start."""
        return self.log_dir / f"{name}-{self.restarts.count(name)}-{rank}.log"

    def _restart_once(self, job: dict) -> None:
        """Kill every replica as soon as ``restart_when`` holds, then start them all again."""
        name = job["metadata"]["name"]
        while self.restart_when is not None and not self.restart_when():
            if all(process.poll() is not None for process in self.replicas[name]):
                return  # finished first: nothing to restart
            time.sleep(0.01)
        with self.lock:
            self._stop(name)
            self.restarts.append(name)
            self._start(job)

    def _status(self, name: str) -> dict:
        with self.lock:
            processes = self.replicas[name]
            codes = [process.poll() for process in processes]
        if None in codes:
            return {"conditions": [{"type": "Running", "status": "True"}]}
        if name not in self.logs:
            self.logs[name] = [self._log(name, rank).read_text() for rank in range(len(processes))]
        if any(codes):
            message = f"replicas exited with {codes}"
            return {"conditions": [{"type": "Failed", "status": "True", "message": message}]}
        return {"conditions": [{"type": "Succeeded", "status": "True"}]}

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _route(self):
                api.requests.append((self.command, self.path))
                match = OBJECTS.fullmatch(self.path.split("?")[0])
                if not match or self.headers.get("Authorization") != "Bearer a-service-account-token":
                    send_json(self, 404 if match is None else 401, {"kind": "Status", "status": "Failure"})
                    return None
                return match

            def do_POST(self) -> None:
                if (match := self._route()) is None:
                    return
                job = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with api.lock:  # a job is listed once its replicas exist
                    api._start(job)
                    api.created.append({**job, "_namespace": match["ns"]})
                api.answer_creates.wait(timeout=120)
                send_json(self, 201, job)

            def do_GET(self) -> None:
                if (match := self._route()) is None:
                    return
                [job] = [j for j in api.created if j["metadata"]["name"] == match["name"]]
                send_json(self, 200, {**job, "status": api._status(match["name"])})

            def do_DELETE(self) -> None:
                if (match := self._route()) is None:
                    return
                with api.lock:
                    if not any(j["metadata"]["name"] == match["name"] for j in api.created):
                        send_json(self, 404, {"kind": "Status", "status": "Failure", "reason": "NotFound"})
                        return
                    api.deleted.append(match["name"])
                    api._stop(match["name"])
                send_json(self, 200, {"kind": "Status", "status": "Success"})

        return Handler


def _descendants(pid: int) -> list[int]:
    """Every process under ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after the command's name: state, ppid, ...
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
