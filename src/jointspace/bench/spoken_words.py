"""Spoken words: audio <-> text retrieval with CCA over MFCC statistics and MiniLM.

The dataset's splits hold out accents: test voices are never heard in training.  Relevance
is the word (label); audio->text R@1 is the fraction of clips whose nearest text is their
word.  Settings (PCA size, components, component weighting, ridge) are chosen on the
validation accent.
"""

from __future__ import annotations

import numpy as np

NAME = "spoken-words"
DESCRIPTION = "espeak-ng words, unseen accents at test: audio <-> text with CCA over MFCC + MiniLM"

TOWERS = {"audio": "mfcc", "text": "minilm"}
DIRECTIONS = ["audio->text", "text->audio"]
#: the settings searched on the validation accent; the lists are fixed by hand (n_components
#: reaches 19, one less than the number of words), not tuned.  The component weighting is also
#: searched, over ``fit_with_towers``'s own list (:data:`jointspace.eval.search_spaces.HEAD_WEIGHTS`)
GRID = {"pca": [None, 32, 64], "n_components": [4, 8, 12, 16, 19], "reg": [1e-3, 1e-2, 0.1, 0.3]}
#: ``quick``: fewer settings (8 of the 60 combinations of pca x n_components x reg, picked by
#: hand from :data:`GRID`; a quick run still chooses among them on the validation accent) ...
QUICK_GRID = {"pca": [None, 32], "n_components": [8, 16], "reg": [1e-2, 0.1]}
#: ... and fewer voices: 2 voice settings per accent instead of the dataset's 5 (the first
#: settings of each accent, so a quick run reuses clips a full run caches, and vice versa)
QUICK_SETTINGS_PER_ACCENT = 2


def plan(quick: bool = False) -> tuple[dict, dict]:
    """The searched grid and the dataset options of a run.

    Returns
    -------
    grid : dict
        ``fit_with_towers`` grid overrides (``pca``, ``n_components``, ``reg``).
    dataset_options : dict
        Keyword options of ``load_dataset("spoken-words", split, ...)``.
    """
    if quick:
        return QUICK_GRID, {"settings_per_accent": QUICK_SETTINGS_PER_ACCENT}
    return GRID, {}


def run(progress=None, quick: bool = False, **options) -> dict:
    """Rows: random, CCA, regularised CCA (settings chosen on the validation accent).

    ``quick`` searches :data:`QUICK_GRID` instead of :data:`GRID` on fewer voices per accent
    (:data:`QUICK_SETTINGS_PER_ACCENT`), for a first look.
    """
    from ..data.datasets import load_dataset
    from ..eval.report import make_report
    from ..eval.retrieval import evaluate_embeddings
    from ..models.towered import fit_with_towers

    grid, data_options = plan(quick)
    train, val, test = (load_dataset("spoken-words", s, **data_options) for s in ("train", "val", "test"))
    keys = test.relevance_keys("label")
    rng = np.random.default_rng(0)
    rows = [{"method": "random", **evaluate_embeddings({m: rng.normal(size=(len(test), 16)) for m in TOWERS},
                                                       keys, directions=DIRECTIONS)}]
    for label, head in (("CCA", "cca"), ("regularised CCA", "rcca")):
        model, report = fit_with_towers(train, TOWERS, head=head, val_pairs=val, relevance="label",
                                        directions=[("audio", "text")], grid=grid, k=1, progress=False)
        z = {m: model.encode(m, test[m]) for m in TOWERS}
        settings = ", ".join(f"{k}={v}" for k, v in report["best"]["head_params"].items() if k != "modalities")
        rows.append({"method": label, "settings": settings, **evaluate_embeddings(z, keys, directions=DIRECTIONS)})
    accents = ", ".join(sorted(set(test.metadata["accent"])))
    return make_report("spoken-words", f"test (unseen accents: {accents})", rows)
