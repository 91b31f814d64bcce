"""Evaluating generative joint models: cross-modal coherence, latent probes, the bound.

Coherence (Shi et al. 2019) asks whether a generated item keeps the class of what it was
generated from.  Each modality gets an *independent* classifier, trained on real items of that
modality alone (never on generated ones, never on the model's latents) and reported with its
own accuracy on real test items:

- conditional coherence ``A->B``: generate B from A's test items, classify, compare with
  the true class; from one given modality and from two (``A+C->B``);
- joint coherence: draw latents from the prior, generate every modality, and count the draws
  whose classifiers all name the same class.

The classifiers read items in the form the model generates them
(:meth:`~jointspace.models._generative.GenerativeModel.observed`): images as intensities in
[0, 1], texts as strings, other modalities as feature vectors of a fixed tower.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from ..errors import InputError

#: the caption of a generated text of no words in :func:`generation_grid`
EMPTY_TEXT = "(no words)"


class ModalityClassifier:
    """A classifier of real items of one modality (scikit-learn), trained apart from any model.

    Parameters
    ----------
    kind : {"pixels", "tokens", "features"}
        Images (n, H, W[, C]) in [0, 1]; texts; feature vectors (n, d).
    """

    def __init__(self, kind: str):
        if kind not in ("pixels", "tokens", "features"):
            raise InputError(f"kind: expected pixels, tokens or features, got {kind!r}")
        self.kind = kind

    def _pipeline(self, labels: np.ndarray):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.kind == "tokens":
            from sklearn.feature_extraction.text import CountVectorizer

            from ..models._codecs import tokenize

            return make_pipeline(CountVectorizer(tokenizer=tokenize, token_pattern=None, lowercase=False),
                                 LogisticRegression(max_iter=2000))
        if self.kind == "pixels":
            from sklearn.neural_network import MLPClassifier

            # early stopping holds out a stratified tenth: at least one item of every class,
            # two in all, and two of each class so that one can be held out
            counts = np.unique(labels, return_counts=True)[1]
            held_out = math.ceil(0.1 * len(labels))
            early = bool(held_out >= max(2, len(counts)) and counts.min() >= 2)
            return MLPClassifier(hidden_layer_sizes=(256,), max_iter=30, early_stopping=early, random_state=0)
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))

    def _x(self, items):
        if self.kind == "tokens":
            return list(items)
        arr = np.asarray(items, dtype=np.float32)
        return arr.reshape(len(arr), -1)

    def fit(self, items, labels) -> "ModalityClassifier":
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            # the image MLP stops at its epoch budget (30, with early stopping on a held-out tenth)
            warnings.simplefilter("ignore", ConvergenceWarning)
            labels = np.asarray(labels)
            self.model_ = self._pipeline(labels).fit(self._x(items), labels)
        return self

    def predict(self, items) -> np.ndarray:
        return self.model_.predict(self._x(items))

    def accuracy(self, items, labels) -> float:
        return float(np.mean(self.predict(items) == np.asarray(labels)))


def _check_fitted(model) -> None:
    """NotFittedError for a model not fitted yet (its modalities are read first of all)."""
    check = getattr(model, "_check_fitted", None)
    if check is not None:
        check()


def _check_modalities(model, pairs, name: str) -> None:
    """InputError naming ``name`` when ``pairs`` lack a modality of ``model``."""
    have = tuple(getattr(pairs, "modalities", ()))
    missing = [m for m in model.modalities_ if m not in have]
    if missing:
        raise InputError(f"{name}: expected pairs of the model's modalities {', '.join(model.modalities_)}; "
                         f"got {', '.join(have) or 'none'}, no {', '.join(missing)}")


def _class_labels(pairs, name: str, min_classes: int = 1) -> np.ndarray:
    """The class label of each pair of ``pairs`` (n,), or InputError naming ``name``: scores
    compared with absent labels would all read 0, and a classifier cannot learn from fewer
    than ``min_classes`` classes."""
    labels = getattr(pairs, "labels", None)
    if labels is None or np.ndim(labels) != 1:
        raise InputError(f"{name}: expected pairs with one class label each, got "
                         + ("no labels" if labels is None else f"labels of shape {np.shape(labels)}"))
    labels = np.asarray(labels)
    found = np.unique(labels)
    if len(found) < min_classes:
        raise InputError(f"{name}: expected labels of at least {min_classes} classes to train a classifier on, got "
                         f"{len(found)} ({', '.join(map(repr, found[:3].tolist()))})")
    return labels


def _train_subset(train, limit, seed):
    """``train``, or ``limit`` of its pairs drawn at random (``seed``) when it has more; InputError
    naming ``limit`` or ``seed`` for a bad value, or a draw left with one class to learn."""
    from .._validation import check_int

    if limit is not None:
        limit = check_int(limit, "limit", low=2)
    seed = check_int(seed, "seed", low=0, high=2**32 - 1)
    if limit is None or len(train) <= limit:
        return train
    sub = train.subset(np.sort(np.random.default_rng(seed).choice(len(train), limit, replace=False)))
    _class_labels(sub, f"limit: the {limit} pairs drawn from train", min_classes=2)
    return sub


def train_classifiers(model, train, test=None, *, limit: int | None = 20000, seed: int = 0) -> tuple[dict, dict]:
    """One :class:`ModalityClassifier` per modality of ``model``, fitted on real ``train`` items.

    Parameters
    ----------
    model : GenerativeModel
        Fitted; only its item forms (codecs) are used, not its weights.
    train, test : Pairs
        Labelled pairs; ``test`` gives each classifier's own accuracy.
    limit : int, optional
        Train each classifier on at most this many pairs (>= 2, drawn at random).
    seed : int
        Seed of that draw, 0 to 2**32 - 1.

    Returns
    -------
    classifiers : dict of str to ModalityClassifier
    accuracy : dict of str to float
        ``"classifier/<modality>/accuracy"`` on real test items (empty without ``test``).
    """
    _check_fitted(model)
    _class_labels(train, "train", min_classes=2)
    _check_modalities(model, train, "train")
    test_labels = None if test is None else _class_labels(test, "test")
    if test is not None:
        _check_modalities(model, test, "test")
    sub = _train_subset(train, limit, seed)
    labels = np.asarray(sub.labels)
    classifiers, accuracy = {}, {}
    for m in model.modalities_:
        clf = ModalityClassifier(model.codecs_[m].kind).fit(model.observed(m, sub[m]), labels)
        classifiers[m] = clf
        if test is not None:
            accuracy[f"classifier/{m}/accuracy"] = clf.accuracy(model.observed(m, test[m]), test_labels)
    return classifiers, accuracy


def coherence(model, test, classifiers: dict, *, n_joint: int = 1000, seed: int = 0) -> dict:
    """Conditional coherence from every proper subset of modalities to each other modality,
    and joint coherence from the prior.

    Parameters
    ----------
    model : GenerativeModel
    test : Pairs
        Labelled test pairs holding every modality of the model.
    classifiers : dict of str to ModalityClassifier
        From :func:`train_classifiers`: one for each modality of the model.
    n_joint : int
        Prior draws for joint coherence (>= 1).

    Returns
    -------
    dict
        ``"<A>-><B>/coherence"`` and ``"<A>+<C>-><B>/coherence"`` (fractions of test items whose
        generated B is classified as their class), and ``"joint/coherence"``.
    """
    from .._validation import check_int

    n_joint = check_int(n_joint, "n_joint", low=1, high=1_000_000)
    _check_fitted(model)
    labels = _class_labels(test, "test")
    _check_modalities(model, test, "test")
    names = list(model.modalities_)
    if not isinstance(classifiers, dict) or any(not hasattr(classifiers.get(m), "predict") for m in names):
        got = ", ".join(map(str, classifiers)) if isinstance(classifiers, dict) else type(classifiers).__name__
        raise InputError(f"classifiers: expected a dict with a classifier (with predict) for each of "
                         f"{', '.join(names)}, e.g. from train_classifiers; got {got or 'none'}")
    out = {}
    for k in range(1, len(names)):
        for given in itertools.combinations(names, k):
            for target in names:
                if target in given:
                    continue
                gen = model.generate(target, {m: test[m] for m in given}, seed=seed)
                pred = classifiers[target].predict(gen)
                out[f"{'+'.join(given)}->{target}/coherence"] = float(np.mean(pred == labels))
    drawn = model.sample(n_joint, seed=seed)
    preds = np.stack([classifiers[m].predict(drawn[m]) for m in names])
    out["joint/coherence"] = float(np.mean((preds == preds[0]).all(0)))
    return out


def latent_probe(model, train, test, *, limit: int | None = 20000, seed: int = 0) -> dict:
    """Linear-probe accuracy of the class from the posterior mean: given all modalities
    (``probe/joint``) and given each one alone (``probe/<modality>``).

    A logistic regression is fitted on the train latents (at most ``limit`` pairs, drawn with
    ``seed`` as in :func:`train_classifiers`) and scored on the test latents.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _check_fitted(model)
    _class_labels(train, "train", min_classes=2)
    _check_modalities(model, train, "train")
    test_labels = _class_labels(test, "test")
    _check_modalities(model, test, "test")
    sub = _train_subset(train, limit, seed)
    out = {}
    sources = [("joint", list(model.modalities_))] + [(m, [m]) for m in model.modalities_]
    for name, mods in sources:
        ztr = model.posterior_mean({m: sub[m] for m in mods})
        zte = model.posterior_mean({m: test[m] for m in mods})
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(ztr, sub.labels)
        out[f"probe/{name}"] = float(np.mean(clf.predict(zte) == test_labels))
    return out


def generative_report(model, train, test, *, n_joint: int = 1000, iw_samples: int = 100,
                      bound_limit: int = 2000, seed: int = 0) -> dict:
    """Every figure of a generative model on ``test``: coherence (with the classifiers' own
    accuracies), latent probes, cross-modal retrieval in the latent (mAP, R@10), and for a
    VAE the ELBO, the per-modality reconstruction and an importance-sampled log-likelihood
    on the first ``bound_limit`` test pairs.

    Parameters
    ----------
    model : GenerativeModel
    train, test : Pairs
        Labelled pairs: the classifiers and probes learn from ``train``, every figure is of ``test``.
    n_joint : int
        Prior draws for joint coherence (>= 1).
    iw_samples : int
        Importance samples per item of the log-likelihood estimate (>= 1).
    bound_limit : int
        Test pairs the bound is computed on (>= 1).
    seed : int

    Returns
    -------
    dict of str to float
    """
    from .._validation import check_int
    from .retrieval import evaluate_retrieval

    _check_fitted(model)
    # before the classifiers train: a bad value would otherwise stop the report minutes in,
    # named as the argument of the call it reaches (sample's n, evaluate_bound's n_samples)
    n_joint = check_int(n_joint, "n_joint", low=1, high=1_000_000)
    iw_samples = check_int(iw_samples, "iw_samples", low=1, high=100000)
    bound_limit = check_int(bound_limit, "bound_limit", low=1)

    classifiers, accuracy = train_classifiers(model, train, test, seed=seed)
    row = {**coherence(model, test, classifiers, n_joint=n_joint, seed=seed), **accuracy}
    row.update(latent_probe(model, train, test, seed=seed))
    ret = evaluate_retrieval(model, test)
    row.update({k: v for k, v in ret.items() if k.endswith("/mAP") or k.endswith("/R@10")})
    if hasattr(model, "evaluate_bound"):
        part = test.subset(np.arange(min(len(test), bound_limit)))
        bound = model.evaluate_bound({m: part[m] for m in model.modalities_}, n_samples=iw_samples, seed=seed)
        row.update({f"bound/{k}": v for k, v in bound.items()})
    return row


def has_pictures(model) -> bool:
    """Whether the model's ``image`` modality holds pixel arrays (what the grid shows)."""
    _check_fitted(model)
    return "image" in model.modalities_ and model.codecs_["image"].kind == "pixels"


def generation_grid(model, test, path, *, n: int = 8, seed: int = 0) -> str:
    """A PNG grid of the first ``n`` test items: the real images, their reconstructions from
    every modality, images generated from the text alone and from the audio alone, and the
    texts generated from the images (``"(no words)"`` for an empty one).  Needs a model with an
    ``image`` modality.

    Parameters
    ----------
    model : GenerativeModel
    test : Pairs
        Holding every modality of the model.
    path : str or path-like
        The PNG file to write.
    n : int
        Test items shown (the first ones), one column each, at most 64.
    seed : int
        Seed of the cross-modal generations.

    Returns
    -------
    str
        The path written.
    """
    from .._validation import check_int
    from ..viz.generation_grid import MAX_COLUMNS, write_generation_grid

    # np.arange(min(n, len(test))) read -1 as no item, 2.5 as rows 0..2 (refused as 'indices')
    n = check_int(n, "n", low=1)
    if min(n, len(test)) > MAX_COLUMNS:
        raise InputError(f"n: the grid shows at most {MAX_COLUMNS} items in a row, got {n}")
    if not has_pictures(model):
        raise InputError("model: the grid shows pictures; this model's modalities are "
                         + ", ".join(f"{m} ({model.codecs_[m].kind})" for m in model.modalities_)
                         + " and none is an 'image' of pixels")
    _check_modalities(model, test, "test")
    part = test.subset(np.arange(min(n, len(test))))
    real = model.observed("image", part["image"])
    rows = [{"label": "real", "images": real,
             "captions": [str(t) for t in part["text"]] if "text" in part.modalities else None}]
    rec = model.reconstruct({m: part[m] for m in model.modalities_}, targets=["image"])["image"]
    rows.append({"label": "reconstruction (all)", "images": rec})
    for m in model.modalities_:
        if m == "image":
            continue
        gen = model.generate("image", {m: part[m]}, seed=seed)
        captions = None
        if m == "text":
            captions = [str(t) for t in part["text"]]
        elif "accent" in part.metadata:
            names = part.label_names
            captions = [(f"'{names[int(part.labels[i])].lower()}', " if names is not None else "")
                        + str(part.metadata["accent"][i]) for i in range(len(part))]
        rows.append({"label": f"{m} -> image", "images": gen, "captions": captions})
    if "text" in model.modalities_:
        texts = model.generate("text", {"image": part["image"]}, seed=seed)
        # a sentence of no words (padding first) would leave its cell blank, as if never generated
        rows.append({"label": "image -> text", "images": real, "captions": [str(t) or EMPTY_TEXT for t in texts]})
    return write_generation_grid(rows, path, title=f"{model.display_name}: reconstructions and cross-generations")
