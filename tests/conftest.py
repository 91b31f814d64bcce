import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Property-based tests: `make test` replays the same examples every run (a red CI run can be
# reproduced, a green one stays green); `make fuzz` draws fresh random examples, many more of them.
from hypothesis import settings  # noqa: E402

settings.register_profile("repeatable", derandomize=True, database=None, print_blob=True)
settings.register_profile("fuzz", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("JOINTSPACE_HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture
def two_views():
    """Two correlated views: 300 samples, 6 and 5 features, 3 shared latent factors."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 3))
    x = z @ rng.normal(size=(3, 6)) + 0.5 * rng.normal(size=(300, 6))
    y = z @ rng.normal(size=(3, 5)) + 0.5 * rng.normal(size=(300, 5))
    return x, y


@pytest.fixture(scope="module")
def one_thread():
    """Small problems: one BLAS / torch thread is faster than two on a shared, busy machine.
    A module uses it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)
