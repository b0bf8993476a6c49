"""KFP v2 components, one per pipeline step, each running the ``mammo`` command line in a mammoflow image
(``docker/``, ``make images``). The image named here is a default: the pipeline sets each step's image
from ``--registry`` and ``--tag`` when it is compiled (see :mod:`mammolibs.pipeline.hardware`).
"""

import functools

from kfp import dsl

from mammolibs import __version__

IMAGE = f"mammoflow/mammoflow-cpu:{__version__}"

component = functools.partial(dsl.component, base_image=IMAGE, install_kfp_package=False)
