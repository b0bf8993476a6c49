"""``mammo predict`` (image files, or a folder or URL of them) and ``mammo export`` (ONNX)."""

from __future__ import annotations

import argparse
import sys

from mammolibs.cli.arguments import add_chain_flags
from mammolibs.inference import EXPORT_FORMATS, MODALITIES


def _predict(args: argparse.Namespace) -> int:
    from mammolibs.inference.batch import predict_folder
    from mammolibs.inference.chain import load_models
    from mammolibs.inference.predict import check_distinct_outputs, predict, readable

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


def _export(args: argparse.Namespace) -> int:
    from mammolibs.inference.export import export_onnx

    paths = export_onnx(args.unet, args.classifier, args.out, args.operating_point)
    print(
        f"exported {', '.join(paths.values())}; run them with 'mammo predict --backend onnx --unet {paths['unet']} "
        f"--classifier {paths['classifier']} IMAGE --out DIR'"
    )
    return 0


def add_predict_command(commands: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
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


def add_export_command(commands: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
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
