"""Registry of source readers: ``@register_reader("mias")`` and ``get_reader("mias")``.

A reader takes the folder of a source in its published layout and yields :class:`SourceItem`\\ s;
each item loads lazily so that a bad file becomes one reject, not a failed run.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Iterator

from mammolibs.data.sample import RawSample, RejectedInput, SourceItem

Reader = Callable[[str], Iterator[SourceItem]]
READERS: dict[str, Reader] = {}


def register_reader(name: str) -> Callable[[Reader], Reader]:
    def add(reader: Reader) -> Reader:
        READERS[name] = reader
        return reader

    return add


def unread(url: str, relative: str, reason: str) -> SourceItem:
    """An item for a file of a source folder that its layout does not name: it counts as an input and
    becomes one reject saying ``reason``, so ``inputs == written + rejected`` holds for every file."""
    return SourceItem(name=url, key=f"unread:{relative}", load=partial(_refuse, f"{relative}: {reason}"))


def _refuse(reason: str) -> RawSample:
    raise RejectedInput(reason)


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
