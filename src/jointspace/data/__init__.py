"""Paired data: the ``Pairs`` container, readers and built-in datasets."""

from .pairs import Pairs

__all__ = ["Pairs"]
