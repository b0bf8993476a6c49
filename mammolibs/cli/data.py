"""``mammo standardize`` and ``mammo data inspect|merge``."""

from __future__ import annotations

import argparse
import json
import sys

from mammolibs.cli.arguments import positive_int
from mammolibs.data.readers import reader_names


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


def _inspect(args: argparse.Namespace) -> int:
    from mammolibs.data.inspect import inspect

    print(inspect(args.data, args.sheet, args.per_group))
    return 0


def add_standardize_command(commands: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
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


def add_data_command(commands: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
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
