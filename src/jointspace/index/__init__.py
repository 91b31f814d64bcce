"""Vector indexes over FAISS: spec strings, ids, metadata in SQLite, one-folder persistence,
IVF indexes built from a stream with their lists on disk, shards searched in parallel.

``Index`` is imported lazily so that ``import jointspace.index`` does not load FAISS.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "Index": "jointspace.index.faiss_index",
    "ShardedIndex": "jointspace.index.sharded",
    "build_on_disk": "jointspace.index.ondisk",
    "auto_spec": "jointspace.index.spec",
    "METRICS": "jointspace.index.spec",
    "EXAMPLE_SPECS": "jointspace.index.spec",
    "MilvusIndex": "jointspace.index.milvus",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'jointspace.index' has no attribute {name!r}")


def __dir__():
    return __all__
