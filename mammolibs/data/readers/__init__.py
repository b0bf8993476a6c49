"""Registry of source readers: ``@register_reader("mias")`` and ``get_reader("mias")``.

A reader takes the folder of a source in its published layout and yields :class:`SourceItem`\\ s;
each item loads lazily so that a bad file becomes one reject, not a failed run.
"""

from __future__ import annotations

from mammolibs.data.readers.registry import READERS, Reader, register_reader, unread  # noqa: F401


def get_reader(name: str) -> Reader:
    _load_builtin_readers()
    if name not in READERS:
        raise KeyError(f"unknown source {name!r}; choose one of: {', '.join(sorted(READERS))}")
    return READERS[name]


def reader_names() -> list[str]:
    _load_builtin_readers()
    return sorted(READERS)


def _load_builtin_readers() -> None:
    from mammolibs.data.readers import (  # noqa: F401  (importing registers them)
        bus_bra,
        busi,
        cbis_ddsm,
        cmmd,
        csv_folder,
        dicom_folder,
        dmid,
        inbreast,
        kau_bcmd,
        mias,
        vindr,
    )
