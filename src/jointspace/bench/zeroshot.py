"""Fashion-MNIST zero-shot classification with a joint space trained on OpenClipart only.

No Fashion-MNIST image is seen in training: class names are put into prompt templates, the
normalised template embeddings are averaged per class (prompt ensembling), and each image
takes the class of the nearest averaged prompt.  Rows with and without ensembling, with the
images as given and inverted (OpenClipart drawings are dark on white, Fashion-MNIST light
on black), and chance.
"""

NAME = "zeroshot"
DESCRIPTION = "Fashion-MNIST zero-shot top-1 / top-5 with a CLIP-style space trained on OpenClipart only"


def run(progress=None, quick: bool = False, **options) -> dict:
    from ..eval.report import make_report
    from ..train.recipes import bench_zeroshot

    rows = bench_zeroshot(limit=1000 if quick else None)
    return make_report("fashion-mnist", "test", rows)
