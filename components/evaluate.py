"""Evaluate the U-Net and the classifier on held-out patients: metrics, ROC curve, confusion matrix, report."""
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components import component


@component
def evaluate(shards: Input[Dataset], unet: Input[Model], classifier: Input[Model], evaluation: Output[Artifact],
             metrics: Output[Metrics], classification: Output[ClassificationMetrics], report: Output[HTML]):
    """``mammo evaluate``; its files land in ``evaluation``, its numbers in the typed artifacts."""
    import json
    import shutil

    from mammolibs.pipeline.steps import evaluate_models, scalar_metrics

    results = evaluate_models(shards.path, unet.path, classifier.path, evaluation.path)
    for name, value in scalar_metrics(results).items():
        metrics.log_metric(name, value)
    confusion = results["classification"]["confusion_matrix"]
    classification.log_confusion_matrix(confusion["categories"], confusion["matrix"])
    if results["classification"]["auroc"] is not None:
        with open(evaluation.path + "/roc.json", encoding="utf-8") as f:
            roc = json.load(f)
        classification.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    shutil.copyfile(evaluation.path + "/report.html", report.path)
