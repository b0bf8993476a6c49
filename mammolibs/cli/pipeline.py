"""``mammo pipeline compile|run-local|submit``."""

from __future__ import annotations

import argparse

PIPELINE_COMMANDS = {
    "compile": "write the pipeline as KFP v2 YAML for Vertex AI Pipelines or Kubeflow",
    "run-local": "run the whole pipeline on this machine with kfp.local (what make demo runs)",
}


def _pipeline(args: argparse.Namespace) -> int:
    """``mammo pipeline compile|run-local FLAGS``: the pipeline's own command line, from the installed package."""
    from mammolibs.pipeline.definition import main as pipeline_main

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


def add_pipeline_command(commands: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
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
