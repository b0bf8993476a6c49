"""Where readers register: ``@register_reader("mias")`` adds one to :data:`READERS`; :func:`unread` is
the item of a file that a layout does not name."""

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
