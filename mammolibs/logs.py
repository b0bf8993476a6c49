"""Logging of the command line: mammoflow's own loggers (``mammolibs.*``) at INFO, WARNING with
``--quiet``, DEBUG with ``--verbose``; every other library's at WARNING. One format, on stderr."""

from __future__ import annotations

import argparse
import logging

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}


def add_verbosity_flags(parser: argparse.ArgumentParser) -> None:
    """``-q/--quiet`` and ``-v/--verbose`` (dest ``verbosity``: -1 or 1; None when neither is given)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const=-1,
        help="only warnings and errors from mammoflow",
    )
    group.add_argument(
        "-v", "--verbose", dest="verbosity", action="store_const", const=1, help="mammoflow's debugging messages too"
    )


def configure_logging(verbosity: int | None) -> None:
    """Set mammoflow's level (``None``: keep one set before, else INFO) and a root handler once."""
    logging.basicConfig(level=logging.WARNING, format=FORMAT)
    ours = logging.getLogger("mammolibs")
    if verbosity is not None or ours.level == logging.NOTSET:
        ours.setLevel(LEVELS[verbosity or 0])
