"""One way to reach any storage URL (local folder, ``gs://``, ...) through fsspec.

Every stage hands the next a URL, never a path guessed from the working folder; this module is the
only place that turns URLs into file systems.
"""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Callable

import fsspec
from fsspec.core import split_protocol, url_to_fs

NETWORK_TIMEOUT = "MAMMOFLOW_NETWORK_TIMEOUT"
"""Seconds to wait for a storage service to answer before giving up (default 10)."""
_REACHED: set[str] = set()


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return the file system serving ``url`` and the path inside it. A ``::`` in a name (``a::b.dcm``)
    is part of the name: fsspec's protocol chaining is never applied to names that come from data.
    Google Cloud Storage is checked reachable first (:func:`check_reachable`)."""
    protocol, _ = split_protocol(url)
    if protocol in ("gs", "gcs"):
        check_reachable(url)
    if "::" not in url:
        return url_to_fs(url)
    fs = fsspec.filesystem(protocol or "file")
    return fs, fs._strip_protocol(url)


def check_reachable(url: str) -> None:
    """Connect once to the storage service behind a ``gs://`` URL (``$STORAGE_EMULATOR_HOST`` or
    storage.googleapis.com) within ``$MAMMOFLOW_NETWORK_TIMEOUT`` seconds, so that an unreachable
    service is one clear error in seconds, not a minute of retries and a misleading 'no such folder'."""
    endpoint = os.environ.get("STORAGE_EMULATOR_HOST") or "https://storage.googleapis.com"
    if endpoint in _REACHED:
        return
    address = endpoint.split("://", 1)[-1].rstrip("/")
    host, _, number = address.rpartition(":") if address.rpartition(":")[2].isdigit() else (address, "", "")
    port = int(number) if number else (80 if endpoint.startswith("http://") else 443)
    timeout = float(os.environ.get(NETWORK_TIMEOUT, "10"))
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        raise ConnectionError(
            f"{url}: cannot reach the storage service at {host}:{port} within {timeout:g} s "
            f"({err}); check the network, the URL and $STORAGE_EMULATOR_HOST, or wait longer "
            f"with ${NETWORK_TIMEOUT}"
        ) from None
    _REACHED.add(endpoint)


def join(url: str, *parts: str) -> str:
    """Join path parts onto a URL, keeping its protocol (``gs://b/a`` + ``x`` -> ``gs://b/a/x``)."""
    return "/".join([url.rstrip("/")] + [p.strip("/") for p in parts if p.strip("/")])


def is_local(url: str) -> bool:
    """True for plain paths and ``file://`` URLs."""
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> str:
    """The OS path of a local URL."""
    return url[len("file://") :] if url.startswith("file://") else url


def exists(url: str) -> bool:
    fs, path = filesystem(url)
    return fs.exists(path)


def list_files(url: str, suffixes: tuple[str, ...] = ()) -> list[str]:
    """Paths of the files below ``url`` (recursively), relative to it and sorted; ``suffixes`` filters
    case-insensitively. ``join(url, relative)`` gives each file's URL back."""
    fs, root = filesystem(url)
    fs.invalidate_cache(root)  # object-store listings are cached; a rerun must see new objects
    if not fs.isdir(root):
        raise FileNotFoundError(f"{url}: no such folder; check the URL (and credentials for gs://)")
    root = root.rstrip("/")
    found = (path[len(root) + 1 :] for path in fs.find(root))
    wanted = tuple(s.lower() for s in suffixes)
    return sorted(path for path in found if not wanted or path.lower().endswith(wanted))


def location(url: str) -> str:
    """Where ``url`` points, comparable with another's: a local path resolved (links, ``..``) and
    made absolute, an object-store URL with one spelling of its scheme and no trailing slash."""
    if is_local(url):
        return "file://" + os.path.realpath(local_path(url))
    protocol, path = split_protocol(url)
    return f"{'gs' if protocol == 'gcs' else protocol}://{path.strip('/')}"


def check_apart(output: str, inputs: list[str], flag: str = "--output") -> None:
    """Refuse an ``output`` that is one of ``inputs``, lies inside one, or holds one: writing there would
    overwrite an input or read back what was written."""
    out = location(output).rstrip("/") + "/"
    for url in inputs:
        other = location(url).rstrip("/") + "/"
        if out.startswith(other) or other.startswith(out):
            raise ValueError(f"{flag} {output} overlaps the input {url}; write to a folder apart from every input")


def basename(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def makedirs(url: str) -> None:
    fs, path = filesystem(url)
    fs.makedirs(path, exist_ok=True)


def open_url(url: str, mode: str = "rb") -> IO:
    """Open a URL for reading or writing; the error names the URL and what to check."""
    try:
        fs, path = filesystem(url)
        return fs.open(path, mode)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{url}: no such file; check the URL and that the previous step wrote it") from err


def check_regular_file(url: str, max_bytes: int) -> None:
    """Refuse, before a byte is read, what is not a regular file of at most ``max_bytes``: a device, FIFO,
    socket or folder (a link to ``/dev/zero`` reads forever, a FIFO blocks) or an oversized file."""
    try:
        if is_local(url):
            found = os.stat(local_path(url))  # through links: their target is what would be read
            regular, size = stat.S_ISREG(found.st_mode), found.st_size
        else:
            fs, path = filesystem(url)
            info = fs.info(path)
            regular, size = info.get("type") == "file", info.get("size")
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{url}: no such file; check the URL") from err
    if not regular:
        raise ValueError(f"{url}: not a regular file (a device, FIFO, socket or folder); only regular files are read")
    if size is None or size > max_bytes:
        raise ValueError(f"{url}: {size if size is not None else 'unknown'} bytes, over the {max_bytes:,}-byte limit")


def read_bytes(url: str) -> bytes:
    with open_url(url, "rb") as f:
        return f.read()


def read_ranges(ranges: list[tuple[str, int, int]]) -> list[bytes]:
    """The bytes ``[start, end)`` of each ``(url, start, end)``, URLs of one file system, in one call to it
    (``cat_ranges``: concurrent requests on object stores). A range past a file's end comes back short."""
    if not ranges:
        return []
    paths = {url: filesystem(url) for url in dict.fromkeys(url for url, _, _ in ranges)}
    fs = next(iter(paths.values()))[0]
    if any(other is not fs for other, _ in paths.values()):
        raise ValueError(f"ranges of {', '.join(paths)} lie on several file systems; read them separately")
    try:
        return fs.cat_ranges(
            [paths[url][1] for url, _, _ in ranges], [r[1] for r in ranges], [r[2] for r in ranges], on_error="raise"
        )
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{err}: no such file; check the URL and that the previous step wrote it") from err


def read_text(url: str) -> str:
    return read_bytes(url).decode("utf-8")


def delete(url: str) -> None:
    fs, path = filesystem(url)
    fs.rm(path)
    fs.invalidate_cache(os.path.dirname(path))


LOCK = ".mammoflow-writer.lock"
STALE_LOCK_SECONDS = 6 * 3600
"""An object-store lock older than this is taken as left by a crash (local locks name a process instead)."""


def _lock_holder(lock: str) -> str | None:
    """Who holds ``lock``, or ``None`` when nobody does any more (its process is gone, or it is stale)."""
    try:
        holder = json.loads(read_text(lock))
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(holder, dict):
        return None
    if is_local(lock):
        if holder.get("host") != socket.gethostname():
            return f"process {holder.get('pid')} on {str(holder.get('host'))[:60]}"
        try:
            os.kill(int(holder.get("pid", 0)), 0)  # alive?
        except (ProcessLookupError, ValueError, TypeError):
            return None
        except PermissionError:
            pass  # alive, another user's
        return f"process {holder.get('pid')}"
    if time.time() - float(holder.get("since", 0) or 0) > STALE_LOCK_SECONDS:
        return None
    return f"process {holder.get('pid')} on {str(holder.get('host'))[:60]}"


@contextmanager
def writer_lock(folder: str) -> Iterator[None]:
    """Hold ``folder`` for one writer: a second ``standardize`` or ``merge`` into it is refused while the
    first runs; a lock whose process is gone (a crash, ``kill -9``) is taken over."""
    makedirs(folder)
    lock = join(folder, LOCK)
    mine = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()})
    for _ in range(2):
        try:
            if is_local(lock):
                descriptor = os.open(local_path(lock), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                with os.fdopen(descriptor, "w") as f:
                    f.write(mine)
            elif exists(lock):
                raise FileExistsError(lock)
            else:
                write_bytes_atomic(lock, mine.encode())
            break
        except FileExistsError:
            holder = _lock_holder(lock)
            if holder is not None:
                raise ValueError(
                    f"{folder} is being written by {holder}; wait for it to finish, or write elsewhere"
                ) from None
            delete(lock)  # left by a writer that is gone
    else:
        raise ValueError(f"{folder}: another writer took it while a stale lock was cleared; try again")
    try:
        yield
    finally:
        delete(lock)


def write_bytes_atomic(url: str, data: bytes) -> None:
    """Write ``data`` so that readers see either nothing or the whole file.

    Local files go to a temporary name in the same folder and are renamed; object stores
    (``gs://``) publish an object only when its upload completes, so one write suffices.
    """
    fs, path = filesystem(url)
    parent = os.path.dirname(path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    if is_local(url):
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    else:
        with fs.open(path, "wb") as f:
            f.write(data)
        fs.invalidate_cache(parent)


def write_text_atomic(url: str, text: str) -> None:
    write_bytes_atomic(url, text.encode("utf-8"))


def upload_folder(local_dir: str, url: str, skip: Callable[[str], bool] = lambda name: False) -> list[str]:
    """Copy each file under a local folder to ``url``, each one whole (objects are replaced, never appended).

    ``skip(relative name)`` leaves a file out. Returns the relative names copied.
    """
    copied = []
    for root, _, files in os.walk(local_dir):
        for name in sorted(files):
            relative = os.path.relpath(os.path.join(root, name), local_dir)
            if not skip(relative):
                with open(os.path.join(local_dir, relative), "rb") as f:
                    write_bytes_atomic(join(url, relative.replace(os.sep, "/")), f.read())
                copied.append(relative)
    return copied


def torch_save(obj: object, url: str) -> None:
    """``torch.save`` to any URL, atomically."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(url, buffer.getvalue())


def torch_load(url: str) -> dict:
    """``torch.load`` a checkpoint written by :func:`torch_save` (CPU tensors, weights only)."""
    import torch

    return torch.load(io.BytesIO(read_bytes(url)), map_location="cpu", weights_only=True)
