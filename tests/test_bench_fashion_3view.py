"""The fashion-3view suite chooses each method's ridge on a validation part of train."""

import numpy as np

import jointspace as js
from jointspace.bench import fashion_3view as suite
from jointspace.eval.retrieval import evaluate_retrieval
from jointspace.models.base import create_model


def _pairs(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=n)
    centres = rng.normal(size=(4, 3))
    z = centres[labels] + 0.8 * rng.normal(size=(n, 3))
    a = (z @ rng.normal(size=(3, 8)) + 0.5 * rng.normal(size=(n, 8))).astype(np.float32)
    b = (z @ rng.normal(size=(3, 6)) + 0.5 * rng.normal(size=(n, 6))).astype(np.float32)
    return js.Pairs({"a": a, "b": b}, labels=labels)


def test_choose_reg_takes_the_best_validation_map_and_never_reads_test():
    train, val = _pairs(200, 0), _pairs(80, 1)
    directions = ["a->b", "b->a"]

    def fit(pairs, reg):
        return create_model("rcca", n_components=2, reg=reg, weight=1.0, modalities=("a", "b")).fit(pairs)

    grid = (1e-4, 0.1, 1.0)
    chosen, scores = suite._choose_reg(fit, train, val, directions, grid)
    # an independent computation of each candidate's validation score
    expected = {}
    for reg in grid:
        res = evaluate_retrieval(fit(train, reg), val, directions=directions)
        expected[reg] = np.mean([res[f"{d}/mAP"] for d in directions])
    assert scores == expected
    assert chosen == max(grid, key=lambda r: expected[r])


def test_the_quick_grid_is_part_of_the_full_one():
    assert set(suite.QUICK_REG_GRID) <= set(suite.REG_GRID)
    assert 0 < suite.VAL_FRACTION < 1


def test_the_validation_part_speaks_with_voices_unheard_in_training():
    """Test clips come from accents never heard in training, so the ridge is chosen on clips of
    spoken-words' val split, each of its pair's class; the fit part keeps the training clips."""
    from jointspace.data.datasets.fashion_mnist import CLASS_WORDS

    train = suite.three_view_pairs("train", 200, suite._text_table(CLASS_WORDS), seed=0)
    fit_part, val_part = suite.validation_split(train, seed=0)
    assert len(val_part) == round(suite.VAL_FRACTION * 200) and len(fit_part) + len(val_part) == 200
    clips = {split: suite._audio_table(split, CLASS_WORDS) for split in ("train", "val")}

    def source(rows, labels):
        """For each row: the split whose clip of the row's class it is (None: no such clip)."""
        out = []
        for row, label in zip(rows, labels):
            found = [s for s, (feats, cls) in clips.items() if (np.all(feats[cls == label] == row, axis=1)).any()]
            out.append(found[0] if len(found) == 1 else None)
        return out

    assert source(val_part["audio"], val_part.labels) == ["val"] * len(val_part)
    assert source(fit_part["audio"], fit_part.labels) == ["train"] * len(fit_part)
