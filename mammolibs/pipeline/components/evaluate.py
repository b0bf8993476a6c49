"""Evaluate the chain on held-out patients (metrics, ROC curve, confusion matrix, report), and the
optional cross-dataset generalization matrix."""

from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from mammolibs.pipeline.components import component


@component
def evaluate(
    shards: Input[Dataset],
    unet: Input[Model],
    classifier: Input[Model],
    evaluation: Output[Artifact],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[HTML],
):
    """``mammo evaluate``; its files land in ``evaluation``, its numbers in the typed artifacts (image level,
    malignant vs rest, at the operating point chosen on the validation split)."""
    import json
    import shutil

    from mammolibs.pipeline.steps import evaluate_models, scalar_metrics

    results = evaluate_models(shards.path, unet.path, classifier.path, evaluation.path)
    for name, value in scalar_metrics(results).items():
        metrics.log_metric(name, value)
    calls = results["overall"]["image_level"]["malignant_vs_rest"]
    classification.log_confusion_matrix(calls["confusion_matrix"]["categories"], calls["confusion_matrix"]["matrix"])
    if calls["auroc"] is not None:
        with open(evaluation.path + "/roc.json", encoding="utf-8") as f:
            roc = json.load(f)
        classification.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    shutil.copyfile(evaluation.path + "/report.html", report.path)


@component
def generalize(
    shards: Input[Dataset],
    encoder_epochs: int,
    autoencoder_epochs: int,
    finetune_epochs: int,
    classifier_encoder_epochs: int,
    classifier_epochs: int,
    pretrain_settings: dict,
    finetune_settings: dict,
    classifier_pretrain_settings: dict,
    classifier_settings: dict,
    generalization: Output[Artifact],
    report: Output[HTML],
):
    """``mammo generalize`` of the merged shards: the recipe trained on each source and on all but one, scored
    on every source."""
    parameters = dict(locals())  # each recipe step's <step>_epochs and settings, read by recipe_schedule
    import shutil

    from mammolibs.pipeline.steps import generalize as run

    summary = run([shards.path], generalization.path, parameters)
    generalization.metadata.update({"sources": summary["sources"]})
    shutil.copyfile(generalization.path + "/generalization.html", report.path)


@component
def predict(images: str, unet: Input[Model], classifier: Input[Model], predictions: Output[Artifact]):
    """``mammo predict --input IMAGES``: findings of every image file below the folder or URL ``images`` at
    the operating point chosen by ``evaluate``: ``findings.jsonl``, ``overlays/``, ``rejects.jsonl``. A retried
    step skips the images already done."""
    from mammolibs.pipeline.steps import predict_images

    predictions.metadata.update(predict_images(images, unet.path, classifier.path, predictions.path))
