"""Paired data: the ``Pairs`` container, readers, the cache folder and built-in datasets."""

from .datasets import get_dataset, list_datasets, load_dataset
from .pairs import Pairs, concat_pairs
from .manifest import parse_columns, read_manifest
from .readers import read_array

__all__ = ["Pairs", "concat_pairs", "read_array", "read_manifest", "parse_columns", "load_dataset", "list_datasets", "get_dataset"]
