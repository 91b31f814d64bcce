"""Multiset CCA on a three-view Fashion-MNIST set (image, text, audio) against pairwise CCA.

The set: each Fashion-MNIST image (pixels / 255) is paired with a sentence about its class
(one of several templates, embedded by the frozen MiniLM tower) and a spoken clip of its class
word (``spoken-words``, synthesised by espeak-ng, MFCC statistics), drawn at random within the
class. Test clips come from accents never heard in training. Relevant = same class; mAP over
the full ranking of the test gallery, for all six directions
(:func:`jointspace.eval.retrieval.evaluate_retrieval`).

Rows: multiset CCA (SUMCOR and MAXVAR, one model for all three views) and pairwise CCA (one
regularised CCA per pair of modalities, each evaluated on its own two directions).
"""

from __future__ import annotations

import numpy as np

NAME = "fashion-3view"
DESCRIPTION = "Fashion-MNIST image + text + spoken class word: multiset CCA vs pairwise CCA, six directions"

TEMPLATES = ("a photo of a {}", "a picture of a {}", "an image of the {}", "a {} on a white background",
             "a close-up photo of a {}", "this is a {}", "a black and white photo of a {}", "a small {}")
DIRECTIONS = ["image->text", "text->image", "image->audio", "audio->image", "text->audio", "audio->text"]


def _text_table(words):
    from ..towers.base import create_tower

    sentences = [t.format(w) for w in words for t in TEMPLATES]
    vecs = create_tower("minilm").embed(sentences, progress=False)
    return vecs.reshape(len(words), len(TEMPLATES), -1)


def _audio_table(split, words):
    from ..data.datasets import load_dataset
    from ..towers.base import create_tower

    clips = load_dataset("spoken-words", split=split, words=list(words), settings_per_accent=5)
    feats = create_tower("mfcc").embed(clips["audio"], progress=False)
    return feats, np.asarray(clips.labels)


def three_view_pairs(split: str, n: int, text_table, seed: int = 0):
    """``Pairs`` with image (n, 784), text (n, 384) and audio (n, d) arrays and class labels."""
    from ..data.datasets import load_dataset
    from ..data.datasets.fashion_mnist import CLASS_WORDS
    from ..data.pairs import Pairs

    rng = np.random.default_rng(seed)
    fm = load_dataset("fashion-mnist", split=split, limit=n)
    labels = np.asarray(fm.labels)
    audio, audio_labels = _audio_table(split, CLASS_WORDS)
    text = text_table[labels, rng.integers(0, len(TEMPLATES), size=labels.size)]
    pick = np.array([rng.choice(np.flatnonzero(audio_labels == c)) for c in labels])
    image = np.asarray(fm["image"], dtype=np.float32).reshape(labels.size, -1) / 255.0
    return Pairs({"image": image, "text": text.astype(np.float32), "audio": audio[pick]}, labels=labels,
                 name="fashion-mnist-3view")


def fashion_three_view_rows(n_train: int = 5000, n_test: int = 2000, n_components: int = 9, reg: float = 0.1,
                            seed: int = 0, progress=None) -> list[dict]:
    """Six-direction mAP of multiset CCA (SUMCOR, MAXVAR) and of pairwise CCA.

    Returns
    -------
    rows : list of dict
        ``{"method", "settings", "<q>-><t>/mAP" for the six directions, "mean/mAP"}``; the
        pairwise-CCA row combines three two-view models (each fills its own two directions).
    """
    from ..data.datasets.fashion_mnist import CLASS_WORDS
    from ..eval.retrieval import evaluate_retrieval
    from ..models.base import create_model

    table = _text_table(CLASS_WORDS)
    train = three_view_pairs("train", n_train, table, seed)
    test = three_view_pairs("test", n_test, table, seed + 1)
    pre = {"image": "pca:100", "text": "pca:60", "audio": "standard"}
    settings = f"n_components={n_components}, reg={reg}, preprocess={pre}, n_train={n_train}, n_test={n_test}"
    rows = []
    for name, label in (("mcca", "multiset CCA (SUMCOR), one model"), ("gcca", "generalised CCA (MAXVAR), one model")):
        model = create_model(name, n_components=n_components, reg=reg, preprocess=pre, weight=1.0).fit(train)
        res = evaluate_retrieval(model, test, directions=DIRECTIONS)
        rows.append({"method": label, "settings": settings, **{f"{d}/mAP": res[f"{d}/mAP"] for d in DIRECTIONS}})
        if progress is not None:
            progress(label)
    pair_row = {"method": "pairwise CCA (three two-view models)", "settings": settings}
    for a, b in (("image", "text"), ("image", "audio"), ("text", "audio")):
        model = create_model("rcca", n_components=n_components, reg=reg, preprocess={a: pre[a], b: pre[b]},
                             weight=1.0, modalities=(a, b)).fit(train.select([a, b]))
        res = evaluate_retrieval(model, test.select([a, b]), directions=[f"{a}->{b}", f"{b}->{a}"])
        pair_row[f"{a}->{b}/mAP"], pair_row[f"{b}->{a}/mAP"] = res[f"{a}->{b}/mAP"], res[f"{b}->{a}/mAP"]
    rows.append({"method": pair_row["method"], "settings": settings,
                 **{f"{d}/mAP": pair_row[f"{d}/mAP"] for d in DIRECTIONS}})
    for row in rows:
        row["mean/mAP"] = float(np.mean([row[f"{d}/mAP"] for d in DIRECTIONS]))
    return rows


def run(progress=None, quick: bool = False, **options) -> dict:
    from ..eval.report import make_report

    n_train, n_test = (1000, 500) if quick else (5000, 2000)
    return make_report("fashion-mnist-3view", "test", fashion_three_view_rows(n_train, n_test, progress=progress))
