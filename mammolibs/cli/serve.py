"""``mammo serve``: the web page and the HTTP API."""

from __future__ import annotations

import argparse

from mammolibs.cli.arguments import add_chain_flags, non_negative_int, positive_float, positive_int

DEFAULT_PORT = 8000


def _serve(args: argparse.Namespace) -> int:
    import os

    from mammolibs.inference.chain import load_models
    from mammolibs.serve.app import SMALL_RESERVE, Settings, request_limit, serve, vertex_settings
    from mammolibs.serve.inputs import Limits

    unet = args.unet or os.environ.get("AIP_STORAGE_URI")
    classifier = args.classifier or os.environ.get("AIP_STORAGE_URI")
    if not (unet and classifier):
        raise ValueError("give --unet and --classifier (run folders, or a 'mammo export' folder for both)")
    models = load_models(unet, classifier, args.backend, args.operating_point, args.device)
    limits = Limits(
        max_bytes=args.max_upload_mb * 1024 * 1024,
        max_images=args.max_images,
        url_prefixes=tuple(args.allow_url),
        header_seconds=args.header_seconds,
        body_seconds=args.body_seconds,
        min_body_rate=args.min_body_kib * 1024,
        memory_bytes=args.memory_mb * 1024 * 1024,
    )
    if limits.memory_bytes * (1 - SMALL_RESERVE) < request_limit(limits):
        raise ValueError(
            f"--memory-mb {args.memory_mb}: three quarters of it (the rest is kept for small uploads) hold not "
            "even one upload of --max-upload-mb; raise it"
        )
    settings = Settings(args.host, args.port, args.workers, args.queue, limits)
    if args.host == "127.0.0.1" and args.port == DEFAULT_PORT:
        settings = vertex_settings(settings)
    serve(models, settings)
    return 0


def add_serve_command(commands: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """``mammo serve``."""
    sv = commands.add_parser(
        "serve",
        formatter_class=fmt,
        help="a web page and an HTTP API that predict on uploads",
        description="Serve a web page (drop images, see the lesions, their malignancy and the "
        "call) and an HTTP API: POST /v1/predict (multipart 'file', or JSON {\"instances\": "
        '[{"b64": ...} or {"gcs_uri": ...}]}), GET /healthz, GET /v1/models. Under Vertex AI '
        "(AIP_HTTP_PORT set) it listens where the platform says, on AIP_HEALTH_ROUTE and "
        "AIP_PREDICT_ROUTE too, with the models at AIP_STORAGE_URI by default. Research software, "
        "not a medical device.",
    )
    add_chain_flags(sv, default="$AIP_STORAGE_URI")
    sv.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; other machines reach it only if you "
        "give 0.0.0.0 or a public address (Vertex AI: set for you)",
    )
    sv.add_argument(
        "--port", type=positive_int, default=DEFAULT_PORT, help="port to listen on (Vertex AI: $AIP_HTTP_PORT)"
    )
    sv.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="predictions run at once (threads); each uses torch's threads, so 1 suits a CPU",
    )
    sv.add_argument(
        "--queue", type=non_negative_int, default=32, help="requests that may wait for a worker; more get 503 at once"
    )
    sv.add_argument("--max-upload-mb", type=positive_int, default=100, help="largest image accepted, in MiB")
    sv.add_argument("--max-images", type=positive_int, default=16, help="most images in one request")
    sv.add_argument(
        "--header-seconds",
        type=positive_float,
        default=15.0,
        help="time a connection has to send a whole request's headers (and an idle one stays open); then closed",
    )
    sv.add_argument(
        "--body-seconds",
        type=positive_float,
        default=60.0,
        help="time a request has to send its body; a slower client gets 408 and loses its slot",
    )
    sv.add_argument(
        "--min-body-kib",
        type=positive_int,
        default=64,
        help="KiB per second a body must keep arriving at, measured over each 2 s; a client that drips or "
        "stalls gets 408 at once rather than at --body-seconds",
    )
    sv.add_argument(
        "--memory-mb",
        type=positive_int,
        default=512,
        help="MiB the bodies of all requests in hand may hold together, counted as they arrive; beyond it, 503",
    )
    sv.add_argument(
        "--allow-url",
        action="append",
        default=[],
        metavar="PREFIX",
        help="let requests name images by URL under PREFIX (e.g. gs://bucket/scans/); repeat for "
        "several; by default no URL is read",
    )
    sv.set_defaults(run=_serve)
