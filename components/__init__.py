"""KFP v2 components, one per pipeline step. Each runs in a mammoflow image (``docker/cpu.Dockerfile``;
``make images``); set ``MAMMOFLOW_IMAGE`` to the image your cluster pulls
(e.g. ``us-docker.pkg.dev/PROJECT/mammoflow/mammoflow-cpu:0.1.0``).
"""
import functools
import os

from kfp import dsl

IMAGE = os.environ.get("MAMMOFLOW_IMAGE", "mammoflow-cpu:0.1.0")

component = functools.partial(dsl.component, base_image=IMAGE, install_kfp_package=False)
