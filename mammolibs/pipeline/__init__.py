"""What the KFP components call, and running the pipeline locally with ``kfp.local``."""
