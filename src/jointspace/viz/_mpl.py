"""Matplotlib with the Agg backend (no display needed), imported on first use."""

from __future__ import annotations


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, or MissingDependencyError with the install command."""
    try:
        import matplotlib
    except ImportError:
        from ..errors import MissingDependencyError

        raise MissingDependencyError("plots need matplotlib: pip install 'jointspace[server]' "
                                     "(or pip install matplotlib)") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path) -> str:
    """Write ``fig`` as PNG atomically and close it; returns the path."""
    import io

    from .._io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return str(path)
