"""The torch-xla suite runs in its own environment (``make test-xla``: torch 2.9.0 + torch-xla 2.9.0) on
two CPU XLA devices; the main environment does not collect it (see tests/conftest.py)."""

import os

os.environ.setdefault("PJRT_DEVICE", "CPU")
os.environ.setdefault("CPU_NUM_DEVICES", "2")
