"""The pipeline's KFP components, one per step; they live in :mod:`mammolibs.pipeline.components` (so an
installed mammoflow holds them) and are named here by the step group they belong to."""
