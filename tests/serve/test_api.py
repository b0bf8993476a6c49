"""The HTTP API of ``mammo serve``, called over HTTP on 127.0.0.1: predictions from uploads, JSON and
URLs, Vertex AI's contract, and a clear 4xx for every bad input."""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pydicom
import requests

from tests.conftest import free_port
from tests.serve.conftest import Server, chain_flags, real_dicom


def upload(server: Server, path: Path, **fields) -> requests.Response:
    with open(path, "rb") as f:
        return requests.post(f"{server.url}/v1/predict", files={"file": (path.name, f)}, data=fields, timeout=120)


def test_health_and_models_say_which_models_answer(server, runs):
    assert requests.get(f"{server.url}/healthz", timeout=10).json() == {"status": "ok"}
    for name in ("localhost", "127.0.0.1", "[::1]"):
        assert requests.get(f"{server.url}/healthz", headers={"Host": f"{name}:{server.port}"}, timeout=10).ok
    for name in ("rebind.example", "127.0.0.1.rebind.example", "[rebind]"):  # DNS rebinding: another site's name
        refused = requests.get(f"{server.url}/v1/models", headers={"Host": f"{name}:{server.port}"}, timeout=10)
        assert refused.status_code == 403 and "answers only at http://127.0.0.1" in refused.json()["error"]
    described = requests.get(f"{server.url}/v1/models", timeout=10).json()
    cards = {card["role"]: card for card in described["models"]}
    assert cards["unet"]["run"] == "finetune" and cards["classifier"]["run"] == "classifier"
    assert cards["unet"]["trained_at"].startswith("20") and "val_dice" in cards["unet"]["validation"]
    assert cards["unet"]["trained_on"]["sources"] == {"mias": 24, "dicom": 8}
    assert described["operating_point"]["unet_threshold"] == 0.0 and "not a medical device" in described["note"]
    answer = upload(server, real_dicom())  # neither says where the models or their training data lie
    assert answer.status_code == 200 and str(runs) not in answer.text and str(runs) not in json.dumps(described)
    assert "/" not in json.dumps(described["models"])


def test_an_uploaded_film_gets_findings_in_original_pixels(server, mias_dir):
    answer = upload(server, mias_dir / "mdb012.pgm")
    assert answer.status_code == 200, answer.text
    [prediction] = answer.json()["predictions"]
    assert (prediction["width"], prediction["height"], prediction["modality"]) == (1024, 1024, "MG")
    [lesion] = prediction["lesions"]  # threshold 0: the breast is one finding
    x0, y0, x1, y1 = lesion["box"]
    assert 0 <= x0 < x1 <= 1024 and 0 <= y0 < y1 <= 1024 and (lesion["width"], lesion["height"]) == (x1 - x0, y1 - y0)
    assert prediction["called_malignant"] == (prediction["malignancy"] >= 0.5)
    assert prediction["malignancy_text"].endswith("%") and "top-left" in prediction["box_format"]
    assert "pictures" not in prediction  # only when asked


def test_json_base64_and_multipart_give_the_same_answer(server, busi_dir):
    image = busi_dir / "Dataset_BUSI_with_GT" / "malignant" / "malignant (103).png"
    by_upload = upload(server, image).json()["predictions"][0]
    encoded = base64.b64encode(image.read_bytes()).decode()
    by_json = requests.post(
        f"{server.url}/v1/predict", json={"instances": [{"b64": encoded, "name": image.name}]}, timeout=120
    ).json()["predictions"][0]
    assert by_json["lesions"] == by_upload["lesions"] and by_json["image"] == image.name
    assert by_upload["modality"] == "US" and "ultrasound" in by_upload["warnings"][0]  # a BUSI frame, detected
    as_film = upload(server, image, modality="MG").json()["predictions"][0]
    assert as_film["modality"] == "MG" and as_film["warnings"] == []


def test_a_dicom_upload_is_never_echoed_with_its_tags(server):
    path = real_dicom()
    answer = upload(server, path)
    assert answer.status_code == 200, answer.text
    header = pydicom.dcmread(path, stop_before_pixels=True)
    text = answer.text
    for element in header:
        if element.VR in ("PN", "LO", "SH", "DA", "TM", "UI") and len(str(element.value)) >= 6:
            assert str(element.value) not in text, element.keyword
    assert answer.json()["predictions"][0]["modality"] == "MG"


def test_every_bad_input_gets_a_4xx_with_one_line(server, bad_uploads):
    for name, (path, reason) in bad_uploads.items():
        answer = upload(server, path)
        assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text)
        error = answer.json()["error"]
        assert reason in error and "\n" not in error and "MRN777" not in error, (name, error)
    refusals = [
        (
            requests.post(
                f"{server.url}/v1/predict", data=b"hello", headers={"Content-Type": "text/plain"}, timeout=10
            ),
            415,
        ),
        (
            requests.post(
                f"{server.url}/v1/predict", data=b"{not json", headers={"Content-Type": "application/json"}, timeout=10
            ),
            400,
        ),
        (requests.post(f"{server.url}/v1/predict", json={"instances": [{"b64": "***"}]}, timeout=10), 400),
        (
            requests.post(f"{server.url}/v1/predict", json={"instances": [{"gcs_uri": "gs://any/x.dcm"}]}, timeout=10),
            403,
        ),
        (requests.post(f"{server.url}/v1/predict", files={"other": ("", b"")}, timeout=10), 400),
        (
            requests.post(
                f"{server.url}/v1/predict", files={"file": ("a.png", b"x")}, data={"threshold": "2"}, timeout=10
            ),
            400,
        ),
    ]
    for answer, status in refusals:
        assert answer.status_code == status and "\n" not in answer.json()["error"], answer.text
    announced = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)  # refused from its header alone
    announced.putrequest("POST", "/v1/predict")
    announced.putheader("Content-Type", "application/json")
    announced.putheader("Content-Length", str(20 * 1024 * 1024))
    announced.endheaders()
    too_large = announced.getresponse()
    assert too_large.status == 413 and "limit" in json.loads(too_large.read())["error"]
    assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200  # still up
    assert "Traceback" not in server.output() and "MRN777" not in server.output()  # no header value logged


def test_malformed_requests_get_a_4xx_saying_what_is_wrong(server, mias_dir):
    url, film = f"{server.url}/v1/predict", (mias_dir / "mdb012.pgm").read_bytes()

    def raw(body: bytes, content_type: str) -> requests.Response:
        return requests.post(url, data=body, headers={"Content-Type": content_type}, timeout=30)

    boundary = "b0undary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.pgm"\r\n\r\n'.encode()
    control = head.replace(b"a.pgm", b"a\x01b.pgm") + film + f"\r\n--{boundary}--\r\n".encode()
    cases = {
        "JSON nested 100,000 deep": (raw(b"[" * 100_000 + b"]" * 100_000, "application/json"), "nested too deep"),
        "a threshold of 400 nines": (
            raw(b'{"b64": "aGk=", "threshold": ' + b"9" * 400 + b"}", "application/json"),
            "threshold must be a number from 0 to 1",
        ),
        "a name that is a number": (requests.post(url, json={"b64": "aGk=", "name": 5}, timeout=30), "name must be"),
        "a name that is a list": (requests.post(url, json={"b64": "aGk=", "name": ["x"]}, timeout=30), "name must be"),
        "no closing boundary": (raw(head + film[:1000], f"multipart/form-data; boundary={boundary}"), "malformed"),
        "a control character in a file name": (raw(control, f"multipart/form-data; boundary={boundary}"), "malformed"),
        "an option field of 2 KB": (
            requests.post(url, files={"file": ("a.pgm", film)}, data={"modality": "M" * 2048}, timeout=30),
            "option field 'modality' is over 1,024 bytes",
        ),
        "an image without a file name": (requests.post(url, files={"file": ("", b"abc")}, timeout=30), ""),
        "a flood of fields": (
            requests.post(url, files=[("file", ("a.pgm", film))] + [(f"f{i}", (None, "1")) for i in range(500)]),
            "parts in one upload",
        ),
    }
    for case, (answer, says) in cases.items():
        assert 400 <= answer.status_code < 500, (case, answer.status_code, answer.text)
        error = answer.json()["error"]
        assert says in error and "\n" not in error and "byte upload limit" not in error, (case, error)
    whole = raw(head + film + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}")
    assert whole.status_code == 200 and whole.json()["predictions"][0]["image"] == "a.pgm"  # the same body, closed
    assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
    assert "Traceback" not in server.output()


def test_the_server_listens_on_localhost_only_and_keeps_uploads_off_disk(runs, everywhere_point, mias_dir, tmp_path):
    private = tmp_path / "tmp"
    private.mkdir()
    served = Server(chain_flags(runs), env={"TMPDIR": str(private)})
    try:
        answer = upload(served, mias_dir / "mdb012.pgm")
        assert answer.status_code == 200
        listening = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        local = {row[1] for row in listening if row[3] == "0A"}  # state LISTEN
        assert f"0100007F:{served.port:04X}" in local and f"00000000:{served.port:04X}" not in local
        assert list(private.iterdir()) == []  # nothing of the upload was written to a temporary file
    finally:
        served.stop()


def test_vertex_ai_contract(runs, everywhere_point, mias_dir, busi_dir):
    port = free_port()
    env = {
        "AIP_HTTP_PORT": str(port),
        "AIP_HEALTH_ROUTE": "/v1/endpoints/1/deployedModels/2",
        "AIP_PREDICT_ROUTE": "/v1/endpoints/1/deployedModels/2:predict",
    }
    served = Server(
        [
            *chain_flags(runs, everywhere_point),
        ],
        env=env,
        port=port,
        health=env["AIP_HEALTH_ROUTE"],
    )
    try:
        film = base64.b64encode((mias_dir / "mdb012.pgm").read_bytes()).decode()
        frame = base64.b64encode(
            (busi_dir / "Dataset_BUSI_with_GT" / "benign" / "benign (100).png").read_bytes()
        ).decode()
        body = {"instances": [{"b64": film}, {"image": {"b64": frame}}], "parameters": {"threshold": 0.0}}
        answer = requests.post(f"http://127.0.0.1:{port}{env['AIP_PREDICT_ROUTE']}", json=body, timeout=120)
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        assert list(answer.json()) == ["predictions"] and len(predictions) == 2
        assert [p["modality"] for p in predictions] == ["MG", "US"] and all(len(p["lesions"]) == 1 for p in predictions)
    finally:
        served.stop()


def test_images_are_read_from_allowed_gcs_prefixes_only(runs, everywhere_point, mias_dir, gcs_bucket):
    bucket, client = gcs_bucket
    client.bucket(bucket).blob("allowed/mdb012.pgm").upload_from_filename(str(mias_dir / "mdb012.pgm"))
    client.bucket(bucket).blob("private/mdb012.pgm").upload_from_filename(str(mias_dir / "mdb012.pgm"))
    served = Server(
        [
            *chain_flags(runs, everywhere_point),
            "--allow-url",
            f"gs://{bucket}/allowed/",
        ],
        env={"STORAGE_EMULATOR_HOST": os.environ["STORAGE_EMULATOR_HOST"]},
    )

    def ask(url: str) -> requests.Response:
        return requests.post(f"{served.url}/v1/predict", json={"instances": [{"gcs_uri": url}]}, timeout=120)

    try:
        good = ask(f"gs://{bucket}/allowed/mdb012.pgm")
        assert good.status_code == 200, good.text
        assert good.json()["predictions"][0]["image"] == "mdb012.pgm"
        for url in (
            f"gs://{bucket}/private/mdb012.pgm",
            f"gs://{bucket}/allowed/../private/mdb012.pgm",
            f"gs://{bucket}/allowed-not/mdb012.pgm",
            "/etc/passwd",
            "file:///etc/passwd",
            f"gs://{bucket}/allowed/./mdb012.pgm",
        ):
            answer = ask(url)
            assert answer.status_code == 403 and "\n" not in answer.json()["error"], (url, answer.text)
        assert ask(f"gs://{bucket}/allowed/absent.pgm").status_code == 404
    finally:
        served.stop()


def test_requests_beyond_capacity_get_503_and_the_server_stays_up(runs, everywhere_point, mias_dir):
    served = Server([*chain_flags(runs), "--workers", "1", "--queue", "1"])
    try:
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda _: upload(served, mias_dir / "mdb012.pgm"), range(12)))
        statuses = sorted(a.status_code for a in answers)
        assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses, statuses
        busy = next(a for a in answers if a.status_code == 503)
        assert busy.headers["Retry-After"] == "1" and "busy" in busy.json()["error"]
        assert upload(served, mias_dir / "mdb012.pgm").status_code == 200
    finally:
        served.stop()


def _stalled(port: int, request: bytes) -> socket.socket:
    """A connection that sends ``request`` and then nothing more."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    connection.sendall(request)
    return connection


def _closed_within(connection: socket.socket, seconds: float) -> bool:
    """Whether the server ends the connection (after any answer) within ``seconds``."""
    connection.settimeout(seconds)
    try:
        while connection.recv(65536):
            pass
        return True
    except TimeoutError:
        return False


def test_slow_stalled_and_greedy_clients_lose_their_request_and_real_clients_are_served(
    runs, everywhere_point, mias_dir
):
    flags = ["--header-seconds", "1", "--body-seconds", "30", "--max-upload-mb", "12", "--memory-mb", "24"]
    served = Server([*chain_flags(runs, everywhere_point), "--queue", "8", *flags])
    try:
        head = f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\nContent-Type: application/json\r\n"
        stalled_headers = _stalled(served.port, head.encode())  # headers never finished
        announced = [  # 12 MiB announced, 10 bytes sent: an announcement holds nothing
            _stalled(served.port, f"{head}Content-Length: {12 * 1024 * 1024}\r\n\r\n0123456789".encode())
            for _ in range(9)
        ]
        time.sleep(0.3)
        assert upload(served, mias_dir / "mdb012.pgm").status_code == 200  # more of them than places in the queue
        greedy = [  # 8.5 MiB sent of 12 announced, then a stall: together they take the memory for large bodies
            _stalled(served.port, f"{head}Content-Length: {12 * 1024 * 1024}\r\n\r\n".encode() + b" " * (17 * 2**19))
            for _ in range(2)
        ]
        time.sleep(0.5)
        side = 2048  # a 4 MiB film: a large body, past an eighth of the 24 MiB
        large = (
            f"P5\n{side} {side}\n255\n".encode()
            + np.random.default_rng(0).integers(0, 255, side * side, np.uint8).tobytes()
        )

        def ask(data: bytes) -> requests.Response:
            return requests.post(f"{served.url}/v1/predict", files={"file": ("film.pgm", data)}, timeout=120)

        busy = ask(large)
        assert busy.status_code == 503 and "memory for bodies" in busy.json()["error"]
        assert upload(served, mias_dir / "mdb012.pgm").status_code == 200  # a small upload takes the reserve
        assert requests.get(f"{served.url}/healthz", timeout=5).status_code == 200  # health is never held up
        assert _closed_within(stalled_headers, 4)
        started = time.monotonic()
        for connection in announced + greedy:  # told within a window or two, not at --body-seconds
            connection.settimeout(10)
            answer = connection.recv(65536).decode()
            assert answer.startswith("HTTP/1.1 408") and "under the least of 65,536 bytes/s" in answer, answer
        assert time.monotonic() - started < 10
        assert ask(large).status_code == 200  # their memory is free again
    finally:
        served.stop()
