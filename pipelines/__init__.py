"""The mammoflow pipeline from a checkout: ``python -m pipelines.mammoflow`` (installed: ``mammo pipeline``)."""
