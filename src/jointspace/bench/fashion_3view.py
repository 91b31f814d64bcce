"""Multiset CCA on a three-view Fashion-MNIST set (image, text, audio) against pairwise CCA.

The set: each Fashion-MNIST image (pixels / 255) is paired with a sentence about its class
(one of several templates, embedded by the frozen MiniLM tower) and a spoken clip of its class
word (``spoken-words``, synthesised by espeak-ng, MFCC statistics), drawn at random within the
class. Test clips come from accents never heard in training. Relevant = same class; mAP over
the full ranking of the test gallery, for all six directions
(:func:`jointspace.eval.retrieval.evaluate_retrieval`).

Rows: multiset CCA (SUMCOR and MAXVAR, one model for all three views) and pairwise CCA (one
regularised CCA per pair of modalities, each evaluated on its own two directions).  Each
method's ridge is chosen on a validation part of the training pairs whose clips come from the
voices of spoken-words' val split (unheard in training, as the test voices are); the number of
components and the preprocessing are fixed in advance (see the constants below for why).
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


def _clips_of(labels, audio_split: str, rng) -> np.ndarray:
    """One clip of the ``audio_split`` of spoken-words per label, drawn at random within its
    class: (n, d) MFCC statistics."""
    from ..data.datasets.fashion_mnist import CLASS_WORDS

    audio, audio_labels = _audio_table(audio_split, CLASS_WORDS)
    return audio[np.array([rng.choice(np.flatnonzero(audio_labels == c)) for c in labels])]


def three_view_pairs(split: str, n: int, text_table, seed: int = 0):
    """``Pairs`` with image (n, 784), text (n, 384) and audio (n, d) arrays and class labels."""
    from ..data.datasets import load_dataset
    from ..data.pairs import Pairs

    rng = np.random.default_rng(seed)
    fm = load_dataset("fashion-mnist", split=split, limit=n)
    labels = np.asarray(fm.labels)
    text = text_table[labels, rng.integers(0, len(TEMPLATES), size=labels.size)]
    audio = _clips_of(labels, split, rng)
    image = np.asarray(fm["image"], dtype=np.float32).reshape(labels.size, -1) / 255.0
    return Pairs({"image": image, "text": text.astype(np.float32), "audio": audio}, labels=labels,
                 name="fashion-mnist-3view")


def validation_split(train, seed: int = 0) -> tuple:
    """The fit part and the validation part (:data:`VAL_FRACTION`) of the training pairs.

    The validation part speaks with the voices of spoken-words' val split, unheard in training
    as the test voices are: with training clips (25 per class, each one the clip of about 16 of
    the 4,000 fit pairs) the ridge would be chosen for voices the model knows.
    """
    order = np.random.default_rng(seed).permutation(len(train))
    n_val = int(round(VAL_FRACTION * len(train)))
    fit_part, val_part = train.subset(order[n_val:]), train.subset(order[:n_val])
    rng = np.random.default_rng(seed + 2)
    return fit_part, val_part.with_modality("audio", _clips_of(np.asarray(val_part.labels), "val", rng))


#: CCA components: fixed at C - 1 = 9 for the 10 classes, not tuned.  The image, the sentence
#: and the clip of a pair share only their class (template and voice are drawn independently),
#: so each cross-covariance is a between-class one, of rank at most C - 1: 9 canonical pairs
#: carry all the shared signal.
N_COMPONENTS = 9
#: ridge candidates; each method's ridge is chosen on a validation part of the training pairs
#: (:data:`VAL_FRACTION`, their clips from the val voices; mean mAP over its directions), then
#: the model is refitted on all the training pairs; the test split is read once, for the
#: reported numbers
REG_GRID = (1e-3, 1e-2, 0.1, 1.0)
#: ``--quick``: two of :data:`REG_GRID`'s values, still chosen on the validation part
QUICK_REG_GRID = (1e-2, 0.1)
#: share of the training pairs held out to choose the ridge
VAL_FRACTION = 0.2
#: preprocessing: fixed by hand, not tuned (PCA to 100 of the 784 pixels and to 60 of MiniLM's
#: 384 dimensions, standardised MFCC statistics), so that every covariance is well estimated
#: from a few thousand pairs
PREPROCESS = {"image": "pca:100", "text": "pca:60", "audio": "standard"}


def _choose_reg(fit, train, val, directions, grid) -> tuple[float, dict]:
    """The ridge of ``grid`` with the best mean validation mAP over ``directions`` (ties: the
    first), and every candidate's score."""
    from ..eval.retrieval import evaluate_retrieval

    scores = {}
    for reg in grid:
        res = evaluate_retrieval(fit(train, reg), val, directions=directions)
        scores[reg] = float(np.mean([res[f"{d}/mAP"] for d in directions]))
    return max(grid, key=lambda r: scores[r]), scores


def fashion_three_view_rows(n_train: int = 5000, n_test: int = 2000, n_components: int = N_COMPONENTS,
                            reg: float | None = None, reg_grid=REG_GRID, seed: int = 0, progress=None) -> list[dict]:
    """Six-direction mAP of multiset CCA (SUMCOR, MAXVAR) and of pairwise CCA.

    Parameters
    ----------
    reg : float, optional
        The ridge of every model; by default each method chooses its own from ``reg_grid`` on a
        validation part of the training pairs (:data:`VAL_FRACTION`).

    Returns
    -------
    rows : list of dict
        ``{"method", "settings", "<q>-><t>/mAP" for the six directions, "mean/mAP"}``; the
        pairwise-CCA row combines three two-view models (each fills its own two directions,
        each with its own ridge).
    """
    from ..data.datasets.fashion_mnist import CLASS_WORDS
    from ..eval.retrieval import evaluate_retrieval
    from ..models.base import create_model

    table = _text_table(CLASS_WORDS)
    train = three_view_pairs("train", n_train, table, seed)
    test = three_view_pairs("test", n_test, table, seed + 1)
    fit_part, val_part = validation_split(train, seed)
    grid = (reg,) if reg is not None else tuple(reg_grid)
    base = f"n_components={n_components}, preprocess={PREPROCESS}, n_train={n_train}, n_test={n_test}"
    rows = []
    for name, label in (("mcca", "multiset CCA (SUMCOR), one model"), ("gcca", "generalised CCA (MAXVAR), one model")):
        def fit(pairs, r, name=name):
            return create_model(name, n_components=n_components, reg=r, preprocess=PREPROCESS, weight=1.0).fit(pairs)

        chosen, _ = _choose_reg(fit, fit_part, val_part, DIRECTIONS, grid)
        res = evaluate_retrieval(fit(train, chosen), test, directions=DIRECTIONS)
        rows.append({"method": label, "settings": f"reg={chosen} (chosen on val), {base}",
                     **{f"{d}/mAP": res[f"{d}/mAP"] for d in DIRECTIONS}})
        if progress is not None:
            progress(label)
    pair_row, regs = {}, []
    for a, b in (("image", "text"), ("image", "audio"), ("text", "audio")):
        directions = [f"{a}->{b}", f"{b}->{a}"]

        def fit(pairs, r, a=a, b=b):
            pre = {a: PREPROCESS[a], b: PREPROCESS[b]}
            return create_model("rcca", n_components=n_components, reg=r, preprocess=pre, weight=1.0,
                                modalities=(a, b)).fit(pairs.select([a, b]))

        chosen, _ = _choose_reg(fit, fit_part, val_part.select([a, b]), directions, grid)
        res = evaluate_retrieval(fit(train, chosen), test.select([a, b]), directions=directions)
        pair_row.update({f"{d}/mAP": res[f"{d}/mAP"] for d in directions})
        regs.append(f"{a}+{b} reg={chosen}")
    rows.append({"method": "pairwise CCA (three two-view models)",
                 "settings": f"{', '.join(regs)} (chosen on val), {base}",
                 **{f"{d}/mAP": pair_row[f"{d}/mAP"] for d in DIRECTIONS}})
    for row in rows:
        row["mean/mAP"] = float(np.mean([row[f"{d}/mAP"] for d in DIRECTIONS]))
    return rows


def run(progress=None, quick: bool = False, **options) -> dict:
    from ..eval.report import make_report

    n_train, n_test = (1000, 500) if quick else (5000, 2000)
    rows = fashion_three_view_rows(n_train, n_test, reg_grid=QUICK_REG_GRID if quick else REG_GRID, progress=progress)
    return make_report("fashion-mnist-3view", "test", rows)
