"""Models by name: ``create_model("basic_unet", role="segmentation", width=16)``.

:mod:`~mammolibs.models.catalog` lists the names, :mod:`~mammolibs.models.registry` builds them,
:mod:`~mammolibs.models.transfer` moves weights between stages; the architectures live in
:mod:`~mammolibs.models.monai_nets`, :mod:`~mammolibs.models.fcn` and :mod:`~mammolibs.models.mmseg`.
The catalog's names are light to import; the builders load torch and the architectures on first use.
"""

from mammolibs.models.catalog import DEFAULT_WIDTH, MODEL_NAMES, SNIP_CLASSES, WHOLE_IMAGE_CLASSES  # noqa: F401

BUILDERS = ("ARCHITECTURES", "ROLES", "create_model", "encoder_names")


def __getattr__(name: str):
    if name not in BUILDERS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from mammolibs.models import fcn, mmseg, monai_nets, registry  # noqa: F401  (register the architectures)

    return getattr(registry, name)
