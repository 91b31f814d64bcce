"""Fashion-MNIST zero-shot classification with a joint space trained on OpenClipart only.

No Fashion-MNIST image is seen in training: class names are put into prompt templates, the
normalised template embeddings are averaged per class (prompt ensembling), and each image
takes the class of the nearest averaged prompt.  Rows with and without ensembling, with the
images as given and inverted (OpenClipart drawings are dark on white, Fashion-MNIST light
on black), and chance.
"""

from __future__ import annotations

NAME = "zeroshot"
DESCRIPTION = "Fashion-MNIST zero-shot top-1 / top-5 with a CLIP-style space trained on OpenClipart only"


def run(progress=None, quick: bool = False, **options) -> dict:
    from ..eval.report import make_report

    rows = bench_zeroshot(limit=1000 if quick else None)
    return make_report("fashion-mnist", "test", rows)


def bench_zeroshot(limit: int | None = 2000, variant: str = "clip (MLP heads)",
                   seed: int = 0, model=None, progress: bool = False) -> list[dict]:
    """Fashion-MNIST zero-shot with a joint space trained on OpenClipart only.

    Parameters
    ----------
    limit : int or None
        Fashion-MNIST test images used (None: all 10,000).
    model : DualEncoder, optional
        A trained model (default: :func:`jointspace.bench._contrastive.fit_openclipart`).

    Returns
    -------
    list of dict
        ``{"method", "top1", "top5", "n", "n_templates"}`` for prompt ensembling, a single
        template and the bare class name, with the images as given and inverted, plus a
        chance row.
    """
    from ..data.datasets import load_dataset
    from ..data.datasets.fashion_mnist import CLASS_WORDS
    from ..eval.zeroshot import zeroshot_classify
    from ._contrastive import fit_openclipart

    model = model if model is not None else fit_openclipart(variant, seed=seed, progress=progress)
    options = {} if limit is None else {"limit": limit}
    fm = load_dataset("fashion-mnist", "test", **options)
    rows = []
    # OpenClipart drawings are dark on white, Fashion-MNIST garments light on black: both
    # polarities are reported.
    for polarity, pixels in (("images as given", fm["image"]), ("images inverted", 255 - fm["image"])):
        images = model.encode("image", pixels)
        for label, templates, ensemble in (("prompt ensemble (10 templates)", "default", True),
                                           ("single template 'a photo of a {}.'", "single", False),
                                           ("class name only", "name", False)):
            r = zeroshot_classify(model, None, fm.labels, list(CLASS_WORDS), templates, ensemble=ensemble,
                                  image_embeddings=images)
            rows.append({"method": f"clip on OpenClipart, {polarity}, {label}", "top1": r["top1"],
                         "top5": r["top5"], "n": int(len(fm)), "n_templates": r["n_templates"]})
    rows.append({"method": "chance", "top1": 0.1, "top5": 0.5, "n": int(len(fm)), "n_templates": 0})
    return rows
