"""The pipeline: its KFP components (:mod:`~mammolibs.pipeline.components`), their composition
(:mod:`~mammolibs.pipeline.definition`), the hardware of each step, what the steps call, running it locally
with ``kfp.local`` and submitting it."""
