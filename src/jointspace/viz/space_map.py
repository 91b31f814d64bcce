"""A 2-D map of the joint space: several modalities' embeddings in one picture.

All modalities are reduced together (so distances across modalities stay comparable) by UMAP,
t-SNE or PCA; points are coloured by label and shaped by modality, and thin lines join some
true pairs (row i of every modality is one sample), which shows how close the method brings
matching items in the joint space.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import InputError, MissingDependencyError
from ._mpl import MEASURE_SCALE, figure_writer, measuring_font
from ._text import fit_text as _fit

METHODS = ("umap", "tsne", "pca")
MARKERS = ("o", "^", "s", "D", "v", "P")
#: colour of the classes beyond the palette (no palette colour is black)
OTHER_COLOUR = (0.0, 0.0, 0.0, 1.0)
LEGEND_POINTS = 8
#: widest legend entry (inches); a longer name is cut with an ellipsis
LEGEND_WIDTH = 2.5


def class_slots(codes, n_classes: int, n_colours: int) -> np.ndarray:
    """Palette index of each class, or -1 for a class drawn in :data:`OTHER_COLOUR`.

    With at most ``n_colours`` classes each has its own colour; with more, the
    ``n_colours - 1`` most frequent classes (ties: the first) keep one each, in class order,
    and the rest share the "other" colour, so that no colour stands for two classes.

    Parameters
    ----------
    codes : ndarray of int, shape (n,)
        Class index of each point, in ``0 .. n_classes - 1``.
    n_classes : int
    n_colours : int
        Size of the palette.

    Returns
    -------
    ndarray of int, shape (n_classes,)
    """
    if n_classes <= n_colours:
        return np.arange(n_classes)
    counts = np.bincount(codes, minlength=n_classes)
    kept = np.sort(np.argsort(-counts, kind="stable")[:n_colours - 1])
    slots = np.full(n_classes, -1)
    slots[kept] = np.arange(len(kept))
    return slots


def embed_2d(vectors, method: str = "umap", seed: int = 0) -> np.ndarray:
    """Reduce ``vectors`` (n, d) to (n, 2) with UMAP (cosine), t-SNE (cosine) or PCA.

    Parameters
    ----------
    vectors : array-like, shape (n, d)
    method : {"umap", "tsne", "pca"}
    seed : int

    Returns
    -------
    ndarray of float64, shape (n, 2)
        All zeros when every row is the same vector: one point, whatever the method.
    """
    from .._validation import check_choice, check_matrix

    x = check_matrix(vectors, "vectors", min_rows=3).astype(np.float64)
    method = check_choice(method, "method", METHODS)
    n = x.shape[0]
    if not np.ptp(x, axis=0).any():
        # t-SNE's PCA start divides by its zero spread and crashes the process; UMAP scatters
        # equal points over the plane as if they differed
        return np.zeros((n, 2))
    if method == "pca" or x.shape[1] <= 2:
        from sklearn.decomposition import PCA

        out = PCA(n_components=min(2, x.shape[1]), random_state=seed).fit_transform(x)
        return np.hstack([out, np.zeros((n, 2 - out.shape[1]))]) if out.shape[1] < 2 else out
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
        return TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed
                    ).fit_transform(x)
    try:
        import umap
    except ImportError:
        raise MissingDependencyError("method='umap' needs umap-learn: pip install umap-learn "
                                     "(or use method='tsne')") from None
    reducer = umap.UMAP(n_components=2, n_neighbors=int(min(15, n - 1)), metric="cosine", random_state=seed,
                        init="spectral" if n > 10 else "random")
    with warnings.catch_warnings():   # a fixed seed makes it run on one thread, on purpose: not news
        warnings.filterwarnings("ignore", message="n_jobs value .* overridden", category=UserWarning)
        return np.asarray(reducer.fit_transform(x), dtype=np.float64)


@figure_writer
def plot_joint_space(embeddings: dict, path, *, labels=None, label_names=None, method: str = "umap",
                     n_lines: int = 40, title: str | None = None, seed: int = 0, max_legend: int = 20) -> str:
    """Draw a 2-D map of aligned embeddings of several modalities; write a PNG.

    Parameters
    ----------
    embeddings : dict of str to array-like, each shape (n, d)
        Modality -> its embeddings in the joint space; row i of every modality is one sample
        (a true pair).
    path : str or path-like
        The PNG file to write (atomically); must end in ``.png``.
    labels : array-like, shape (n,), optional
        Class of each sample (ints or strings); colours the points.
    label_names : list of str, optional
        Names of integer labels.
    method : {"umap", "tsne", "pca"}
    n_lines : int
        Join this many randomly chosen true pairs with a thin line (0 for none; at most n
        are drawn).
    title : str, optional
    seed : int
        Seed of the reduction and of the pairs drawn (>= 0).
    max_legend : int
        At most this many classes in the legend (the rest counted in one entry); a name wider
        than :data:`LEGEND_WIDTH` inches is cut with an ellipsis there.  Beyond the
        20 colours of the palette, the 19 most frequent classes keep a colour each and the
        others are drawn in black (:func:`class_slots`).

    Returns
    -------
    str
        The written path.

    Raises
    ------
    InputError
        Embeddings that are not finite (n, d) matrices of one shape (named
        ``embeddings['<modality>']`` with their own row), labels that are not n 1-D values,
        a ``path`` that is not a writable ``.png`` file name, or a bad parameter; nothing is
        drawn then.
    """
    from .._validation import check_choice, check_int, check_matrix
    from ..models.base import l2_normalize
    from ._mpl import check_png_path, pyplot, save_figure

    path = check_png_path(path)
    if not isinstance(embeddings, dict) or not embeddings:
        raise InputError("embeddings: expected a dict modality -> (n, d) array, got "
                         f"{type(embeddings).__name__}")
    method = check_choice(method, "method", METHODS)
    n_lines = check_int(n_lines, "n_lines", low=0)
    seed = check_int(seed, "seed", low=0)
    max_legend = check_int(max_legend, "max_legend", low=0)
    mods = list(embeddings)
    # each modality checked under its own name, so a message points at its own rows
    arrs = [check_matrix(embeddings[m], f"embeddings[{m!r}]") for m in mods]
    n, d = arrs[0].shape
    for m, a in zip(mods, arrs):
        if a.shape != (n, d):
            raise InputError(f"embeddings[{m!r}]: expected shape ({n}, {d}) like {mods[0]!r}, got {a.shape}")
    if n * len(mods) < 3:
        raise InputError(f"embeddings: expected at least 3 points in all to draw a map, got {n} sample(s) x "
                         f"{len(mods)} modality(ies)")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1:
            raise InputError(f"labels: expected a 1-D array of {n} labels (one per sample), got shape {labels.shape}")
        if labels.shape[0] != n:
            raise InputError(f"labels: expected {n} labels (one per sample), got {labels.shape[0]}")
        if labels.dtype == object:
            labels = labels.astype(str)   # mixed types cannot be sorted into classes
        elif labels.dtype.kind not in "biuUS":
            raise InputError(f"labels: expected int or string labels, got dtype {labels.dtype}")
    if label_names is not None:
        if isinstance(label_names, (str, bytes, dict)) or not hasattr(label_names, "__len__"):
            raise InputError(f"label_names: expected a list of names (of labels 0, 1, ...), "
                             f"got {type(label_names).__name__}")
        label_names = [str(x) for x in label_names]
    xy = embed_2d(l2_normalize(np.vstack(arrs)), method=method, seed=seed)
    parts = [xy[i * n:(i + 1) * n] for i in range(len(mods))]

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 7))
    lines = bool(n_lines) and len(mods) > 1   # one modality has no pairs to join
    if lines:
        rng = np.random.default_rng(seed)
        rows = rng.choice(n, size=min(int(n_lines), n), replace=False)
        for r in rows:
            pts = np.array([p[r] for p in parts])
            ax.plot(pts[:, 0], pts[:, 1], color="0.55", lw=0.7, alpha=0.7, zorder=1)
    if labels is None:
        classes, codes = ["items"], np.zeros(n, dtype=int)
    else:
        classes, codes = np.unique(labels, return_inverse=True)
        classes = [label_names[int(c)] if label_names is not None and str(c).lstrip("-").isdigit()
                   and 0 <= int(c) < len(label_names) else str(c) for c in classes]
    cmap = plt.get_cmap("tab20" if len(classes) > 10 else "tab10")
    slots = class_slots(codes, len(classes), cmap.N)
    colours = np.array([cmap(slots[c]) if slots[c] >= 0 else OTHER_COLOUR for c in codes])
    for i, (m, p) in enumerate(zip(mods, parts)):
        ax.scatter(p[:, 0], p[:, 1], c=colours, marker=MARKERS[i % len(MARKERS)], s=22, alpha=0.85,
                   edgecolors="white", linewidths=0.3, zorder=2)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker=MARKERS[i % len(MARKERS)], color="0.3", label=m)
               for i, m in enumerate(mods)]
    if labels is not None:
        shown = [c for c in range(len(classes)) if slots[c] >= 0]
        handles += [Line2D([], [], ls="", marker="o", color=cmap(slots[c]), label=classes[c])
                    for c in shown[:max_legend]]
        if len(shown) > max_legend:
            handles.append(Line2D([], [], ls="", label=f"... {len(shown) - max_legend} more classes"))
        n_other = int((slots < 0).sum())
        if n_other:
            handles.append(Line2D([], [], ls="", marker="o", color=OTHER_COLOUR,
                                  label=f"{n_other} other classes (black)"))
    # a long class name (a sentence, a path) made the picture as wide as the name: cut it
    font = measuring_font(LEGEND_POINTS)
    for h in handles:
        h.set_label(_fit(h.get_label(), font, LEGEND_WIDTH * 72 * MEASURE_SCALE))
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=LEGEND_POINTS,
              frameon=False)
    ax.set_title(title or f"joint space ({method.upper() if method != 'tsne' else 't-SNE'}), "
                          f"{n} samples x {len(mods)} modalit{'ies' if len(mods) > 1 else 'y'}"
                          + ("; lines join true pairs" if lines else ""))
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return save_figure(fig, path)
