"""Inference: the deployed chain (a U-Net finds lesions, a classifier scores them) as a library that
``mammo predict``, the batch step, ``mammo export``, ``mammo serve`` and evaluation all use.

:mod:`~mammolibs.inference.detector` runs the chain on standard-form images,
:mod:`~mammolibs.inference.checkpoints` builds it from training checkpoints,
:mod:`~mammolibs.inference.operating_point` holds its thresholds, :mod:`~mammolibs.inference.export`
writes and reads it as ONNX, :mod:`~mammolibs.inference.chain` loads it once for predictions,
:mod:`~mammolibs.inference.predict` and :mod:`~mammolibs.inference.batch` predict images a person can
check. Nothing here imports :mod:`mammolibs.evaluate` (metrics and reports are its users).

The names here are light to import (the command line reads them).
"""

BACKENDS = ("auto", "torch", "onnx")
"""What ``mammo predict`` and ``mammo serve`` run the models in: the PyTorch checkpoints, the files of
``mammo export`` in onnxruntime, or (auto) the export where both models are exported files."""
EXPORT_FORMATS = ("onnx",)
MODALITIES = ("auto", "MG", "US")
"""How ``mammo predict`` and ``mammo serve`` read an image: auto (a DICOM's Modality, else its shape), a
mammogram, an ultrasound frame."""
NOTE = "Research software, not a medical device: not for diagnosis."
"""What every prediction, report and page says of itself."""
