"""Patient pseudonyms that resist guessing: the salt (secret, high-entropy), the key derived from it,
and the salted hashes that replace patient ids and file names in the shards.

A patient id space is small (six digits: a million ids), so a hash is only as safe as its salt: the
salt must be secret and long. It comes from ``--salt-file`` (created with a random salt when absent),
``MAMMOFLOW_SALT`` or ``--salt``; without one, standardize makes a random salt that is stored nowhere
and warns. The key is scrypt of the salt: every guess of a salt, checked against the shards or
``standardize.json``, costs a fraction of a second and 32 MiB, so a salt of 16 characters or more
cannot be found by trying.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets

from mammolibs import storage

log = logging.getLogger(__name__)

SALT_VARIABLE = "MAMMOFLOW_SALT"
MIN_SALT_LENGTH = 16
_KDF_SALT, _KDF_N, _KDF_R, _KDF_MAXMEM = b"mammoflow-pseudonyms-1", 2**15, 8, 64 * 2**20


def resolve_salt(salt: str | None = None, salt_file: str | None = None) -> str:
    """The salt to use: ``salt``, else ``$MAMMOFLOW_SALT``, else the one in ``salt_file`` (a random
    one written there, readable by its owner only, when the file is absent), else a random salt that
    is kept nowhere (with a warning: the output cannot be resumed or merged with another run)."""
    if salt is not None and salt_file is not None:
        raise ValueError("give --salt or --salt-file, not both")
    salt = salt if salt is not None else os.environ.get(SALT_VARIABLE)
    if salt is None and salt_file is not None:
        salt = _salt_from_file(salt_file)
    if salt is None:
        log.warning(
            "no salt given (--salt-file, %s or --salt): using a random one that is not stored, so patients "
            "cannot be linked with another run and this output cannot be resumed or merged; pass --salt-file "
            "PATH to keep it",
            SALT_VARIABLE,
        )
        return secrets.token_urlsafe(32)
    salt = salt.strip()
    if len(salt) < MIN_SALT_LENGTH:
        raise ValueError(
            f"the salt has {len(salt)} characters: use at least {MIN_SALT_LENGTH} random ones "
            "(--salt-file PATH makes one), or patient ids can be recovered from their hashes"
        )
    return salt


def _salt_from_file(url: str) -> str:
    if storage.exists(url):
        return storage.read_text(url)
    salt = secrets.token_urlsafe(32)
    if storage.is_local(url):
        path = storage.local_path(url)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as f:
            f.write(salt)
    else:
        storage.write_text_atomic(url, salt)
    log.warning("wrote a new random salt to %s: keep it secret, and use it for every source of this project", url)
    return salt


def pseudonym_key(salt: str) -> bytes:
    """The key every pseudonym is made with: scrypt of ``salt`` (slow on purpose: see the module)."""
    return hashlib.scrypt(salt.encode(), salt=_KDF_SALT, n=_KDF_N, r=_KDF_R, p=1, maxmem=_KDF_MAXMEM, dklen=32)


def pseudonym(value: str, key: bytes) -> str:
    """A keyed hash (HMAC-SHA256, 64 bits shown) of a patient id or a file name."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:16]


def salt_check(key: bytes) -> str:
    """What ``standardize.json`` records to tell whether a rerun or another source used the same salt."""
    return pseudonym("mammoflow salt check", key)


class InputNames:
    """How rejects and log lines name an input: by its path relative to the input folder it came from
    (never absolute), or with ``redact`` by a pseudonym of that path, since a folder or file name can
    itself identify a patient (``Doe^Jane_19700101/``)."""

    def __init__(self, roots: list[str], key: bytes, redact: bool = False):
        self.roots = sorted({root.rstrip("/") for root in roots}, key=len, reverse=True)
        self.key, self.redact = key, redact

    def name(self, url: str) -> str:
        root = next((r for r in self.roots if url == r or url.startswith(r + "/")), None)
        relative = url[len(root) :].lstrip("/") if root is not None else url
        if self.redact:
            return f"file-{pseudonym(relative, self.key)}"
        return relative or url.rstrip("/").rpartition("/")[2]  # a whole input folder: by its own name

    def text(self, text: str, *paths: str) -> str:
        """``text`` with every path under an input folder named as :meth:`name` names it: ``paths`` (the
        inputs it speaks of) exactly, then any other, which with ``redact`` runs to the next ': ', as
        reasons read '<path>: what is wrong' (a ':' inside a name is part of the name)."""
        for path in sorted(paths, key=len, reverse=True):
            text = text.replace(path, self.name(path))
        for root in self.roots:
            if self.redact:
                text = re.sub(re.escape(root) + r"(/(?:[^:]|:(?! ))*)?", lambda match: self.name(match.group(0)), text)
            else:
                text = text.replace(root + "/", "").replace(root, root.rpartition("/")[2])
        return text
