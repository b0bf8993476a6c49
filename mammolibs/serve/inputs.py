"""What a prediction request may carry, checked before anything is decoded: uploaded files (multipart),
JSON with base64 images or URLs, and Vertex AI's ``{"instances": [...], "parameters": {...}}``.

Every refusal is a :class:`BadInput` with an HTTP status and a one-line reason. Images stay in memory;
nothing is written to disk. A URL is read only under a prefix the server was started with.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
from dataclasses import dataclass, field

from mammolibs import storage
from mammolibs.inference import MODALITIES

NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9 _.()+-]+")
IMAGE_KEYS = ("b64", "image", "bytes")
URL_KEYS = ("gcs_uri", "url", "uri")
OPTION_KEYS = ("modality", "threshold", "pictures")


class BadInput(Exception):
    """A request refused: ``status`` (4xx) and a one-line reason for the person who sent it."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass
class Upload:
    """One image to predict: its bytes, a display name (never a path) and per-image options."""

    name: str
    data: bytes
    options: dict = field(default_factory=dict)


@dataclass
class Limits:
    """What the server accepts: the largest image (bytes), the most images per request, the URL
    prefixes images may be read from (none: URLs are refused), how long a client may take to send its
    headers and its body, the least rate its body must keep (bytes/s), and how many bytes the bodies
    of all requests in hand may hold together."""

    max_bytes: int = 100 * 1024 * 1024
    max_images: int = 16
    url_prefixes: tuple[str, ...] = ()
    header_seconds: float = 15.0
    body_seconds: float = 60.0
    min_body_rate: int = 64 * 1024
    memory_bytes: int = 512 * 1024 * 1024

    @property
    def max_parts(self) -> int:
        """The most parts of a multipart upload: every image and every option, with room to spare."""
        return self.max_images + 2 * len(OPTION_KEYS)


def display_name(name: str | None, fallback: str) -> str:
    """A file name fit to show and log: its last path part, odd characters replaced, 100 at most."""
    last = re.split(r"[\\/]", name or "")[-1]
    return NAME_CHARACTERS.sub("_", last).strip()[:100] or fallback


def options_of(values: dict, where: str) -> dict:
    """Per-image options, checked: ``modality`` (auto, MG, US), ``threshold`` (0..1), ``pictures`` (bool)."""
    options = {}
    if values.get("modality") not in (None, ""):
        if values["modality"] not in MODALITIES:
            raise BadInput(
                400, f"{where}: modality {str(values['modality'])[:20]!r} is not one of {', '.join(MODALITIES)}"
            )
        options["modality"] = values["modality"]
    if values.get("threshold") not in (None, ""):
        try:
            threshold = float(values["threshold"])
        except (TypeError, ValueError, OverflowError):
            threshold = -1.0
        if not 0.0 <= threshold <= 1.0:
            raise BadInput(400, f"{where}: threshold must be a number from 0 to 1")
        options["threshold"] = threshold
    if "pictures" in values:
        options["pictures"] = str(values["pictures"]).lower() in ("1", "true", "yes", "on")
    return options


def check_url(url: str, limits: Limits) -> str:
    """``url`` if it lies under one of the allowed prefixes (no ``..``, no other scheme or bucket)."""
    if not isinstance(url, str) or not url:
        raise BadInput(400, "the image URL must be a non-empty string")
    if not limits.url_prefixes:
        raise BadInput(403, "this server reads no URLs; upload the image, or start it with --allow-url PREFIX")
    _, _, path = url.partition("://")  # the first scheme: any later '://' is part of the path
    if (
        any(part in ("..", ".") for part in path.split("/"))
        or "\\" in url
        or "://" in path
        or posixpath.normpath("/" + path) != "/" + path.rstrip("/")
    ):
        raise BadInput(403, "the image URL has '.', '..', '\\' or a second '://' in its path; give it plainly")
    if not any(url.startswith(prefix.rstrip("/") + "/") for prefix in limits.url_prefixes):
        raise BadInput(403, f"{url[:200]} is outside the URLs this server may read ({', '.join(limits.url_prefixes)})")
    return url


def read_url(url: str, limits: Limits) -> bytes:
    """The bytes of an allowed URL, refused by size before they are read."""
    check_url(url, limits)
    try:
        fs, path = storage.filesystem(url)
        size = fs.size(path)
        if size is None or size > limits.max_bytes:
            raise BadInput(413, f"{url[:200]}: larger than the {limits.max_bytes:,}-byte limit")
        return fs.cat_file(path)
    except BadInput:
        raise
    except FileNotFoundError:
        raise BadInput(404, f"{url[:200]}: no such file") from None
    except ConnectionError:
        raise BadInput(502, f"{url[:200]}: the storage service cannot be reached") from None
    except Exception as err:  # no permission, a bad bucket name, ...
        raise BadInput(400, f"{url[:200]}: cannot be read ({type(err).__name__})") from None


def from_json(body: object, limits: Limits) -> list[Upload]:
    """Images of a JSON request: ``{"instances": [...], "parameters": {...}}`` (Vertex AI) or one
    instance alone; an instance is ``{"b64": ...}`` (or ``image``/``bytes``), ``{"gcs_uri": ...}``
    (or ``url``/``uri``), with optional ``name``, ``modality``, ``threshold``, ``pictures``."""
    if not isinstance(body, dict):
        raise BadInput(400, 'expected a JSON object: {"instances": [{"b64": "..."}]} or {"b64": "..."}')
    instances, shared = body.get("instances", [body]), body.get("parameters") or {}
    if not isinstance(instances, list) or not instances or not isinstance(shared, dict):
        raise BadInput(400, '"instances" must be a non-empty list and "parameters" an object')
    if len(instances) > limits.max_images:
        raise BadInput(413, f"{len(instances)} instances; at most {limits.max_images} per request")
    images = []
    for index, instance in enumerate(instances):
        where = f"instance {index}"
        if isinstance(instance, str):
            instance = {"b64": instance}
        if not isinstance(instance, dict):
            raise BadInput(400, f"{where}: expected an object with b64 or gcs_uri")
        if isinstance(instance.get("image"), dict):  # {"image": {"b64": ...}}, as Vertex AI's examples send
            instance = {**instance, **instance["image"], "image": instance["image"].get("b64")}
        encoded = next((instance[k] for k in IMAGE_KEYS if instance.get(k)), None)
        url = next((instance[k] for k in URL_KEYS if instance.get(k)), None)
        if (encoded is None) == (url is None):
            raise BadInput(400, f"{where}: give the image as b64 (base64 of the file) or as gcs_uri, one of the two")
        if url is not None:
            data, fallback = read_url(url, limits), storage.basename(str(url))
        else:
            data, fallback = _decode_base64(encoded, where, limits), f"image-{index + 1}"
        options = options_of({**shared, **instance}, where)
        if not isinstance(instance.get("name", ""), str):
            raise BadInput(400, f"{where}: name must be a string (the file name to show)")
        images.append(
            Upload(display_name(instance.get("name"), display_name(fallback, f"image-{index + 1}")), data, options)
        )
    return images


def _decode_base64(encoded: object, where: str, limits: Limits) -> bytes:
    if not isinstance(encoded, str):
        raise BadInput(400, f"{where}: b64 must be a string")
    if len(encoded) > limits.max_bytes * 4 // 3 + 4:
        raise BadInput(413, f"{where}: larger than the {limits.max_bytes:,}-byte limit")
    try:
        return base64.b64decode(encoded.split(",", 1)[-1] if encoded.startswith("data:") else encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput(400, f"{where}: b64 is not valid base64") from None
