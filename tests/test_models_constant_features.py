"""A feature constant in training keeps its units: another value at encode time moves the
output by a bounded amount instead of a millionfold (scikit-learn's StandardScaler rule)."""

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from jointspace import Pairs, create_model
from jointspace.models._standardise import feature_scale
from jointspace.models.fusion import FusionClassifier

pytestmark = pytest.mark.usefixtures("one_thread")


def _with_constant(n=240, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    a = (z @ rng.normal(size=(3, 6)) + 0.1 * rng.normal(size=(n, 6))).astype(np.float32)
    b = (z @ rng.normal(size=(3, 5)) + 0.1 * rng.normal(size=(n, 5))).astype(np.float32)
    a[:, 2] = 3.0   # constant in every training row
    return a, b, (z[:, 0] > 0).astype(int)


def _cosines(u, v):
    return np.sum(u * v, 1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))


def test_feature_scale_is_the_standard_scalers():
    a, _, _ = _with_constant()
    a[:, 4] = 1e-7 * (np.arange(len(a)) % 2)   # a spread below the threshold counts as constant
    scale = feature_scale(a)
    assert scale[2] == scale[4] == 1.0
    varying = [0, 1, 3, 5]
    np.testing.assert_allclose(scale[varying], StandardScaler().fit(a).scale_[varying], rtol=1e-5)
    assert feature_scale(a.astype(np.float64)).dtype == np.float64


@pytest.mark.parametrize("name, params", [
    ("clip", dict(dim=4, hidden=16, epochs=5, batch_size=40, val_fraction=0.0)),
    ("dcca", dict(n_components=2, out_dim=3, hidden=(16,), epochs=5, batch_size=80)),
])
def test_encoding_another_value_of_a_constant_feature(name, params):
    a, b, _ = _with_constant()
    model = create_model(name, **params).fit(Pairs({"a": a, "b": b}))
    shifted = a[:20].copy()
    shifted[:, 2] = 4.0   # one unit away from its training value
    base, moved = model.encode("a", a[:20]), model.encode("a", shifted)
    assert np.isfinite(moved).all()
    # before the fix the shift was multiplied by 1e6 and every vector pointed one way
    assert np.median(_cosines(base, moved)) > 0.5


def test_fusion_predicts_through_another_value_of_a_constant_feature():
    a, b, y = _with_constant(300)
    model = FusionClassifier(fusion="early", epochs=20, hidden=16).fit(Pairs({"a": a, "b": b}, labels=y))
    shifted = a.copy()
    shifted[:, 2] = 4.0
    p0, p1 = model.predict_proba({"a": a, "b": b}), model.predict_proba({"a": shifted, "b": b})
    # a unit step of one input of eleven moves the probabilities a little (it moved them by
    # up to 0.66 when the step was multiplied by 1e6)
    assert np.abs(p0 - p1).max() < 0.25
