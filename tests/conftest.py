import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def two_views():
    """Two correlated views: 300 samples, 6 and 5 features, 3 shared latent factors."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 3))
    x = z @ rng.normal(size=(3, 6)) + 0.5 * rng.normal(size=(300, 6))
    y = z @ rng.normal(size=(3, 5)) + 0.5 * rng.normal(size=(300, 5))
    return x, y
