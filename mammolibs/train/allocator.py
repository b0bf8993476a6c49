"""The C allocator under training: freed memory kept for the next step.

glibc serves every allocation above its mmap threshold (at most 32 MiB: a 256-px batch's largest
activations are above it) with ``mmap`` and hands it back with ``munmap`` when freed, so each step
maps, page-faults in and unmaps its large tensors anew; on 2 cores up to a third of the CPU time went
to the kernel. With ``mmap`` off for the heap and a high trim threshold, the next step reuses the
freed blocks (``benchmarks/train_step.py`` reports user and system time with and without it).
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters of glibc's malloc.h
KEEP = 1 << 30
"""Freed memory up to this much stays with the process instead of going back to the kernel."""
SETTING = "MAMMOFLOW_MALLOC"
"""``system`` leaves the C allocator as it is."""


def keep_freed_memory() -> bool:
    """Set glibc's allocator to keep freed memory (Linux with glibc; not with ``$MAMMOFLOW_MALLOC=system``).
    Returns whether it was set."""
    if os.environ.get(SETTING) == "system" or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL("libc.so.6")
    done = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, KEEP))
    log.debug("C allocator keeps freed memory: %s", done)
    return done
