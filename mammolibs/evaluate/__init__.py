"""Two-stage inference (U-Net finds lesions, a classifier scores them), metrics, pictures, export.

The names here are light to import (the command line reads them).
"""

BACKENDS = ("auto", "torch", "onnx")
"""What ``mammo predict`` and ``mammo serve`` run the models in: the PyTorch checkpoints, the files of
``mammo export`` in onnxruntime, or (auto) the export where both models are exported files."""
EXPORT_FORMATS = ("onnx",)
MODALITIES = ("auto", "MG", "US")
"""How ``mammo predict`` and ``mammo serve`` read an image: auto (a DICOM's Modality, else its shape), a
mammogram, an ultrasound frame."""
