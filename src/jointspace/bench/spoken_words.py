"""Spoken words: audio <-> text retrieval with CCA over MFCC statistics and MiniLM.

The dataset's splits hold out accents: test voices are never heard in training.  Relevance
is the word (label); audio->text R@1 is the fraction of clips whose nearest text is their
word.  Settings (PCA size, components, ridge) are chosen on the validation accent.
"""

from __future__ import annotations

import numpy as np

NAME = "spoken-words"
DESCRIPTION = "espeak-ng words, unseen accents at test: audio <-> text with CCA over MFCC + MiniLM"

TOWERS = {"audio": "mfcc", "text": "minilm"}
DIRECTIONS = ["audio->text", "text->audio"]
GRID = {"pca": [None, 32, 64], "n_components": [4, 8, 12, 16, 19], "reg": [1e-3, 1e-2, 0.1, 0.3]}


def run(progress=None, quick: bool = False, **options) -> dict:
    from ..data.datasets import load_dataset
    from ..eval.report import make_report
    from ..eval.retrieval import evaluate_embeddings
    from ..models.towered import fit_with_towers

    train, val, test = (load_dataset("spoken-words", s) for s in ("train", "val", "test"))
    keys = test.relevance_keys("label")
    rng = np.random.default_rng(0)
    rows = [{"method": "random", **evaluate_embeddings({m: rng.normal(size=(len(test), 16)) for m in TOWERS},
                                                       keys, directions=DIRECTIONS)}]
    for label, head in (("CCA", "cca"), ("regularised CCA", "rcca")):
        model, report = fit_with_towers(train, TOWERS, head=head, val_pairs=val, relevance="label",
                                        directions=[("audio", "text")], grid=GRID, k=1, progress=False)
        z = {m: model.encode(m, test[m]) for m in TOWERS}
        settings = ", ".join(f"{k}={v}" for k, v in report["best"]["head_params"].items() if k != "modalities")
        rows.append({"method": label, "settings": settings, **evaluate_embeddings(z, keys, directions=DIRECTIONS)})
    accents = ", ".join(sorted(set(test.metadata["accent"])))
    return make_report("spoken-words", f"test (unseen accents: {accents})", rows)
