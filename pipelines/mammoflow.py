"""The mammoflow pipeline, composed in :mod:`mammolibs.pipeline.definition` from the components of
``components/``; from a checkout:

    python -m pipelines.mammoflow compile --target vertex --registry us-docker.pkg.dev/P/mammoflow \\
        --accelerator encoder=tpu-v5e:8 --accelerator finetune=nvidia-h100:8 --output mammoflow.yaml
    python -m pipelines.mammoflow run-local --workdir demo-output     # kfp.local, no cluster

(``mammo pipeline compile|run-local`` is the same command where mammoflow is installed.)
"""

from mammolibs.pipeline.definition import DEMO_ARGUMENTS, build_pipeline, check_arguments, main, mammoflow

__all__ = ["DEMO_ARGUMENTS", "build_pipeline", "check_arguments", "main", "mammoflow"]

if __name__ == "__main__":
    main(prog="python -m pipelines.mammoflow")
