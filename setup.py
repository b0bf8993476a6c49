"""For tools that look for ``setup.py``: the metadata, the ``mammo`` command and the extras are declared
once, in ``pyproject.toml``; ``pip install .`` reads them from there either way."""

from setuptools import setup

setup()
