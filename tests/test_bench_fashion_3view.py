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
