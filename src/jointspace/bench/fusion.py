"""Parallel representations for classification, robustness to a noisy modality, and re-ranking
with cross-modal attention.

Classification (accuracy on test): Wikipedia articles (the dataset's 128-d image and 10-d text
features -> one of 10 categories) and OpenClipart drawings (EfficientNet-Lite0 image features and
MiniLM features of the title -> category folder, title-disjoint splits).  Rows: each modality
alone (a logistic regression whose strength is chosen by internal cross-validation, the late
fusion member), early fusion, every late fusion, attention over modalities, gated fusion and
the multimodal Transformer, all at :class:`~jointspace.models.fusion.FusionClassifier`'s
defaults (the epoch, and the weighted fusion's weights, chosen on rows held out of train).

Robustness: at test time one modality is replaced by Gaussian noise with its training mean
and standard deviation; each learnt fusion's accuracy drop and its mean modality weights, also
for early, attention and gated fusion trained with such noise in :data:`NOISE_TRAINING` of the
training samples (``modality_noise``).

Re-ranking (OpenClipart text -> image, relevance by normalised title): the dual encoder of the
openclipart suite (seed 0) retrieves the top :data:`RERANK_N`, a
:class:`~jointspace.models.rerank.CrossAttentionMatcher` trained on nine tenths of the
training titles (epoch chosen on the other tenth) re-orders them; the blend weight of the
standardised scores is chosen on val as ``jointspace fit-matcher --model`` chooses it
(:func:`~jointspace.models.rerank.choose_rerank_weight`; 0: the first stage alone), by
R@1 with each normalised title counted once (``title-macro``): whole collections share one
title, and val's two titles of 50 drawings are 100 of its 433 queries, which decided the
choice alone when every query counted once (plain R@1 is reported beside it).  The added
latency per query is the matcher's time to score the candidates from their stored region
features (and, reported apart, the image tower's time to compute those features).
"""

from __future__ import annotations

import time

import numpy as np

NAME = "fusion"
DESCRIPTION = ("multimodal classification by early, late, attention, gated and Transformer fusion (Wikipedia, "
               "OpenClipart), robustness to a noisy modality, and cross-attention re-ranking on OpenClipart")
FUSION_ROWS = ("early", "mean", "product", "weighted", "stacking", "attention", "gated", "transformer")
NOISY = ("early", "attention", "gated", "transformer")
#: fusions also trained with ``modality_noise`` (one modality replaced by noise in this share of the
#: training samples; a fixed setting, not tuned: the chance of corrupting a sample, as the share
#: ``modality_dropout`` hides)
NOISE_TRAINED = ("early", "attention", "gated")
NOISE_TRAINING = 0.3
#: candidates the cross-attention matcher re-orders; fixed, not tuned (it bounds the added
#: latency per query rather than a quality figure)
RERANK_N = 50
#: ``--quick``: pairs per split (and 20 epochs for the classifiers, 5 and 3 for the re-ranking
#: models): a smoke run fixed by hand, whose numbers are not reported
QUICK_LIMIT = 400


def _quick_sample(n: int) -> np.ndarray:
    """:data:`QUICK_LIMIT` of ``n`` rows drawn at random (seed 0), in their order: a split is
    ordered by category folder, so its first rows would hold only the first few categories."""
    return np.sort(np.random.default_rng(0).choice(n, min(QUICK_LIMIT, n), replace=False))


def _openclipart(quick: bool) -> tuple:
    from ..data.datasets import load_dataset
    from ..towers.base import create_tower
    from ..towers.cache import embed_cached

    img, txt = create_tower("efficientnet-lite0"), create_tower("minilm")
    out = []
    for split in ("train", "test"):
        p = load_dataset("openclipart", split, text="title")
        if quick:
            p = p.subset(_quick_sample(len(p)))
        out.append(p.with_modality("image", embed_cached(img, p["image"], progress=False))
                   .with_modality("text", embed_cached(txt, p["text"], progress=False)))
    return tuple(out)


def _wikipedia(quick: bool) -> tuple:
    from ..data.datasets import load_dataset

    train, test = load_dataset("wikipedia", "train"), load_dataset("wikipedia", "test")
    if quick:
        train = train.subset(np.arange(min(QUICK_LIMIT, len(train))))
    return train, test


def classification(dataset: str, quick: bool = False, progress=None) -> dict:
    """Accuracy rows and noise-robustness rows of one dataset."""
    from ..models.fusion import FusionClassifier, late_member

    train, test = (_wikipedia if dataset == "wikipedia" else _openclipart)(quick)
    y = np.asarray(test.labels)
    items = {m: test[m] for m in ("image", "text")}
    options = {"epochs": 20} if quick else {}
    rows = []
    for m in ("image", "text"):
        classes, codes = np.unique(np.asarray(train.labels), return_inverse=True)
        member = late_member(len(classes)).fit(np.asarray(train[m], np.float32), codes)
        pred = classes[member.predict(np.asarray(test[m], np.float32))]
        rows.append({"method": f"{m} only", "accuracy": float(np.mean(pred == y))})
    noisy_rows = []

    def noise_rows(model, name, clean_accuracy):
        rng = np.random.default_rng(0)   # every model meets the same noise
        _, clean_w = model.predict(items, return_weights=True)
        for m in ("image", "text"):
            x = train[m]
            noisy = dict(items, **{m: (x.mean(0) + x.std(0) * rng.standard_normal(test[m].shape)).astype(np.float32)})
            pred, weights = model.predict(noisy, return_weights=True)
            acc = float(np.mean(pred == y))
            noisy_rows.append({"method": name, "noisy": m, "accuracy": acc, "drop": clean_accuracy - acc,
                               "weights clean": _mean_weights(model.modalities_, clean_w),
                               "weights noisy": _mean_weights(model.modalities_, weights)})

    runs = [(f, f, {}) for f in FUSION_ROWS] + [(f"{f} (noise-trained)", f, {"modality_noise": NOISE_TRAINING})
                                                for f in NOISE_TRAINED]
    for name, fusion, extra in runs:
        t0 = time.perf_counter()
        model = FusionClassifier(fusion=fusion, **extra, **(options if fusion in NOISY else {})).fit(train)
        row = {"method": name, "accuracy": model.score(items, y), "fit_s": time.perf_counter() - t0}
        rows.append(row)
        if fusion in NOISY:
            noise_rows(model, name, row["accuracy"])
        if progress is not None:
            progress()
    return {"dataset": dataset, "split": "test", "n_train": len(train), "n_test": len(test), "rows": rows,
            "noise": noisy_rows}


def _mean_weights(modalities: list, weights: np.ndarray) -> dict:
    """Each modality's mean weight over the rows of ``weights`` (n, M), to three decimals (in
    float64: float32 values rounded to three decimals are written as 0.0689999982714653)."""
    return dict(zip(modalities, np.asarray(weights, np.float64).mean(0).round(3).tolist()))


def _rerank_splits(quick: bool) -> tuple:
    """OpenClipart's splits as ``load_dataset`` gives them and with the towers' features in
    place of the drawings and texts (the same rows): ``({split: Pairs}, {split: Pairs})``.
    ``quick``: :func:`_quick_sample` of each split."""
    from ..data.datasets import load_dataset
    from ._contrastive import openclipart_tower_features

    raws = {}
    for split in ("train", "val", "test"):
        p = load_dataset("openclipart", split)
        raws[split] = p.subset(_quick_sample(len(p))) if quick else p
    return raws, {split: openclipart_tower_features(p) for split, p in raws.items()}


def rerank(quick: bool = False, progress=None, plot_dir=None) -> dict:
    """First-stage and re-ranked text -> image Recall@1 on OpenClipart, weight chosen on val."""
    from ..eval.metrics import ranking_metrics_dense
    from ..models.rerank import CrossAttentionMatcher, _key_codes, choose_rerank_weight
    from ._contrastive import fit_openclipart

    raws, feats = _rerank_splits(quick)
    dual = fit_openclipart(data=feats, seed=0, **({"epochs": 5} if quick else {}))
    matcher = CrossAttentionMatcher(progress=False, **({"epochs": 3} if quick else {}))
    parts, tower_s = {}, 0.0
    for split in ("train", "val", "test"):
        p, raw = feats[split], raws[split]
        t0 = time.perf_counter()
        regions, rmask = matcher.image_parts(raw["image"])
        if split == "test":
            tower_s = (time.perf_counter() - t0) / len(raw)
        _, tokens, tmask = matcher.text_parts(list(raw["text"]))
        parts[split] = (regions, rmask, tokens, tmask, _key_codes(p.relevance_keys("title_key")))
    # early stopping on a tenth of the training titles, so that val chooses only the blend weight
    keys = parts["train"][4]
    held_titles = np.random.default_rng(0).permutation(np.unique(keys))[: max(1, len(np.unique(keys)) // 10)]
    stop = np.isin(keys, held_titles)
    matcher.fit_parts(*[a[~stop] for a in parts["train"]], val=tuple(a[stop] for a in parts["train"]))
    if progress is not None:
        progress()
    maps = alignment_maps(matcher, raws["test"], plot_dir) if plot_dir else []

    def recall_at_1(split):
        p, (regions, rmask, tokens, tmask, keys) = feats[split], parts[split]
        first = dual.encode("text", p["text"]) @ dual.encode("image", p["image"]).T  # (texts, images)
        top = np.argsort(-first, axis=1, kind="stable")[:, :RERANK_N]
        t0 = time.perf_counter()
        cross = matcher.score_candidates(top, regions, rmask, tokens, tmask)
        per_query = (time.perf_counter() - t0) / len(top)
        choice = choose_rerank_weight(top, np.take_along_axis(first, top, 1), cross, keys)
        return {"first": ranking_metrics_dense(first, keys[:, None] == keys[None, :])["R@1"],
                "ms_per_query": 1000 * per_query, "title-macro": choice["recall@1 per key"],
                **choice["recall@1"]}, choice["weight"]

    val, chosen = recall_at_1("val")
    test, _ = recall_at_1("test")
    return {"dataset": "openclipart", "split": "test", "candidates": RERANK_N, "weight_chosen_on_val": chosen,
            "selection": "val R@1, each normalised title once (title-macro)",
            "val": val, "test": test,
            "first R@1": test["first"], "reranked R@1": test[str(chosen)],
            "relative gain": test[str(chosen)] / test["first"] - 1.0,
            "ms_per_query (score 50 stored candidates)": test["ms_per_query"],
            "ms_per_image (region features, image tower)": 1000 * tower_s, "alignment maps": maps}


def alignment_maps(matcher, test, plot_dir, n: int = 2) -> list[str]:
    """Maps of the first ``n`` test drawings whose title has two to four words, each against
    its own title: ``fusion-alignment-<i>.png`` in ``plot_dir``."""
    from pathlib import Path

    from ..viz.attention_map import write_attention_map

    Path(plot_dir).mkdir(parents=True, exist_ok=True)
    paths = []
    for i, title in enumerate(test.metadata["title"]):
        if not 2 <= len(str(title).split()) <= 4:
            continue
        out = matcher.explain(test["image"][i], str(title))
        path = str(Path(plot_dir) / f"fusion-alignment-{len(paths) + 1}.png")
        paths.append(write_attention_map(test["image"][i], out["pieces"], out["maps"], path, score=out["score"]))
        if len(paths) == n:
            break
    return paths


def run(progress=None, quick: bool = False, rerank_rows: bool = True, plot_dir=None) -> dict:
    """``{"suite", "quick", "classification": {dataset: report}, "rerank": report}``."""
    out = {"suite": NAME, "quick": bool(quick),
           "classification": {d: classification(d, quick, progress) for d in ("wikipedia", "openclipart")}}
    if rerank_rows:
        out["rerank"] = rerank(quick, progress, plot_dir)
    return out


def show(report: dict) -> None:
    """Print the tables."""
    from ..cli._common import print_table

    for name, rep in report["classification"].items():
        print_table(f"{name}: test accuracy ({rep['n_train']} train, {rep['n_test']} test)",
                    ["method", "accuracy"], [[r["method"], f"{r['accuracy']:.3f}"] for r in rep["rows"]])
        print_table(f"{name}: one modality replaced by noise at test time",
                    ["method", "noisy", "accuracy", "drop", "mean weights (clean)", "mean weights (noisy)"],
                    [[r["method"], r["noisy"], f"{r['accuracy']:.3f}", f"{r['drop']:+.3f}",
                      ", ".join(f"{k} {v:.2f}" for k, v in r["weights clean"].items()),
                      ", ".join(f"{k} {v:.2f}" for k, v in r["weights noisy"].items())] for r in rep["noise"]])
    if "rerank" in report:
        r = report["rerank"]
        weights = list(r["test"].get("title-macro", {}))
        rows = []
        for s in ("val", "test"):
            per_query, per_title = r[s], r[s].get("title-macro", {})
            rows.append([s, "every query", f"{per_query['first']:.3f}"] + [f"{per_query[w]:.3f}" for w in weights])
            rows.append([s, "each title once", ""] + [f"{per_title.get(w, float('nan')):.3f}" for w in weights])
        print_table(f"openclipart text -> image, re-ranking the top {r['candidates']} (weight {r['weight_chosen_on_val']}"
                    f" chosen on val, each title once)", ["split", "R@1", "first stage"] + [f"w={w}" for w in weights],
                    rows)
