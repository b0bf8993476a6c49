"""Evaluate the U-Net and the classifier on held-out patients."""
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components import component


@component
def evaluate(shards: Input[Dataset], unet: Input[Model], classifier: Input[Model], metrics: Output[Metrics],
             report: Output[Artifact]):
    from mammolibs.pipeline.steps import evaluate_step, scalar_metrics

    for name, value in scalar_metrics(evaluate_step(shards.path, unet.path, classifier.path, report.path)).items():
        metrics.log_metric(name, value)
