"""OpenClipart text <-> image retrieval over frozen pretrained towers.

Protocol: the dataset's title-disjoint train / val / test splits; the text view is title +
keywords; on the test split every drawing whose normalised title equals the query's is
relevant (``relevance="title_key"``); pair-identity figures are added under the metric names
``pair-R@1``, ``pair-R@10`` and ``pair-mAP``.  Head settings (PCA size, components, component
weighting, ridge) are chosen on the validation split only.

Chosen on the validation split at every run: the CCA heads' settings, kernel CCA's settings,
the early-stopping epoch of each contrastive run, and the variant of the ensemble rows (the
contrastive variant with the best validation Recall@10).  Fixed in advance, each with its
provenance beside it in :mod:`jointspace.bench._contrastive`: the multi-level image blocks,
the contrastive training settings (feature dropout 0.5 among them) and CSLS's k; below, the
seeds and ensemble sizes (how many runs are averaged, not a setting of a model).

Rows: random ranking; CCA, regularised CCA and kernel CCA over EfficientNet-Lite0 + MiniLM features;
contrastive dual encoders (CLIP loss) trained on the same cached tower features
(:func:`jointspace.bench._contrastive.openclipart_contrastive_rows`).  The last contrastive row
also reads averages of three intermediate EfficientNet blocks; regularised CCA over those
same features is reported beside it, so the comparison stays like for like.  Seed ensembles
of that row follow, ranked by cosine and by CSLS hubness correction
(:mod:`jointspace.eval.hubness`, bank: the training split); regularised CCA is also reported
with CSLS, so the correction is credited to neither family alone.

Refit rows: once val has chosen every setting, the same models are fitted again on train +
val together (ensemble members run the whole schedule and keep their last weights, as no
held-out split is left to stop on; the CSLS bank is train + val).  Regularised CCA gets the
same treatment, so each family is compared under the same protocol.
"""

from __future__ import annotations

import numpy as np

from ..eval.search_spaces import KCCA_WIDE_FIXED, KCCA_WIDE_GRID, KCCA_WIDE_PCA

NAME = "openclipart"
DESCRIPTION = "OpenClipart drawings <-> titles + keywords over frozen towers: CCA, kernel CCA and contrastive rows"

TOWERS = {"image": "efficientnet-lite0", "text": "minilm"}
#: contrastive rows are the mean of one training run per seed (a single run moves by a few
#: points); fixed, not tuned: how many runs are averaged
SEEDS = (0, 1, 2, 3, 4)
#: the ensemble rows: two ensembles of 8 members (seeds 0-7 and 8-15), averaged; fixed, not
#: tuned on any split
ENSEMBLE_MEMBERS = 8
ENSEMBLE_STARTS = (0, 8)


def embedding_rows(label: str, z: dict, test, settings: str = "", bank: dict | None = None) -> dict:
    """A report row from test embeddings ``{"image": (n, d), "text": (n, d)}`` (ranked by CSLS
    against ``bank``, the training split's embeddings, when it is given)."""
    from ._contrastive import openclipart_test_metrics

    row = {"method": label, **openclipart_test_metrics(z, test, bank)}
    if settings:
        row["settings"] = settings
    return row


def cca_rows(train, val, test, progress=None) -> list[dict]:
    """CCA and regularised CCA over the frozen towers, settings chosen on ``val``; regularised
    CCA also over the multi-level image features the last contrastive row uses, and both
    regularised CCA models refitted on train + val with the settings val chose (the
    counterparts of the refitted ensemble rows)."""
    from ..data.pairs import concat_pairs
    from ..models.towered import fit_with_towers
    from ._contrastive import MULTILEVEL_BLOCKS

    rows, refits = [], []
    multilevel = {"image": {"pool_blocks": list(MULTILEVEL_BLOCKS)}}
    for label, head, tower_params in (("CCA", "cca", None), ("regularised CCA", "rcca", None),
                                      ("regularised CCA (multi-level image features)", "rcca", multilevel)):
        model, report = fit_with_towers(train, TOWERS, head=head, val_pairs=val, relevance="title_key",
                                        tower_params=tower_params, progress=False)
        best = report["best"]["head_params"]
        settings = ", ".join(f"{k}={v}" for k, v in best.items() if k != "modalities")
        rows += _cca_model_rows(label, model, train, test, settings, csls=head == "rcca")
        if head == "rcca":
            trainval = concat_pairs([train, val])
            refitted, _ = fit_with_towers(trainval, TOWERS, head=head, head_params=best,
                                          tower_params=tower_params, progress=False)
            refits += _cca_model_rows(f"{label}, refit on train+val", refitted, trainval, test, settings, csls=True)
        if progress is not None:
            progress()
    return rows + refits


def _cca_model_rows(label: str, model, fitted_on, test, settings: str, csls: bool) -> list[dict]:
    """The row of one fitted model, and (``csls``) the same ranked by CSLS with the pairs it
    was fitted on as the bank, the hubness correction the ensemble's CSLS row gets."""
    from ._contrastive import CSLS_K

    z = {m: model.encode(m, test[m]) for m in ("image", "text")}
    rows = [embedding_rows(label, z, test, settings)]
    if csls:
        bank = {m: model.encode(m, fitted_on[m]) for m in ("image", "text")}
        rows.append(embedding_rows(f"{label} + CSLS (k={CSLS_K})", z, test, settings, bank=bank))
    return rows


#: Kernel CCA settings tried on the validation split (RBF kernels, Nystroem features): the
#: library's search space for kernel CCA over wide (tower) features,
#: :mod:`jointspace.eval.search_spaces`.
KCCA_GRID = {k: list(v) for k, v in KCCA_WIDE_GRID.items()}
KCCA_FIXED = {**KCCA_WIDE_FIXED, "preprocess": {m: f"pca:{KCCA_WIDE_PCA}" for m in ("image", "text")},
              "modalities": ["image", "text"]}


def kernel_row(data: dict, progress=None) -> dict:
    """Kernel CCA over the cached tower features; settings chosen by validation Recall@10."""
    from ..eval.retrieval import evaluate_retrieval
    from ..eval.selection import param_grid
    from ..models.base import create_model
    from ._contrastive import DIRECTIONS

    best = None
    for params in param_grid(KCCA_GRID):
        model = create_model("kcca", **KCCA_FIXED, **params).fit(data["train"])
        res = evaluate_retrieval(model, data["val"], relevance="title_key", directions=list(DIRECTIONS))
        score = float(np.mean([res[f"{d}/R@10"] for d in DIRECTIONS]))
        if best is None or score > best[0]:
            best = (score, params, model)
        if progress is not None:
            progress()
    score, params, model = best
    z = {m: model.encode(m, data["test"][m]) for m in ("image", "text")}
    settings = ", ".join(f"{k}={v}" for k, v in {**params, "kernel": "rbf", "n_features": 1500}.items())
    return embedding_rows("kernel CCA", z, data["test"], settings)


def run(progress=None, quick: bool = False, **options) -> dict:
    from ..data.datasets import load_dataset
    from ..eval.report import make_report

    splits = {s: load_dataset("openclipart", s) for s in ("train", "val", "test")}
    train, val, test = splits["train"], splits["val"], splits["test"]
    rng = np.random.default_rng(0)
    rows = [embedding_rows("random", {m: rng.normal(size=(len(test), 16)).astype(np.float32)
                                      for m in ("image", "text")}, test)]
    rows += cca_rows(train, val, test, progress=progress)
    from ._contrastive import choose_variant, openclipart_contrastive_rows, openclipart_ensemble_rows
    from ._contrastive import openclipart_features

    features = openclipart_features()
    rows.append(kernel_row(features, progress=progress))
    variants = ["clip (MLP heads)"] if quick else None
    contrastive = openclipart_contrastive_rows(variants=variants, data=features, seeds=(0,) if quick else SEEDS)
    rows += contrastive
    if not quick:
        best = choose_variant(contrastive)   # on validation Recall@10, never on test
        rows += openclipart_ensemble_rows(best, n_members=ENSEMBLE_MEMBERS, starts=ENSEMBLE_STARTS)
        rows += openclipart_ensemble_rows(best, n_members=ENSEMBLE_MEMBERS, starts=ENSEMBLE_STARTS, refit=True)
    return make_report("openclipart", "test", rows)
