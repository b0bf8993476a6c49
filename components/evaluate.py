"""Evaluate the chain, the generalization matrix, batch predictions
(see :mod:`mammolibs.pipeline.components.evaluate`)."""

from mammolibs.pipeline.components.evaluate import evaluate, generalize, predict

__all__ = ["evaluate", "generalize", "predict"]
