"""The width of a saved model's vectors, found by embedding a tiny probe.

A model that embeds only feature vectors says nothing generic about the widths it reads; its
``config.json`` records the shape of every learned array, and one of those widths is the
width of its input.  :func:`output_dim` tries them with a row of zeros until one is read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: probes tried at most (widths recorded in config.json, smallest first)
MAX_PROBES = 32


def _recorded_widths(model_dir) -> list[int]:
    from .base import CONFIG_FILE, SHAPES_KEY

    try:
        config = json.loads((Path(model_dir) / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return []
    shapes = config.get(SHAPES_KEY) if isinstance(config, dict) else None
    if not isinstance(shapes, dict):
        return []
    widths = {n for v in shapes.values() if isinstance(v, dict) for n in (v.get("shape") or [])
              if isinstance(n, int) and not isinstance(n, bool) and n > 0}
    return sorted(widths)[:MAX_PROBES]


def output_dim(model, model_dir, modalities=None) -> int | None:
    """The width d of the vectors ``model.encode`` gives, or None when no probe is read.

    Parameters
    ----------
    model : JointModel
        A fitted model.
    model_dir : path
        The folder it was loaded from (its ``config.json`` names the widths tried).
    modalities : sequence of str, optional
        The modalities probed (default: all of the model's).

    Returns
    -------
    int or None
        ``encode(m, zeros((1, w))).shape[1]`` (``project`` for a model over towers) for the
        first modality ``m`` and recorded width ``w`` the model reads.
    """
    widths = _recorded_widths(model_dir)
    # a model over towers reads tower features through project (encode wants raw items)
    embed = model.project if callable(getattr(model, "project", None)) else model.encode
    for m in modalities or model.modalities_:
        for w in widths:
            try:
                z = np.asarray(embed(m, np.zeros((1, w), dtype=np.float32), normalize=False))
            except Exception:   # noqa: BLE001 (a probe of the wrong width or kind: try the next)
                continue
            if z.ndim == 2 and z.shape[0] == 1:
                return int(z.shape[1])
    return None
