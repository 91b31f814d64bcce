"""The Wikipedia benchmark: random, the CCA family and semantic matching, settings chosen by CV on train.

Protocol of Rasiwasia et al. (ACM MM 2010): every test image queries all test texts and every
test text all test images; an item is relevant when it shares the query's category; mAP over
the full ranking.
"""

from __future__ import annotations

import numpy as np

NAME = "wikipedia"
DESCRIPTION = "Wikipedia image-text benchmark (Rasiwasia et al. 2010): CCA family rows, mAP both ways"

#: The linear rows.  Their settings are chosen by 5-fold cross-validation on the training split
#: (never on test) over the library's search spaces (:mod:`jointspace.eval.search_spaces`), as
#: ``fit`` does when no settings are given: the number of components and the component weighting
#: are read off one fit per ridge value.
LINEAR = ("cca", "rcca", "pls")
LABELS = {"cca": "CCA", "rcca": "regularised CCA", "pls": "PLS"}


def random_row(test, seed: int = 0) -> dict:
    """Random ranking: random embeddings for both modalities, same evaluation."""
    from ..eval.retrieval import evaluate_embeddings

    rng = np.random.default_rng(seed)
    emb = {m: rng.normal(size=(len(test), 16)).astype(np.float32) for m in test.modalities}
    return {"method": "random", **evaluate_embeddings(emb, test.relevance_keys("label"))}


def model_rows(train, test, models=LINEAR, n_folds: int = 5, progress=None) -> list[dict]:
    """One row per model: settings chosen by CV on ``train``, then fitted on all of it."""
    from ..eval.retrieval import evaluate_retrieval
    from ..eval.selection import choose_settings

    rows = []
    for name in models:
        res = choose_settings(name, train, n_folds=n_folds, progress=progress)
        settings = ", ".join(f"{k}={v}" for k, v in res.best_params.items())
        rows.append({"method": LABELS[name], "settings": settings, **evaluate_retrieval(res.model, test),
                     "cv/mAP": res.best_score})
    return rows


def run(progress=None, quick: bool = False, linear_only: bool = False, **options) -> dict:
    """Rows: random, CCA, regularised CCA, PLS, then kernel CCA and semantic matching.

    ``quick`` uses one setting per method for the kernel and semantic rows; ``linear_only``
    stops after the closed-form linear rows.
    """
    from ..data.datasets import load_dataset
    from ..eval.report import make_report

    data = load_dataset("wikipedia")
    rows = [random_row(data["test"])] + model_rows(data["train"], data["test"], progress=progress)
    if not linear_only:
        from ._wikipedia_family import wikipedia_family_rows

        rows += wikipedia_family_rows(quick=quick, progress=progress)
    return make_report("wikipedia", "test", rows)


def grid_size(quick: bool = False, linear_only: bool = False) -> int:
    """How many settings ``run`` cross-validates (for a progress bar)."""
    from ..data.datasets import load_dataset
    from ..eval.search_spaces import resolve_space

    train = load_dataset("wikipedia", "train")
    total = sum(resolve_space(name, train, n_folds=5).n_settings for name in LINEAR)
    if not linear_only:
        from ._wikipedia_family import family_grid_size

        total += family_grid_size(quick)
    return total
