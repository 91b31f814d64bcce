"""CCA on views wider than the sample count (e.g. 1280-d image features of a small
collection) is solved in the span of the samples: the same directions as the full problem."""

import numpy as np
import pytest

from jointspace.models import cca as C
from jointspace.models.base import create_model


@pytest.mark.parametrize("reg", [(0.1, 0.1), (0.5, 0.3), (0.9, 0.02)])
def test_span_solution_equals_full_ridge_cca(reg):
    rng = np.random.default_rng(0)
    n = 60
    x = rng.normal(size=(n, 300))
    y = x[:, :40] @ rng.normal(size=(40, 80)) + rng.normal(size=(n, 80))
    mx, my, cxx, cyy, cxy, wx, wy = C._fit_blocks(x, y, 10, reg)
    fmx, fmy, fcxx, fcyy, fcxy = C.covariances(x, y)
    fwx, fwy, rho = C.solve_cca(fcxx, fcyy, fcxy, 10, reg)   # p x p eigenproblems
    np.testing.assert_allclose(cxx, fcxx, atol=1e-10)
    np.testing.assert_allclose(cxy, fcxy, atol=1e-10)
    for got, want, data, mean in ((wx, fwx, x, fmx), (wy, fwy, y, fmy)):
        zg, zw = (data - mean) @ got, (data - mean) @ want
        signs = np.sign(np.sum(zg * zw, axis=0))
        np.testing.assert_allclose(zg * signs, zw, atol=1e-8 * np.abs(zw).max())
    # a fitted model: same canonical correlations as the full solve (unregularised, on training data)
    m = create_model("rcca", n_components=10, reg=list(reg), weight=0.0).fit(x, y)
    u, v = (x - fmx) @ fwx, (y - fmy) @ fwy
    want_rho = [np.corrcoef(u[:, i], v[:, i])[0, 1] for i in range(10)]
    np.testing.assert_allclose(m.canonical_correlations_, want_rho, atol=1e-8)


def test_plain_cca_wide_view_still_refuses_too_many_pairs():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(20, 50)), rng.normal(size=(20, 5))
    m = create_model("cca", n_components=4, weight=0.0).fit(x, y)
    assert m.canonical_correlations_.shape == (4,)
    assert np.all(m.canonical_correlations_ <= 1 + 1e-9)
