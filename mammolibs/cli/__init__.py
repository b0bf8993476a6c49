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

One module per command group: :mod:`~mammolibs.cli.data`, :mod:`~mammolibs.cli.train`,
:mod:`~mammolibs.cli.evaluate`, :mod:`~mammolibs.cli.predict`, :mod:`~mammolibs.cli.serve`,
:mod:`~mammolibs.cli.pipeline`; each imports its library only when its command runs.
"""

from __future__ import annotations

import argparse
import sys

from mammolibs import __version__
from mammolibs.cli import data, evaluate, pipeline, predict, serve, train
from mammolibs.logs import add_verbosity_flags, configure_logging

COMMANDS = (
    data.add_standardize_command,
    data.add_data_command,
    train.add_train_command,
    evaluate.add_evaluate_command,
    evaluate.add_generalize_command,
    predict.add_predict_command,
    serve.add_serve_command,
    predict.add_export_command,
    pipeline.add_pipeline_command,
)
"""Each command's parser, in the order ``mammo --help`` lists them."""


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mammo", description="mammoflow: breast-imaging pipeline (research software, not a medical device)."
    )
    parser.add_argument("--version", action="version", version=f"mammoflow {__version__}")
    add_verbosity_flags(parser)
    commands = parser.add_subparsers(dest="command", required=True, help="what to do")
    fmt = argparse.ArgumentDefaultsHelpFormatter
    for add_command in COMMANDS:
        add_command(commands, fmt)
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
