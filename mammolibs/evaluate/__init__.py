"""Evaluation: the deployed chain (:mod:`mammolibs.inference`) scored on held-out patients of shard sets.

:mod:`~mammolibs.evaluate.evaluation` (``mammo evaluate``) chooses the operating point and scores a
split, :mod:`~mammolibs.evaluate.metrics` computes the figures, :mod:`~mammolibs.evaluate.plots` and
:mod:`~mammolibs.evaluate.report` draw and write them, :mod:`~mammolibs.evaluate.generalization`
(``mammo generalize``) and :mod:`~mammolibs.evaluate.compare` (``mammo compare``) build on it. Only the
command line and the pipeline use this package.
"""
