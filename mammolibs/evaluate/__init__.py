"""Two-stage inference (U-Net finds lesions, a classifier scores them), metrics, pictures, export.

The names here are light to import (the command line reads them).
"""

BACKENDS = ("torch", "onnx")
"""What ``mammo predict`` runs the models in: the PyTorch checkpoints, or the files of ``mammo export``."""
EXPORT_FORMATS = ("onnx",)
