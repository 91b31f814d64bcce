"""Benchmark rows of the CCA family on the Wikipedia image-text set.

Protocol of Rasiwasia et al. (ACM MM 2010): every test image queries all 693 test texts and
vice versa, relevant = same category, mAP over the full ranking, computed by
:func:`jointspace.eval.retrieval.evaluate_retrieval`. Every setting (components, ridge,
kernel, classifier strength, preprocessing) is chosen by 3-fold cross-validated retrieval
mAP on the training split only, over the library's search spaces
(:mod:`jointspace.eval.search_spaces`, :func:`~jointspace.eval.selection.choose_settings`,
the search ``fit`` runs when no settings are given) with this dataset's Hellinger map on
the image histograms given; the test split is used once, for the reported numbers.
"""

from __future__ import annotations

import json

from ..eval.search_spaces import KCCA_FIXED, SCM_C, SCM_CCA_SPACE, resolve_space
from ..eval.selection import choose_settings, scm_base_candidates, select_by_cv

#: Hellinger map for the bag-of-visual-words histograms (a fixed, standard choice for this
#: dataset's image view; a user's ``fit`` with no settings tries it among others).
SQRT_IMAGE = {"image": "sqrt"}

#: ``--quick``: one or two values per setting (smoke runs), replacing the library's lists.  The
#: values were picked by hand, mostly among those the full search chose by cross-validation on
#: the training split (``docs/reports/bench-wikipedia.json``: CCA 9 components, kernel CCA reg
#: 0.003, SM C=10, supervised CCA 9 components and weight 4.0; CCA's 7 components is kept so that
#: a choice is still made, while kernel CCA's 9 components and RBF kernel differ from the full
#: run's 7 components and RBF + polynomial kernels, and SCM's C=10 from its 1.0); nothing was
#: picked on test, a quick run still chooses among them by cross-validation on train, and its
#: numbers are not reported
QUICK = {
    "cca": {"n_components": [7, 9], "weight": [1.0], "preprocess": [SQRT_IMAGE]},
    "kcca": {"n_components": [9], "reg": [0.003], "kernel": ["rbf"]},
    "sm": {"C": [10.0]},
    "scca": {"n_components": [9], "weight": [4.0]},
    "scm_c": [10.0],
    "scm_k": [9],
    "scm_k_linear": [9],
}


def _searches(quick: bool) -> dict:
    """Per search: (model, given, candidates, space) over the library's spaces
    (:mod:`jointspace.eval.search_spaces`); ``quick`` narrows them."""
    q = QUICK if quick else {}
    return {
        # linear CCA with the Hellinger option, as the base of SCM (its own row is in bench/wikipedia.py)
        "cca": ("cca", {}, q.get("cca", {"preprocess": [None, SQRT_IMAGE]}), SCM_CCA_SPACE),
        "kcca": ("kcca", {"preprocess": SQRT_IMAGE}, q.get("kcca"), None),
        "sm": ("sm", {"preprocess": SQRT_IMAGE}, q.get("sm"), None),
        "scca": ("scca", {"preprocess": SQRT_IMAGE}, q.get("scca"), None),
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
    searches = _searches(quick)
    q = QUICK if quick else {}
    rows = []

    def report(method, res):
        row = {"method": method, "settings": json.dumps(res.settings, sort_keys=True, default=str),
               **evaluate_retrieval(res.model, test, directions=["image->text", "text->image"]),
               "cv/mAP": res.best_score}
        rows.append(row)
        return res

    def choose(key, show=None):
        name, given, candidates, space = searches[key]
        res = choose_settings(name, train, given=given, candidates=candidates, space=space, n_folds=n_splits,
                              seed=seed, refit=show is not None, score_alone=True, progress=progress)
        return report(show, res) if show else res

    def scm(method, base, base_settings, components):
        grid = [{"base": [base], "C": list(q.get("scm_c", SCM_C)),
                 "base_params": scm_base_candidates(base, base_settings, train, n_folds=n_splits,
                                                    components=components)}]
        report(method, select_by_cv("scm", grid, train, n_folds=n_splits, seed=seed, progress=progress))

    cca = choose("cca")
    kcca = choose("kcca", "kernel CCA")
    choose("sm", "SM")
    scm("SCM on CCA", "cca", dict(cca.best_params), q.get("scm_k_linear"))
    scm("SCM on kernel CCA", "kcca", kcca.settings, q.get("scm_k"))
    scca = choose("scca", "supervised CCA (3-view)")
    scm("SCM on supervised CCA", "scca", scca.settings, q.get("scm_k"))
    return rows


def family_grid_size(quick: bool = False) -> int:
    """How many settings :func:`wikipedia_family_rows` cross-validates (for a progress bar)."""
    from ..data.datasets import load_dataset

    train = load_dataset("wikipedia", split="train")
    total = 0
    for name, given, candidates, space in _searches(quick).values():
        total += resolve_space(name, train, given, space=space, candidates=candidates, n_folds=3).n_settings
    n_c = len(QUICK["scm_c"] if quick else SCM_C)
    sizes = (QUICK["scm_k_linear"], QUICK["scm_k"], QUICK["scm_k"]) if quick else [
        scm_base_candidates(base, settings, train, n_folds=3)
        for base, settings in (("cca", {}), ("kcca", dict(KCCA_FIXED)), ("scca", {}))]
    return total + n_c * sum(len(s) for s in sizes)
