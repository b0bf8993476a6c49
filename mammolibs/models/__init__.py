"""Models by name: ``create_model("basic_unet", role="segmentation", width=16)``.

:mod:`~mammolibs.models.catalog` lists the names, :mod:`~mammolibs.models.registry` builds them,
:mod:`~mammolibs.models.transfer` moves weights between stages; the architectures live in
:mod:`~mammolibs.models.monai_nets`, :mod:`~mammolibs.models.fcn` and :mod:`~mammolibs.models.mmseg`.
"""
from mammolibs.models import fcn, mmseg, monai_nets  # noqa: F401  (register the architectures)
from mammolibs.models.catalog import DEFAULT_WIDTH, MODEL_NAMES, SNIP_CLASSES, WHOLE_IMAGE_CLASSES  # noqa: F401
from mammolibs.models.registry import ARCHITECTURES, ROLES, create_model, encoder_names  # noqa: F401
from mammolibs.models.transfer import transfer  # noqa: F401

assert set(ARCHITECTURES) == set(MODEL_NAMES), "every name of the catalog has a registered architecture"
