"""Zero-shot classification in a joint space: classes become texts, images pick the closest.

Each class name is written into prompt templates ("a photo of a {}", "a drawing of a {}", ...);
the text embeddings of one class's prompts are L2-normalised and averaged (prompt ensembling,
because a zero-shot classifier is sensitive to wording, as the chapter's CLIP limitations note),
then normalised again.  An image's class is the one whose averaged prompt embedding has the
highest cosine similarity with the image's embedding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError

TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "default": ("a photo of a {}.", "a drawing of a {}.", "a picture of a {}.", "a sketch of a {}.",
                "clip art of a {}.", "an illustration of a {}.", "a black and white photo of a {}.",
                "a small picture of a {}.", "a {}.", "{}"),
    "single": ("a photo of a {}.",),
    "name": ("{}",),
}


def resolve_templates(templates, name: str = "templates") -> tuple[str, ...]:
    """A template-set name (:data:`TEMPLATE_SETS`) or a sequence of strings with one ``{}`` each.

    Parameters
    ----------
    templates : str or sequence of str
        A set name, one template, or several.  Each template must format with exactly one
        empty placeholder ``{}``; literal braces are written ``{{`` and ``}}``.
    name : str
        Argument name used in messages (e.g. ``"--templates"``).

    Returns
    -------
    tuple of str
    """
    if isinstance(templates, str):
        if templates in TEMPLATE_SETS:
            return TEMPLATE_SETS[templates]
        if "{" not in templates and "}" not in templates:
            raise InputError(f"{name}: expected one of {', '.join(TEMPLATE_SETS)} or a template with '{{}}', "
                             f"got {templates!r}")
        templates = (templates,)
    if isinstance(templates, (bytes, dict)):
        raise InputError(f"{name}: expected a set name or strings each with exactly one '{{}}', "
                         f"got {type(templates).__name__}")
    try:
        templates = tuple(templates)
    except TypeError:
        raise InputError(f"{name}: expected a set name or strings each with exactly one '{{}}', "
                         f"got {type(templates).__name__}") from None
    if not templates:
        raise InputError(f"{name}: expected at least one template with '{{}}', got none")
    for t in templates:
        _check_template(t, name)
    return templates


def _check_template(template, name: str) -> None:
    """Raise unless ``template`` formats with exactly one empty ``{}`` placeholder."""
    import string

    if not isinstance(template, str):
        raise InputError(f"{name}: expected strings each with exactly one '{{}}', got {template!r}")
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise InputError(f"{name}: template {template!r} is not a valid format string ({exc}); write a literal "
                         "brace as '{{' or '}}'") from None
    if fields != [("", "", None)]:
        raise InputError(f"{name}: expected each template to hold exactly one '{{}}' placeholder (no name, "
                         f"index or format inside), got {template!r}")


def fill_template(template: str, name: str) -> str:
    """``template`` with ``name`` in its ``{}``, fixing "a" / "an" before the name.

    Parameters
    ----------
    template : str
        Exactly one empty ``{}`` placeholder; literal braces written ``{{`` and ``}}``.
    name : str

    Returns
    -------
    str
        The formatted text; a word "a" (or "A") just before the name becomes "an" ("An")
        when the name starts with a vowel letter.

    Examples
    --------
    >>> fill_template("{{x}} a {}", "apple")
    '{x} an apple'
    """
    import string

    _check_template(template, "template")
    name = str(name)
    # split at the real placeholder: literal texts come back unescaped ("{{" -> "{")
    prefix, suffix, seen = [], [], False
    for literal, field, _, _ in string.Formatter().parse(template):
        (suffix if seen else prefix).append(literal)
        seen = seen or field is not None
    head, tail = "".join(prefix), "".join(suffix)
    if name[:1].lower() in ("a", "e", "i", "o", "u") and head[-2:] in ("a ", "A ") \
            and (len(head) == 2 or head[-3] == " "):
        head = head[:-1] + "n "
    return head + name + tail


def check_class_names(class_names, name: str = "class_names") -> list[str]:
    """``class_names`` as a list of at least two distinct strings, or InputError naming ``name``.

    Two classes of one name would get the same prompts and the same vector: the later one
    would tie with the earlier and never be predicted.
    """
    names = [str(c) for c in class_names]
    if len(names) < 2:
        raise InputError(f"{name}: expected at least 2 classes, got {len(names)}")
    first: dict[str, int] = {}
    for i, c in enumerate(names):
        if c in first:
            raise InputError(f"{name}: expected distinct class names, got {c!r} for classes {first[c]} and {i}")
        first[c] = i
    return names


def class_embeddings(model, class_names: Sequence[str], templates="default", *, text_modality: str = "text",
                     ensemble: bool = True) -> np.ndarray:
    """One unit vector per class from its prompts.

    Parameters
    ----------
    model : JointModel
        A fitted model that can encode ``text_modality`` strings.
    class_names : sequence of C str
        Distinct names (two classes of one name would have the same vector).
    templates : str or sequence of str
    ensemble : bool
        Average the normalised embeddings of every template (True) or use the first only.

    Returns
    -------
    W : ndarray of float32, shape (C, d), unit rows
    """
    names = check_class_names(class_names)
    temps = resolve_templates(templates)
    if not ensemble:
        temps = temps[:1]
    from .._validation import check_matrix

    prompts = [fill_template(t, c) for c in names for t in temps]
    # a NaN class vector scores NaN against every image, sorts last and is never predicted
    z = check_matrix(model.encode(text_modality, prompts, normalize=True),
                     f"model.encode({text_modality!r}) (the class prompts' embeddings)", dtype=np.float32)
    if z.shape[0] != len(prompts):
        raise InputError(f"model.encode({text_modality!r}) (the class prompts' embeddings): expected one row per "
                         f"prompt ({len(prompts)}), got shape {z.shape}")
    z = z.reshape(len(names), len(temps), -1).mean(axis=1)
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def zeroshot_classify(model, images, labels, class_names: Sequence[str], templates="default", *,
                      image_modality: str = "image", text_modality: str = "text", ensemble: bool = True,
                      ks: Sequence[int] = (1, 5), image_embeddings: np.ndarray | None = None) -> dict:
    """Classify ``images`` against prompts of ``class_names``.

    Parameters
    ----------
    model : JointModel
    images : items of ``image_modality`` (n items), ignored when ``image_embeddings`` is given
    labels : array-like of int, shape (n,)
        True class indices into ``class_names``; n >= 1.
    class_names : sequence of C str
    templates : str or sequence of str
        A set name ("default", "single", "name") or templates with ``{}``.
    ensemble : bool
        Prompt ensembling (average over templates) or the first template only.
    ks : sequence of int
        Top-k accuracies to report, each k >= 1.
    image_embeddings : ndarray (n, d), optional
        Precomputed unit-norm image embeddings (to score several template sets cheaply);
        finite, with as many columns as the model's text embeddings.

    Returns
    -------
    dict
        ``top1``, ``top5`` (each ``top{k}``), ``per_class`` (C,) accuracies (NaN for a class
        without images), ``confusion``
        (C, C) counts (rows: true class, columns: predicted), ``predictions`` (n,),
        ``n_classes``, ``n_templates``.  Classes with equal scores are ordered by their index
        in ``class_names`` (the first wins), as a classifier must name one class.

    Raises
    ------
    InputError
        Labels that are not n >= 1 class indices, embeddings that are not a finite (n, d)
        matrix as wide as the class embeddings, or a bad ``ks``.
    """
    from .._validation import check_matrix
    from .metrics import check_ks

    ks = check_ks(ks)
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"labels: expected integer class indices of shape (n,), got {labels.dtype} {labels.shape}")
    if labels.size == 0:
        raise InputError("labels: expected at least one labelled image, got none")
    n_cls = len(class_names)
    if labels.min() < 0 or labels.max() >= n_cls:
        raise InputError(f"labels: expected values in [0, {n_cls}), got {labels.min()}..{labels.max()}")
    if image_embeddings is not None:
        x = check_matrix(image_embeddings, "image_embeddings", dtype=np.float32)
    w = class_embeddings(model, class_names, templates, text_modality=text_modality, ensemble=ensemble)
    if image_embeddings is None:
        x = check_matrix(model.encode(image_modality, images, normalize=True),
                         f"model.encode({image_modality!r}) (the image embeddings)", dtype=np.float32)
    name = "image_embeddings" if image_embeddings is not None else "images"
    if x.shape[1] != w.shape[1]:
        raise InputError(f"{name}: expected embeddings with {w.shape[1]} columns like the class prompts' "
                         f"embeddings, got shape {x.shape}")
    if x.shape[0] != labels.shape[0]:
        raise InputError(f"labels: expected {x.shape[0]} labels (one per image), got {labels.shape[0]}")
    scores = x @ w.T
    order = np.argsort(-scores, axis=1, kind="stable")
    pred = order[:, 0]
    out = {}
    for k in ks:
        out[f"top{k}"] = float((order[:, :min(k, n_cls)] == labels[:, None]).any(axis=1).mean())
    confusion = np.zeros((n_cls, n_cls), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    support = confusion.sum(axis=1)
    out["per_class"] = np.where(support > 0, np.diag(confusion) / np.maximum(support, 1), np.nan)
    out["confusion"] = confusion
    out["predictions"] = pred
    out["n_classes"] = n_cls
    out["n_templates"] = len(resolve_templates(templates)) if ensemble else 1
    return out
