"""``mammo``: the command line of mammoflow (standardize, data, train, evaluate, predict, serve, export, pipeline).

mammo standardize --source mias --input data/mias --output shards/
mammo data merge --output shards/ shards-mias/ shards-busi/
mammo data inspect shards/
mammo train finetune --data shards/ --out runs/finetune --init runs/autoencoder
mammo evaluate --data shards/ --unet runs/finetune --classifier runs/classifier --out eval/
mammo generalize shards-cbis/ shards-inbreast/ shards-vindr/ --out generalization/
mammo predict mdb012.pgm --unet runs/finetune --classifier runs/classifier --out predictions/
mammo export --unet runs/finetune --classifier runs/classifier --out exported/
mammo predict mdb012.pgm --backend onnx --unet exported/ --classifier exported/ --out predictions/
mammo predict --input gs://bucket/scans/ --unet exported/ --classifier exported/ --out gs://bucket/predictions/
mammo serve --unet runs/finetune --classifier runs/classifier
mammo pipeline submit --package mammoflow.yaml --host http://localhost:8080 --experiment mammoflow
"""

from __future__ import annotations

import argparse
import json
import sys

from mammolibs import __version__
from mammolibs.data.readers import reader_names
from mammolibs.evaluate import BACKENDS, EXPORT_FORMATS, MODALITIES
from mammolibs.logs import add_verbosity_flags, configure_logging
from mammolibs.train import STAGE_NAMES

DEFAULT_PORT = 8000
DEVICES = ("auto", "cpu", "cuda")
DEVICE_HELP = "where the PyTorch models run: cuda, cpu, or auto (cuda when there is one); ONNX runs on the CPU"


def positive_int(text: str) -> int:
    """An argparse type: a whole number above zero (``--image-size 0`` is refused, exit status 2)."""
    return _whole_number(text, least=1)


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number, zero or more."""
    return _whole_number(text, least=0)


def positive_float(text: str) -> float:
    """An argparse type: a finite number above zero (seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number above zero")
    return value


def _whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{value} must be {'above zero' if least == 1 else f'at least {least}'}")
    return value


def _standardize(args: argparse.Namespace) -> int:
    from mammolibs.data.pseudonyms import resolve_salt
    from mammolibs.data.standardize import standardize

    if len(args.source) != len(args.input):
        raise SystemExit("give one --input per --source, in the same order")
    result = standardize(
        list(zip(args.source, args.input)),
        args.output,
        image_size=args.image_size,
        salt=resolve_salt(args.salt, args.salt_file),
        samples_per_shard=args.samples_per_shard,
        workers=args.workers,
        progress=not args.no_progress,
        redact_paths=args.redact_paths,
    )
    print(
        f"{result.inputs} inputs: {result.written} written, {result.rejected} rejected, "
        f"{result.new_shards} new shard(s) -> {args.output}"
    )
    print(json.dumps(result.manifest["counts"], indent=2))
    for line in result.unusable_sources:
        print(line, file=sys.stderr)
    if result.rejected:
        print(
            f"{result.rejected} input(s) rejected: see {args.output.rstrip('/')}/rejects.jsonl for each file "
            "and why; fix them and rerun the same command to add them",
            file=sys.stderr,
        )
    return 1 if not result.written else (3 if result.rejected else 0)


def _merge(args: argparse.Namespace) -> int:
    from mammolibs.data.merge import merge_shard_sets

    manifest = merge_shard_sets(args.inputs, args.output, progress=not args.no_progress)
    print(
        f"{len(args.inputs)} shard sets merged: {manifest['written']} samples, {manifest['rejected']} rejected "
        f"inputs, {len(manifest['shards'])} shards -> {args.output}"
    )
    print(json.dumps(manifest["counts"], indent=2))
    return 0


def _train(args: argparse.Namespace) -> int:
    from mammolibs.train.cli import main as train_main

    train_main(args.stage, args.flags, prog=f"mammo train {args.stage}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from mammolibs.evaluate.compare import compare
    from mammolibs.evaluate.evaluation import evaluate
    from mammolibs.evaluate.report import headline, warnings_of

    options = {
        "split": args.split,
        "calibrate_on": args.calibrate_on,
        "target_specificity": args.target_specificity,
        "seed": args.seed,
        "save_operating_point": not args.no_save_operating_point,
        "progress": not args.no_progress,
    }
    if args.compare:
        if args.unet or args.classifier:
            raise ValueError("give --compare RUN ... or --unet and --classifier, not both")
        result = compare(args.data, args.compare, args.out, **options)
        for row, figures in result["figures"].items():
            print(f"{row}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
        print(f"side by side in {args.out.rstrip('/')}/comparison.html")
        return 0
    if not (args.unet and args.classifier):
        raise ValueError("give --unet and --classifier (or --compare RUN ...)")
    metrics = evaluate(args.data, args.unet, args.classifier, args.out, **options)
    for name, group in [("all sources", metrics["overall"]), *metrics["sources"].items()]:
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in headline(group).items()))
    for warning in warnings_of(metrics):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"metrics in {args.out.rstrip('/')}/metrics.json, report in {args.out.rstrip('/')}/report.html")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from mammolibs.evaluate.batch import predict_folder
    from mammolibs.evaluate.predict import check_distinct_outputs, load_models, predict, readable

    if bool(args.images) == bool(args.input):
        raise ValueError("give image files or --input FOLDER_OR_URL, one of the two")
    check_distinct_outputs(args.images or [])
    models = load_models(args.unet, args.classifier, args.backend, args.operating_point, args.device)
    modality = "US" if args.whole_frame else args.modality
    if args.input:
        result = predict_folder(args.input, models, args.out, modality, args.threshold, progress=not args.no_progress)
        print(
            f"{result.inputs} images: {result.predicted} predicted, {result.skipped} done before, "
            f"{result.rejected} rejected -> {args.out.rstrip('/')}/findings.jsonl"
        )
        if result.rejected:
            print(f"see {args.out.rstrip('/')}/rejects.jsonl for each file and why", file=sys.stderr)
        return 3 if result.rejected else 0
    for image in args.images:
        report = predict(image, models, args.out, modality, args.threshold)
        call = "suspicious for malignancy" if report["called_malignant"] else "not called malignant"
        print(
            f"{image}: {len(report['lesions'])} lesion(s), malignancy {report['malignancy_text']}: {call} "
            f"(threshold {readable(report['operating_point']['malignancy_threshold'])})"
        )
        for warning in report["warnings"]:
            print(f"warning: {image}: {warning}", file=sys.stderr)
    trained_on = ", ".join(
        f"{source} ({n})" for source, n in ((models.cards[0].get("trained_on") or {}).get("sources") or {}).items()
    )
    print(
        f"models trained on {trained_on or 'data not recorded in the checkpoint'}; overlays and lesion JSON "
        f"written to {args.out}"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    import os

    from mammolibs.evaluate.predict import load_models
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


def _export(args: argparse.Namespace) -> int:
    from mammolibs.evaluate.export import export_onnx

    paths = export_onnx(args.unet, args.classifier, args.out, args.operating_point)
    print(
        f"exported {', '.join(paths.values())}; run them with 'mammo predict --backend onnx --unet {paths['unet']} "
        f"--classifier {paths['classifier']} IMAGE --out DIR'"
    )
    return 0


def _generalize(args: argparse.Namespace) -> int:
    from mammolibs.evaluate.generalization import generalization
    from mammolibs.train.recipe import check_schedule, default_schedule

    schedule = default_schedule()
    for stage, settings in _schedule(args.schedule).items():
        schedule.setdefault(stage, {}).update(settings)
    summary = generalization(args.shard_sets, args.out, check_schedule(schedule), split=args.split, seed=args.seed)
    for figure, matrix in summary["matrices"].items():
        print(figure)
        for name, cells in matrix.items():
            print(
                f"  trained on {name}: "
                + ", ".join(f"{s} {'n/a' if v is None else f'{v:.3f}'}" for s, v in cells.items())
            )
    print(f"matrices in {args.out.rstrip('/')}/generalization.html")
    return 0


def _schedule(text: str | None) -> dict:
    """A schedule from inline JSON or a YAML/JSON file: {step: {epochs: N, setting: value}}."""
    import yaml

    if not text:
        return {}
    if not text.lstrip().startswith("{"):
        with open(text, encoding="utf-8") as f:
            text = f.read()
    schedule = yaml.safe_load(text)
    if not isinstance(schedule, dict) or not all(isinstance(v, dict) for v in schedule.values()):
        raise ValueError('--schedule: expected {step: {setting: value}}, e.g. \'{"finetune": {"epochs": 5}}\'')
    return schedule


def _inspect(args: argparse.Namespace) -> int:
    from mammolibs.data.inspect import inspect

    print(inspect(args.data, args.sheet, args.per_group))
    return 0


PIPELINE_COMMANDS = {
    "compile": "write the pipeline as KFP v2 YAML for Vertex AI Pipelines or Kubeflow",
    "run-local": "run the whole pipeline on this machine with kfp.local (what make demo runs)",
}


def _pipeline(args: argparse.Namespace) -> int:
    """``mammo pipeline compile|run-local FLAGS``: the pipeline's own command line, from the installed package."""
    from pipelines.mammoflow import main as pipeline_main

    pipeline_main([args.pipeline_command, *args.flags], prog="mammo pipeline")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from mammolibs.pipeline.submit import parse_parameters, submit_to_kubeflow, submit_to_vertex

    parameters = parse_parameters(args.param)
    if bool(args.host) == bool(args.project):
        raise ValueError("give --host (Kubeflow Pipelines) or --project and --region (Vertex AI), not both or neither")
    if args.project:
        if not (args.region and args.pipeline_root):
            raise ValueError("Vertex AI needs --region and --pipeline-root gs://BUCKET/... besides --project")
        job = submit_to_vertex(
            args.package,
            args.project,
            args.region,
            args.pipeline_root,
            args.run_name,
            parameters,
            args.service_account,
            args.experiment,
            args.api_endpoint,
        )
        print(
            f"Vertex AI pipeline job {job} submitted; watch it at https://console.cloud.google.com/vertex-ai/"
            f"locations/{args.region}/pipelines/runs/{job.rsplit('/', 1)[-1]}?project={args.project}"
        )
        return 0
    experiment = args.experiment or "mammoflow"
    run_id = submit_to_kubeflow(
        args.package, args.host, experiment, args.run_name, parameters, args.pipeline_root, args.service_account
    )
    print(f"run {run_id} submitted to {args.host} (experiment {experiment})")
    return 0


def add_chain_flags(parser: argparse.ArgumentParser, default: str) -> None:
    """The models of the chain, as predict and serve take them (``default``: where they are when not given;
    empty: they must be given)."""
    where = f" [default: {default}]" if default else ""
    for flag, stage in (("--unet", "the finetune stage"), ("--classifier", "the classifier stage")):
        parser.add_argument(
            flag,
            required=not default,
            help=f"checkpoint (.pt) or --out folder of {stage}; or {flag[2:]}.onnx / the 'mammo export' folder{where}",
        )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="torch: the checkpoints in PyTorch; onnx: the exported files in onnxruntime; auto: onnx "
        "when both --unet and --classifier are exported files",
    )
    parser.add_argument("--device", choices=DEVICES, default="auto", help=DEVICE_HELP)
    parser.add_argument(
        "--operating-point",
        help="operating_point.json (or the evaluation folder holding it) [default: the one 'mammo evaluate' stored "
        "beside the classifier, or the one stored in the export; 0.5 thresholds without one]",
    )


def _add_standardize_command(commands: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """``mammo standardize``."""
    std = commands.add_parser(
        "standardize",
        formatter_class=fmt,
        help="read sources in their published layouts, write standard-form shards",
        description="Read each source in its published layout and write standard-form "
        "shards, manifest.json and rejects.jsonl. Rerunning the same command after a crash "
        "finishes the job; rerunning a finished job writes nothing.",
        epilog="exit status: 0 all inputs written, 3 some inputs rejected (see rejects.jsonl), "
        "1 nothing written, 2 bad arguments or settings",
    )
    std.add_argument(
        "--source",
        action="append",
        required=True,
        choices=reader_names(),
        help="reader for the matching --input (see the README for each layout); repeat "
        "--source/--input for several sources",
    )
    std.add_argument(
        "--input", action="append", required=True, help="folder or URL (gs://...) of that source, as published"
    )
    std.add_argument("--output", required=True, help="folder or URL (gs://bucket/path) for shards and manifest")
    std.add_argument("--image-size", type=positive_int, default=512, help="side of the square standard image, pixels")
    std.add_argument(
        "--salt-file",
        help="file (or URL) holding the secret salt of patient-id hashes; made with a "
        "random salt when absent. Keep it secret and use it for every source and run of one project "
        "[default: $MAMMOFLOW_SALT, else a random salt kept nowhere: the output cannot be resumed]",
    )
    std.add_argument(
        "--salt",
        help="the salt itself (at least 16 characters); prefer --salt-file or $MAMMOFLOW_SALT, "
        "as a command line is seen by other users of the machine",
    )
    std.add_argument("--samples-per-shard", type=positive_int, default=256, help="samples in each tar shard")
    std.add_argument(
        "--workers", type=positive_int, default=1, help="processes decoding and standardizing images in parallel"
    )
    std.add_argument(
        "--redact-paths",
        action="store_true",
        help="name rejected inputs in rejects.jsonl and the log "
        "by a salted hash of their path instead of the path relative to --input: use it when folder or "
        "file names hold patient names, ids or dates",
    )
    std.add_argument("--no-progress", action="store_true", help="hide progress bars")
    std.set_defaults(run=_standardize)


def _add_data_command(commands: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """``mammo data inspect`` and ``mammo data merge``."""
    data = commands.add_parser("data", help="look at standardized data").add_subparsers(
        dest="data_command", required=True, help="what to do with the shards"
    )
    ins = data.add_parser("inspect", formatter_class=fmt, help="print the manifest's counts, write a contact sheet")
    ins.add_argument("data", help="URL of standardized shards")
    ins.add_argument("--sheet", help="where to write the contact-sheet PNG [default: <data>/contact_sheet.png]")
    ins.add_argument("--per-group", type=positive_int, default=4, help="samples shown per source and label")
    ins.set_defaults(run=_inspect)
    mer = data.add_parser(
        "merge",
        formatter_class=fmt,
        help="merge shard sets standardized separately into one",
        description="Copy the shards of several standardized sets (one per source, say) into one "
        "set with one manifest; every shard is checked against its SHA-256 on the way.",
    )
    mer.add_argument("inputs", nargs="+", help="URLs of standardized shard sets, made with the same settings")
    mer.add_argument("--output", required=True, help="folder or URL for the merged shards and manifest")
    mer.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    mer.set_defaults(run=_merge)


def _add_train_command(commands: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """``mammo train STAGE``."""
    tr = commands.add_parser(
        "train",
        help="run one training stage (the train/ scripts' command line)",
        description="Run a training stage: 'mammo train STAGE --help' lists its flags. The same "
        "as the scripts under train/; under torchrun: torchrun --nproc-per-node=N -m mammolibs.cli "
        "train STAGE ...",
    )
    tr.add_argument(
        "stage", choices=tuple(STAGE_NAMES), help="; ".join(f"{name}: {text}" for name, text in STAGE_NAMES.items())
    )
    tr.add_argument("flags", nargs=argparse.REMAINDER, help="the stage's flags, e.g. --data shards/ --out runs/encoder")
    tr.set_defaults(run=_train)


def _add_evaluate_command(commands: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """``mammo evaluate``."""
    ev = commands.add_parser(
        "evaluate",
        formatter_class=fmt,
        help="score the U-Net -> classifier chain per source",
        description="Score the deployed chain (the U-Net finds lesions, the classifier scores "
        "them) on held-out patients, overall and per source: Dice/IoU, detection (FROC), "
        "image-level and lesion-level AUROC with bootstrap 95% intervals, sensitivity and "
        "specificity at an operating point chosen on the validation split. Writes metrics.json, "
        "operating_point.json, roc.png, segmentation sheets and report.html.",
    )
    ev.add_argument(
        "--data",
        required=True,
        nargs="+",
        help="URLs of standardized shard sets to score (several: "
        "one model scored on each source, e.g. one trained on CBIS-DDSM scored on INbreast)",
    )
    ev.add_argument("--unet", help="U-Net checkpoint (.pt) or the finetune stage's --out folder (its best.pt)")
    ev.add_argument(
        "--classifier",
        help="classifier checkpoint (.pt) or the --out folder of the classifier "
        "(snips) or whole_image stage (its best.pt)",
    )
    ev.add_argument(
        "--compare",
        nargs="+",
        metavar="RUN",
        help="score several models side by side instead: each RUN "
        "a folder holding finetune/ and classifier/, or UNET,CLASSIFIER",
    )
    ev.add_argument("--out", required=True, help="folder or URL for metrics.json, report.html and pictures")
    ev.add_argument("--split", default="test", choices=("train", "val", "test"), help="which split to score")
    ev.add_argument(
        "--calibrate-on",
        nargs="+",
        metavar="URL",
        help="shard sets whose val split sets the operating "
        "point [default: --data]; give the training data's when scoring a dataset the model never saw",
    )
    ev.add_argument(
        "--target-specificity",
        type=float,
        default=0.9,
        help="specificity (malignant vs rest, per image) the malignancy threshold is chosen for",
    )
    ev.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals and of normal-tissue snips")
    ev.add_argument(
        "--no-save-operating-point",
        action="store_true",
        help="do not store operating_point.json beside the classifier (mammo predict reads it there)",
    )
    ev.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    ev.set_defaults(run=_evaluate)


def _add_generalize_command(commands: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """``mammo generalize``."""
    gen = commands.add_parser(
        "generalize",
        formatter_class=fmt,
        help="train on each source and all but one, score on every source: the matrix",
        description="Does the model work on a dataset it never saw? Trains the recipe (encoder, "
        "autoencoder, finetune, classifier) on each source alone, on all, and on all but one, "
        "then scores each model on every source's held-out patients. Writes "
        "generalization.json and generalization.html (matrices) and each run's report.",
    )
    gen.add_argument(
        "shard_sets",
        nargs="+",
        help="standardized shard sets: one per source, e.g. the 'mammo "
        "standardize' outputs for CBIS-DDSM, INbreast and VinDr-Mammo, or a merged set (split by source here)",
    )
    gen.add_argument("--out", required=True, help="folder or URL for merged data, runs, evaluations and the matrices")
    gen.add_argument(
        "--schedule",
        help="epochs and settings per step of the recipe over the defaults (encoder/autoencoder 10, "
        'finetune 30, classifier_encoder 10, classifier 20 epochs): inline JSON, e.g. \'{"finetune": {"epochs": 5, '
        '"batch_size": 4}}\', or a YAML file',
    )
    gen.add_argument("--split", default="test", choices=("val", "test"), help="which split of each source to score")
    gen.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals")
    gen.set_defaults(run=_generalize)


def _add_predict_command(commands: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """``mammo predict``."""
    pr = commands.add_parser(
        "predict",
        formatter_class=fmt,
        help="find and score lesions in image files",
        description="Find lesions with the U-Net, score each with the classifier and call the "
        "image at the operating point. Writes, per image, <name>.overlay.png (the original "
        "image at full resolution, findings outlined and boxed with their malignancy) and "
        "<name>.lesions.json (boxes as [x_min, y_min, x_max, y_max] in original pixels, origin "
        "top-left, y downwards); with --input, findings.jsonl, overlays/ and rejects.jsonl. "
        "Research software, not a medical device.",
    )
    pr.add_argument("images", nargs="*", help="image files: DICOM (.dcm), PGM, PNG, TIFF, JPEG")
    pr.add_argument(
        "--input",
        help="a folder or URL (gs://...): predict every image file below it, resumable (a rerun skips the images done)",
    )
    add_chain_flags(pr, default="")
    pr.add_argument("--out", required=True, help="folder or URL for the overlays and findings")
    pr.add_argument(
        "--threshold",
        type=float,
        help="U-Net probability above which a pixel is lesion [default: the operating point's]",
    )
    pr.add_argument(
        "--modality",
        choices=MODALITIES,
        default="auto",
        help="MG: a mammogram (breast cropped and flipped as in standardize); US: an ultrasound frame "
        "(whole frame); auto: a DICOM's Modality, else the image's shape (ultrasound frames are wider "
        "than tall or small), with a warning",
    )
    pr.add_argument("--whole-frame", action="store_true", help="the same as --modality US")
    pr.add_argument("--no-progress", action="store_true", help="no progress bar (with --input)")
    pr.set_defaults(run=_predict)


def _add_serve_command(commands: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
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


def _add_export_command(commands: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """``mammo export``."""
    ex = commands.add_parser(
        "export",
        formatter_class=fmt,
        help="write the U-Net and the classifier as ONNX",
        description="Write unet.onnx and classifier.onnx (dynamic batch) with their input side, "
        "preprocessing, classes and the operating point's thresholds in their metadata.",
    )
    ex.add_argument("--unet", required=True, help="U-Net checkpoint (.pt) or the finetune stage's --out folder")
    ex.add_argument("--classifier", required=True, help="classifier checkpoint (.pt) or its stage's --out folder")
    ex.add_argument("--out", required=True, help="folder or URL for unet.onnx and classifier.onnx")
    ex.add_argument("--format", choices=EXPORT_FORMATS, default="onnx", help="file format")
    ex.add_argument(
        "--operating-point", help="operating_point.json to store in the files [default: the one beside the classifier]"
    )
    ex.set_defaults(run=_export)


def _add_pipeline_command(commands: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """``mammo pipeline compile|run-local|submit``."""
    pipeline = commands.add_parser(
        "pipeline", help="compile the pipeline, run it here, or start it in the cloud"
    ).add_subparsers(dest="pipeline_command", required=True, help="what to do with the pipeline")
    for name, text in PIPELINE_COMMANDS.items():  # their flags: 'mammo pipeline NAME --help'
        pipeline.add_parser(name, add_help=False, help=text).set_defaults(run=_pipeline, passes_flags=True)
    sub = pipeline.add_parser(
        "submit",
        formatter_class=fmt,
        help="start a run on Kubeflow Pipelines or Vertex AI",
        description="Start a run of the compiled pipeline: on a Kubeflow Pipelines endpoint "
        "(--host) or on Vertex AI Pipelines (--project, --region, --pipeline-root). The "
        "parameters are checked against the compiled file first.",
    )
    sub.add_argument("--package", default="mammoflow.yaml", help="the compiled pipeline ('make compile')")
    sub.add_argument(
        "--host",
        help="Kubeflow Pipelines API address, e.g. http://localhost:8080 after "
        "'kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80'",
    )
    sub.add_argument("--project", help="Google Cloud project: submit to Vertex AI Pipelines there")
    sub.add_argument("--region", help="Vertex AI region, e.g. us-central1 (where the bucket and images are)")
    sub.add_argument(
        "--api-endpoint", help="Vertex AI API address other than the region's default (a private endpoint, say)"
    )
    sub.add_argument(
        "--experiment",
        help="Kubeflow: experiment to file the run under, made if new [default "
        "mammoflow]; Vertex AI: a label of the job",
    )
    sub.add_argument("--run-name", default="mammoflow", help="name of the run")
    sub.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a pipeline parameter (JSON values, e.g. finetune_epochs=3); repeat for several",
    )
    sub.add_argument(
        "--pipeline-root",
        help="where step outputs go, e.g. gs://BUCKET/pipeline-root (required for Vertex AI; the bucket must exist)",
    )
    sub.add_argument(
        "--service-account",
        help="the account the steps run as: a Kubernetes service account "
        "(Kubeflow) or an IAM service account e-mail (Vertex AI), e.g. infra/'s pipeline runner",
    )
    sub.set_defaults(run=_submit)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mammo", description="mammoflow: breast-imaging pipeline (research software, not a medical device)."
    )
    parser.add_argument("--version", action="version", version=f"mammoflow {__version__}")
    add_verbosity_flags(parser)
    commands = parser.add_subparsers(dest="command", required=True, help="what to do")
    fmt = argparse.ArgumentDefaultsHelpFormatter
    _add_standardize_command(commands, fmt)
    _add_data_command(commands, fmt)
    _add_train_command(commands, fmt)
    _add_evaluate_command(commands, fmt)
    _add_generalize_command(commands, fmt)
    _add_predict_command(commands, fmt)
    _add_serve_command(commands, fmt)
    _add_export_command(commands, fmt)
    _add_pipeline_command(commands, fmt)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = get_parser()
    args, flags = parser.parse_known_args(argv)
    if flags and not getattr(args, "passes_flags", False):
        parser.error(f"unrecognized arguments: {' '.join(flags)}")
    args.flags = flags if getattr(args, "passes_flags", False) else getattr(args, "flags", None)
    configure_logging(args.verbosity)
    try:
        return args.run(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"mammo {args.command}: {err}", file=sys.stderr)
        return 2
    except ConnectionError as err:  # a storage service out of reach: the message says what to check
        print(f"mammo {args.command}: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # an output that cannot be written, a folder that is a file, ...
        print(f"mammo {args.command}: {err}; check the path and that you may write there", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
