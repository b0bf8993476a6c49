"""``mammo serve``: the web page and the HTTP API over one loaded chain (U-Net + classifier).

Routes: ``GET /`` (the page), ``GET /healthz``, ``GET /v1/models``, ``POST /v1/predict`` (multipart
files, or JSON: see :mod:`mammolibs.serve.inputs`), answering ``{"predictions": [...]}``. Vertex AI's
custom-container contract is honoured: ``AIP_HTTP_PORT``, ``AIP_HEALTH_ROUTE`` and ``AIP_PREDICT_ROUTE``
add their routes, and the models default to ``AIP_STORAGE_URI`` (a ``mammo export`` folder).

At most ``workers`` predictions run at once and ``queue`` more wait; further requests get 503 with
``Retry-After`` at once, before their body is read. A body must keep arriving (``min_body_rate`` over
each :data:`RATE_WINDOW`) and be whole within ``body_seconds``, and the bytes of all bodies held at once
stay within ``memory_bytes``: a slow, stalled or greedy client loses its request, never the server
its capacity.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from mammolibs.data.sample import RejectedInput
from mammolibs.inference import NOTE
from mammolibs.inference.chain import Models
from mammolibs.inference.predict import outline_png, predict_bytes
from mammolibs.pictures import png
from mammolibs.serve.inputs import OPTION_KEYS, BadInput, Limits, Upload, display_name, from_json, options_of

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
DISPLAY_SIDE = 2048
"""Longest side of the pictures sent to the page (the findings keep original pixels)."""
FIELD_BYTES = 1024
"""Largest non-file field of a multipart upload."""
RATE_WINDOW = 2.0
"""Seconds over which a body's arrival rate is measured: a client that sends less than the least rate
in one window (a slow drip, or a stall after a burst) gets 408 at the window's end."""
CHUNK_BYTES = 256 * 1024
LARGE_SHARE, SMALL_RESERVE = 1 / 8, 1 / 4
"""A body holding over an eighth of ``memory_bytes`` is large; the last quarter is kept for the others."""
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class Settings:
    """How the server runs: where it listens, how much it does at once, what it accepts."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    queue: int = 32
    limits: Limits = field(default_factory=Limits)
    extra_routes: dict[str, str] = field(default_factory=dict)  # {"health": route, "predict": route} (Vertex AI)


def vertex_settings(settings: Settings, environ: Mapping[str, str] = os.environ) -> Settings:
    """``settings`` with Vertex AI's custom-container variables applied where they are set: its port,
    every interface (the platform routes to the container, not to localhost), its routes."""
    if "AIP_HTTP_PORT" not in environ:
        return settings
    routes = {
        role: environ[name]
        for role, name in (("health", "AIP_HEALTH_ROUTE"), ("predict", "AIP_PREDICT_ROUTE"))
        if environ.get(name, "").startswith("/")
    }
    return Settings("0.0.0.0", int(environ["AIP_HTTP_PORT"]), settings.workers, settings.queue, settings.limits, routes)


class Gate:
    """Admission and concurrency: ``workers`` predictions in threads at once and ``queue`` waiting
    (a request takes its place once its body has arrived), and the bytes of the bodies held at once
    (``memory_bytes``), counted as they arrive. Bodies past :data:`LARGE_SHARE` of the memory may not
    take its last :data:`SMALL_RESERVE`: large uploads, stalled or not, never starve small ones."""

    def __init__(self, workers: int, queue: int, memory_bytes: int):
        self.capacity, self.admitted = workers + queue, 0
        self.memory, self.held = memory_bytes, 0
        self.large = int(memory_bytes * LARGE_SHARE)
        self.memory_for_large = int(memory_bytes * (1 - SMALL_RESERVE))
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="predict")
        self.running = asyncio.Semaphore(workers)

    def check_room(self) -> None:
        """503 at once, before a byte of the body is read, while every place is taken."""
        if self.admitted >= self.capacity:
            raise BadInput(503, f"busy: {self.admitted} requests in hand; try again in a moment")

    @asynccontextmanager
    async def admit(self):
        self.check_room()
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    @asynccontextmanager
    async def body(self) -> AsyncIterator[Body]:
        """The bytes one request's body holds, given back when the request ends however it ends."""
        body = Body(self)
        try:
            yield body
        finally:
            self.held -= body.held

    def hold(self, count: int, body_bytes: int) -> None:
        """Count ``count`` more bytes of a body that holds ``body_bytes`` with them, or 503."""
        if self.held + count > (self.memory_for_large if body_bytes > self.large else self.memory):
            raise BadInput(503, "busy: the uploads in hand fill the server's memory for bodies; try again in a moment")
        self.held += count

    async def run(self, function, *args):
        async with self.running:
            return await asyncio.get_running_loop().run_in_executor(self.pool, function, *args)


@dataclass
class Body:
    """One request's body in memory, counted against the gate's ``memory_bytes`` as its chunks arrive."""

    gate: Gate
    held: int = 0

    def take(self, chunk: bytes | bytearray) -> None:
        self.gate.hold(len(chunk), self.held + len(chunk))
        self.held += len(chunk)


def predict_image(models: Models, image: Upload) -> dict:
    """One image through the chain: its findings, and with ``pictures`` the image and the outline
    layer as PNG data URLs for the page. A DICOM's header never reaches the answer."""
    try:
        prediction = predict_bytes(
            models, image.data, image.name, image.options.get("modality", "auto"), image.options.get("threshold")
        )
    except RejectedInput as err:
        raise BadInput(422, " ".join(str(err).split())) from None
    result = prediction.report
    if image.options.get("pictures"):
        picture, outline = prediction.pictures(DISPLAY_SIDE)
        result["pictures"] = {
            "width": picture.size[0],
            "height": picture.size[1],
            "image": data_url(png(picture)),
            "outline": data_url(outline_png(outline)),
        }
    return result


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


async def read_images(request: web.Request, limits: Limits, body: Body) -> list[Upload]:
    """The images of a request, its size checked from its header before the body is read, which must
    arrive within ``limits.body_seconds`` and at ``limits.min_body_rate`` bytes/s or more over each
    :data:`RATE_WINDOW`: a slow or stalled client loses its request, not the server."""
    reading = asyncio.ensure_future(_read_images(request, limits, body))
    clock = asyncio.get_running_loop().time
    start = window = clock()
    arrived = request.content.total_bytes
    try:
        while True:
            done, _ = await asyncio.wait({reading}, timeout=RATE_WINDOW / 4)
            if done:
                return reading.result()
            now, total = clock(), request.content.total_bytes
            if now - start > limits.body_seconds:
                raise BadInput(408, f"the request body took over {limits.body_seconds:g} s to arrive; send it at once")
            if now - window >= RATE_WINDOW:
                if total - arrived < limits.min_body_rate * (now - window):
                    raise BadInput(
                        408,
                        f"the request body came at {(total - arrived) / (now - window):,.0f} bytes/s, under the "
                        f"least of {limits.min_body_rate:,} bytes/s; send it at once",
                    )
                window, arrived = now, total
    finally:
        if not reading.done():
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
        del reading  # the task keeps its error, whose traceback holds this frame: no cycle keeps a body alive


async def _read_images(request: web.Request, limits: Limits, body: Body) -> list[Upload]:
    if request.content_length is not None and request.content_length > request_limit(limits):
        raise BadInput(413, f"the upload is {request.content_length:,} bytes; the limit is {limits.max_bytes:,}")
    if request.content_type == "multipart/form-data":
        try:
            return await read_multipart(request, limits, body)
        except (ValueError, AssertionError, HttpProcessingError) as err:  # aiohttp's refusals of a malformed body
            raise BadInput(
                400, f"the multipart body is malformed ({type(err).__name__}); send it as a browser does"
            ) from None
    if request.content_type == "application/json":
        text = bytearray()
        try:
            async for chunk in request.content.iter_chunked(CHUNK_BYTES):
                body.take(chunk)
                text += chunk
                if len(text) > request_limit(limits):
                    raise BadInput(413, f"the request is over the {limits.max_bytes:,}-byte limit")
        except BaseException:
            text.clear()  # given back now, not when a cycle of the error's traceback is collected
            raise
        try:
            document = json.loads(text)
        except ValueError:
            raise BadInput(400, "the body is not valid JSON") from None
        except RecursionError:
            raise BadInput(400, 'the JSON is nested too deep; send {"instances": [...]} plainly') from None
        return from_json(document, limits)
    raise BadInput(
        415, 'send the image as multipart/form-data (field \'file\') or as JSON {"instances": [{"b64": "..."}]}'
    )


def request_limit(limits: Limits) -> int:
    """The largest request body: one image at the limit, base64-encoded, and some room for the rest."""
    return limits.max_bytes * 4 // 3 + 64 * 1024


async def read_multipart(request: web.Request, limits: Limits, body: Body) -> list[Upload]:
    """Files of a multipart upload (any field with a file name), read in memory and counted as they
    come; the other fields are options for every file (modality, threshold, pictures)."""
    reader, total = await request.multipart(), 0
    files: list[Upload] = []
    fields: dict[str, str] = {}
    parts = 0
    data = bytearray()
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadInput(400, "a multipart inside the upload: send each file as a field of its own")
            parts += 1
            if parts > limits.max_parts:
                raise BadInput(
                    413, f"more than {limits.max_parts} parts in one upload: send the images and options only"
                )
            is_file, data = part.filename is not None, bytearray()
            while chunk := await part.read_chunk(CHUNK_BYTES):
                body.take(chunk)
                data += chunk
                total += len(chunk)
                if total > limits.max_bytes:
                    raise BadInput(413, f"the upload is over the {limits.max_bytes:,}-byte limit")
                if not is_file and len(data) > FIELD_BYTES:
                    field = display_name(part.name, "a field")[:40]
                    raise BadInput(
                        413, f"option field {field!r} is over {FIELD_BYTES:,} bytes: options are short words"
                    )
            if is_file and data:  # a browser sends an empty file field with an empty name
                if len(files) >= limits.max_images:
                    raise BadInput(413, f"more than {limits.max_images} files in one request")
                files.append(Upload(display_name(part.filename, f"image-{len(files) + 1}"), bytes(data)))
            elif part.name is not None and part.name in OPTION_KEYS:
                fields[part.name] = data.decode("utf-8", "replace")
    except BaseException:
        data.clear()  # given back now, not when a cycle of the error's traceback is collected
        files.clear()
        raise
    if not files:
        raise BadInput(400, "no file in the upload: send the image in a multipart field with a file name")
    options = options_of(fields, "the upload")
    return [Upload(f.name, f.data, options) for f in files]


@web.middleware
async def answer_errors(request: web.Request, handler) -> web.StreamResponse:
    """Refusals as ``{"error": reason}`` with their status; anything unforeseen as a 500 without details."""
    try:
        response = await handler(request)
    except BadInput as err:
        response = web.json_response({"error": err.reason}, status=err.status)
        if err.status == 503:
            response.headers["Retry-After"] = "1"
    except web.HTTPException as err:
        response = web.json_response({"error": err.reason}, status=err.status)
    except Exception:
        log.exception("prediction failed")
        response = web.json_response({"error": "internal error; the server log has the details"}, status=500)
    response.headers.update(SECURITY_HEADERS)
    return response


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def host_name(host: str) -> str:
    """The name of a Host header without its port: ``[::1]:8000`` -> ``::1``, ``localhost:80`` -> ``localhost``."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0]


def host_check(settings: Settings):
    """A server on this machine alone answers only requests addressed to it by a loopback name: a page of
    another site that points its own name at 127.0.0.1 (DNS rebinding) gets 403, not the images."""

    @web.middleware
    async def check_host(request: web.Request, handler) -> web.StreamResponse:
        if settings.host in LOOPBACK and host_name(request.host or "") not in LOOPBACK:
            raise BadInput(403, f"this server answers only at http://127.0.0.1:{settings.port}, not at another name")
        return await handler(request)

    return check_host


def make_app(models: Models, settings: Settings) -> web.Application:
    """The application: the page, its files, the API and any extra (Vertex AI) routes."""
    app = web.Application(
        client_max_size=request_limit(settings.limits), middlewares=[answer_errors, host_check(settings)]
    )
    gate = Gate(settings.workers, settings.queue, settings.limits.memory_bytes)
    summary = {
        "backend": models.backend,
        "device": models.device,
        "image_size": models.image_size,
        "operating_point": models.operating_point,
        "models": models.cards,
        "max_bytes": settings.limits.max_bytes,
        "max_images": settings.limits.max_images,
        "reads_urls": list(settings.limits.url_prefixes),
        "note": NOTE,
    }

    async def page(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def describe(request: web.Request) -> web.Response:
        return web.json_response(summary)

    async def predict(request: web.Request) -> web.Response:
        gate.check_room()
        async with gate.body() as body:
            images = await read_images(request, settings.limits, body)
            if request.query.get("pictures"):
                for image in images:
                    image.options.setdefault("pictures", True)
            async with gate.admit():
                return web.json_response(
                    {"predictions": [await gate.run(predict_image, models, image) for image in images]}
                )

    async def no_icon(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app.router.add_get("/", page)
    app.router.add_get("/favicon.ico", no_icon)
    app.router.add_static("/static/", STATIC)
    for route in {"/healthz", settings.extra_routes.get("health", "/healthz")}:
        app.router.add_get(route, health)
    app.router.add_get("/v1/models", describe)
    for route in {"/v1/predict", settings.extra_routes.get("predict", "/v1/predict")}:
        app.router.add_post(route, predict)
    app.on_cleanup.append(lambda _: asyncio.to_thread(gate.pool.shutdown))
    return app


def serve(models: Models, settings: Settings) -> None:
    """Run until interrupted, saying where the page is."""
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)  # a bad upload is answered with its reason, not logged
    log.info(
        "serving %s models on %s at http://%s:%d (research software, not a medical device)",
        models.backend,
        models.device,
        settings.host,
        settings.port,
    )
    web.run_app(
        make_app(models, settings),
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=logging.getLogger("mammolibs.serve.access"),
        keepalive_timeout=settings.limits.header_seconds,  # a connection that sends no whole request is closed
    )
