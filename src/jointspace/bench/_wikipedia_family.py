"""Benchmark rows of the CCA family on the Wikipedia image-text set.

Protocol of Rasiwasia et al. (ACM MM 2010): every test image queries all 693 test texts and
vice versa, relevant = same category, mAP over the full ranking, computed by
:func:`jointspace.eval.retrieval.evaluate_retrieval`. Every setting (components, ridge,
kernel, classifier strength, preprocessing) is chosen by 3-fold cross-validated retrieval
mAP on the training split only (:func:`~jointspace.eval.selection.select_by_cv`);
the test split is used once, for the reported numbers.
"""

from __future__ import annotations

import json

from ..eval.selection import select_by_cv

#: Hellinger map for the bag-of-visual-words histograms (a fixed, standard choice).
SQRT_IMAGE = {"image": "sqrt"}

#: Nystroem landmarks of the kernel CCA rows (exact kernel CCA at n = 2,173 is also
#: possible, but 3-fold cross-validation over a grid is then slow on two cores).
KCCA_FIXED = {"method": "nystroem", "n_features": 600, "preprocess": SQRT_IMAGE, "weight": 1.0}


def _grids(quick: bool):
    if quick:
        return {
            "cca": {"n_components": [7, 9], "weight": [1.0], "preprocess": [SQRT_IMAGE]},
            "kcca": {"n_components": [9], "reg": [0.003], "kernel": ["rbf"]},
            "sm": {"C": [10.0]},
            "scca": {"n_components": [9], "weight": [4.0]},
            "scm_c": [10.0],
            "scm_k": [9],
            "scm_k_linear": [9],
        }
    return {
        "cca": {"n_components": [5, 7, 9], "weight": [0.0, 1.0], "preprocess": [None, SQRT_IMAGE]},
        "kcca": {"n_components": [7, 9, 15], "reg": [0.001, 0.003, 0.01], "kernel": ["rbf", ("rbf", "poly")]},
        "sm": {"C": [1.0, 10.0, 100.0]},
        "scca": {"n_components": [9, 15], "weight": [1.0, 4.0]},
        "scm_c": [1.0, 10.0],
        "scm_k": [9, 15, 20],
        "scm_k_linear": [7, 9],  # the 10-d topic view has rank 9
    }


def wikipedia_family_rows(*, n_splits: int = 3, seed: int = 0, quick: bool = False, progress=None) -> list[dict]:
    """Fit and score the CCA-family methods on Wikipedia.

    Parameters
    ----------
    n_splits : int
        Cross-validation folds on the training split.
    seed : int
    quick : bool
        A one-point grid per method (for smoke runs).
    progress : callable, optional
        Called with no argument after each grid setting.

    Returns
    -------
    rows : list of dict
        ``{"method", "settings", **evaluate_retrieval(model, test), "cv/mAP"}`` (keys such as
        ``"image->text/mAP"``, ``"text->image/R@1"``; ``"cv/mAP"`` is the winning mean
        held-out mAP on the training folds), one per method: kernel CCA, SM, SCM on CCA, SCM
        on kernel CCA, supervised (three-view) CCA and SCM on it.
    """
    from ..data.datasets import load_dataset
    from ..eval.retrieval import evaluate_retrieval

    train = load_dataset("wikipedia", split="train")
    test = load_dataset("wikipedia", split="test")
    grids = _grids(quick)
    rows = []

    def add(method, name, grid, fixed=None, show=True):
        res = select_by_cv(name, grid, train, fixed=fixed, n_folds=n_splits, seed=seed, progress=progress)
        if not show:
            return res
        settings = {**(fixed or {}), **res.best_params}
        row = {"method": method, "settings": json.dumps(settings, sort_keys=True, default=str),
               **evaluate_retrieval(res.model, test, directions=["image->text", "text->image"]),
               "cv/mAP": res.best_score}
        rows.append(row)
        return res

    # linear CCA with the Hellinger option, as the base of SCM (its own row is in bench/wikipedia.py)
    cca = add("CCA (linear, CV)", "cca", grids["cca"], show=False)
    kcca = add("kernel CCA", "kcca", grids["kcca"], KCCA_FIXED)
    add("SM", "sm", grids["sm"], {"preprocess": SQRT_IMAGE})
    cca_base = dict(cca.best_params)
    add("SCM on CCA", "scm", [{"base": ["cca"], "C": grids["scm_c"],
                               "base_params": [{**cca_base, "n_components": k} for k in grids["scm_k_linear"]]}])
    kcca_base = {**KCCA_FIXED, **kcca.best_params}
    add("SCM on kernel CCA", "scm", [{"base": ["kcca"], "C": grids["scm_c"],
                                      "base_params": [{**kcca_base, "n_components": k} for k in grids["scm_k"]]}])
    scca = add("supervised CCA (3-view)", "scca", grids["scca"], {"preprocess": SQRT_IMAGE})
    scca_base = {"preprocess": SQRT_IMAGE, **scca.best_params}
    add("SCM on supervised CCA", "scm", [{"base": ["scca"], "C": grids["scm_c"],
                                          "base_params": [{**scca_base, "n_components": k} for k in grids["scm_k"]]}])
    return rows


def family_grid_size(quick: bool = False) -> int:
    """How many settings :func:`wikipedia_family_rows` cross-validates (for a progress bar)."""
    from ..eval.selection import param_grid

    g = _grids(quick)
    return (len(param_grid(g["cca"])) + len(param_grid(g["kcca"])) + len(param_grid(g["sm"]))
            + len(g["scm_c"]) * (len(g["scm_k_linear"]) + 2 * len(g["scm_k"])) + len(param_grid(g["scca"])))
