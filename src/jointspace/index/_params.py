"""Build-time and search-time settings of an index (kept apart, as FAISS does).

Search-time: ``nprobe`` (IVF lists visited per query), ``efSearch`` (HNSW candidate-list
size) and ``k_factor`` (candidates per wanted result re-ranked exactly, for indexes that keep
their vectors, see :mod:`jointspace.index.refine`, and for specs with a refine stage such as
``"IVF256,PQ32,RFlat"``, whose FAISS default is 1: no more candidates than results).
Build-time: ``efConstruction`` (HNSW), the training sample and seed.
"""

from __future__ import annotations

from .._validation import check_int
from ..errors import InputError
from . import _faiss_parts as parts

DEFAULT_NPROBE = 16
"""Default ``nprobe`` for IVF indexes (capped at ``nlist``)."""
DEFAULT_EF_SEARCH = 64
"""Default ``efSearch`` for HNSW indexes."""
MAX_EF = 1 << 20
"""Largest ``efSearch`` / ``efConstruction`` accepted.  FAISS reads them as a C ``int`` and keeps
a candidate list that long for each query or insertion (8 bytes a candidate: 8 MiB at this cap,
16 GiB at the ``int`` limit)."""
SEARCH_PARAMS = ("nprobe", "efSearch", "k_factor")
BUILD_PARAMS = ("efConstruction",)


def check_params(params, allowed, name: str) -> dict:
    """``params`` as a dict of positive ints with keys from ``allowed`` (None values dropped);
    ``efSearch`` and ``efConstruction`` at most :data:`MAX_EF`."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InputError(f"{name}: expected a dict with keys from {', '.join(allowed)}; got {params!r}")
    out = {}
    for key, value in params.items():
        if key not in allowed:
            raise InputError(f"{name}: unknown setting {key!r}; expected one of {', '.join(allowed)}")
        if value is not None:
            out[key] = check_int(value, key if name == "set_search_params" else f"{name}[{key!r}]", low=1,
                                 high=MAX_EF if key in ("efSearch", "efConstruction") else None)
    return out


def applicable(core) -> set:
    """The search settings that ``core`` has."""
    ok = set()
    if parts.find_ivf(core) is not None:
        ok.add("nprobe")
    if parts.find_hnsw(core) is not None:
        ok.add("efSearch")
    if parts.find_refine(core) is not None:
        ok.add("k_factor")
    return ok


def validate_search(core, resolved: str | None, params, name: str) -> dict:
    """Check search settings against the index ``core`` (skipped while ``core`` is None)."""
    params = check_params(params, SEARCH_PARAMS, name)
    if core is None:
        return params
    ok = applicable(core)
    for key, value in params.items():
        label = key if name == "set_search_params" else f"{name}[{key!r}]"
        if key == "k_factor":
            continue   # a property of the stored vectors, checked by the index itself
        if key not in ok:
            kind = "IVF" if key == "nprobe" else "HNSW"
            raise InputError(f"{label}: applies to {kind} indexes only; this index is {resolved!r}")
        if key == "nprobe":
            nlist = int(parts.find_ivf(core).nlist)
            if value > nlist:
                raise InputError(f"{label}: expected an integer <= {nlist} (nlist), got {value}")
    return params


def current(core) -> dict:
    """The default search settings stored in ``core``."""
    out = {}
    ivf, hnsw = parts.find_ivf(core), parts.find_hnsw(core)
    if ivf is not None:
        out["nprobe"] = int(ivf.nprobe)
    if hnsw is not None:
        out["efSearch"] = int(hnsw.efSearch)
    if (refine := parts.find_refine(core)) is not None:
        out["k_factor"] = int(refine.k_factor)
    return out


def apply(core, params: dict) -> None:
    """Store validated search settings in ``core`` as its defaults."""
    if "nprobe" in params:
        parts.find_ivf(core).nprobe = params["nprobe"]
    if "efSearch" in params:
        parts.find_hnsw(core).efSearch = params["efSearch"]
    if "k_factor" in params and (refine := parts.find_refine(core)) is not None:
        refine.k_factor = float(params["k_factor"])


def set_defaults(core, build_params: dict, explicit: set) -> None:
    """jointspace's defaults on a fresh ``core``: efConstruction, and nprobe / efSearch unless given."""
    hnsw, ivf = parts.find_hnsw(core), parts.find_ivf(core)
    if hnsw is not None and "efConstruction" in build_params:
        hnsw.efConstruction = build_params["efConstruction"]
    if ivf is not None and "nprobe" not in explicit:
        ivf.nprobe = min(int(ivf.nlist), DEFAULT_NPROBE)
    if hnsw is not None and "efSearch" not in explicit:
        hnsw.efSearch = DEFAULT_EF_SEARCH
