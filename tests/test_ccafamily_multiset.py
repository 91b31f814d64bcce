"""Multiset CCA (SUMCOR, MAXVAR) pinned against two-view CCA and the generalised eigenproblem."""

import numpy as np
import pytest
from scipy import linalg

from jointspace import InputError, Pairs, create_model, load_model
from jointspace.models.cca import CCA, CanonicalCorrelation
from jointspace.models.multiset_cca import MultisetCCA, block_covariances

@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Small dense problems: one BLAS thread is faster than two on a busy machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield



def _match_columns(a, b):
    return b * np.sign((a * b).sum(0))


@pytest.fixture
def three_views():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(200, 2))
    return [z @ rng.normal(size=(2, p)) + 0.7 * rng.normal(size=(200, p)) for p in (5, 4, 6)]


@pytest.mark.parametrize("objective", ["sumcor", "maxvar"])
def test_two_views_equal_cca(two_views, objective):
    x, y = two_views
    lin = CCA(n_components=3, weight=0.0).fit(x, y)  # unweighted canonical variables
    m = MultisetCCA(n_components=3, objective=objective, weight=0.0).fit([x, y])
    expected = lin.canonical_correlations_ + (1.0 if objective == "maxvar" else 0.0)
    np.testing.assert_allclose(m.eigenvalues_, expected, atol=1e-10)
    np.testing.assert_allclose(m.canonical_correlations([x, y])[0, 1], lin.canonical_correlations_, atol=1e-10)
    u, v = lin.transform(x, y)
    mu, mv = m.transform([x, y])
    np.testing.assert_allclose(_match_columns(u, mu), u, atol=1e-8)
    np.testing.assert_allclose(_match_columns(v, mv), v, atol=1e-8)


@pytest.mark.parametrize("objective", ["sumcor", "maxvar"])
def test_solves_the_generalised_eigenproblem(three_views, objective):
    reg = 0.2
    m = MultisetCCA(n_components=3, objective=objective, reg=reg).fit(three_views)
    _, c = block_covariances(three_views)
    sizes = [v.shape[1] for v in three_views]
    edges = np.cumsum([0] + sizes)
    r = np.zeros_like(c)
    a = c.copy()
    for i in range(3):
        b = slice(edges[i], edges[i + 1])
        r[b, b] = (1 - reg) * c[b, b] + reg * np.eye(sizes[i])
        if objective == "sumcor":
            a[b, b] = 0
    ref = linalg.eigh(a, r, eigvals_only=True)[::-1][:3]
    np.testing.assert_allclose(m.eigenvalues_, ref, rtol=1e-10)
    # Each view's canonical variables have unit training variance.
    for i in range(3):
        b = slice(edges[i], edges[i + 1])
        var = np.einsum("ik,ij,jk->k", m.weights_[i], c[b, b], m.weights_[i])
        np.testing.assert_allclose(var, 1.0, rtol=1e-8)


def test_maxvar_shared_representation(three_views):
    """MAXVAR: the eigenvalues are those of sum_i X_i R_i^-1 X_i^T / (n - 1) (sample space)."""
    n = three_views[0].shape[0]
    m = MultisetCCA(n_components=2, objective="maxvar").fit(three_views)
    xs = [v - v.mean(0) for v in three_views]
    s = sum(x @ np.linalg.solve(x.T @ x / (n - 1), x.T) / (n - 1) for x in xs)
    np.testing.assert_allclose(m.eigenvalues_, np.linalg.eigvalsh(s)[::-1][:2], rtol=1e-8)


def test_pairs_encode_save_load(tmp_path, three_views):
    p = Pairs({"image": three_views[0], "text": three_views[1], "audio": three_views[2]})
    m = create_model("mcca", n_components=2, reg=0.1, preprocess={"audio": "standard"}).fit(p)
    assert m.modalities_ == ("image", "text", "audio")
    m.save(tmp_path / "m")
    back = load_model(tmp_path / "m")
    z = three_views[2][:5]
    np.testing.assert_allclose(back.encode("audio", z), m.encode("audio", z), atol=1e-6)
    assert create_model("gcca", n_components=2).fit(p).objective_ == "maxvar"


def test_bad_inputs(three_views):
    x, y, z = three_views
    with pytest.raises(InputError, match="same number of samples"):
        MultisetCCA(n_components=2).fit([x, y[:100], z])
    with pytest.raises(InputError, match="fewer samples than components"):
        MultisetCCA(n_components=5).fit([x[:5], y[:5], z[:5]])
    with pytest.raises(InputError, match="at least 2 views"):
        MultisetCCA(n_components=2).fit([x])
    with pytest.raises(InputError, match="objective"):
        MultisetCCA(n_components=2, objective="minvar").fit([x, y])


def test_a_modality_twice_and_a_view_too_many_are_refused(three_views):
    x, y, z = three_views
    with pytest.raises(InputError, match=r"modalities: expected each modality once, got 'a' more than once"):
        create_model("mcca", modalities=["a", "a"]).fit(Pairs({"a": x, "b": y}))
    model = MultisetCCA(n_components=2).fit([x, y])
    with pytest.raises(InputError, match=r"views: expected 2 views \(view0, view1\) as in fit, got 3"):
        model.transform([x, y, y])
    with pytest.raises(InputError, match=r"views: expected 2 views \(view0, view1\) as in fit, got 1"):
        model.transform([x])


@pytest.mark.parametrize("objective", ["sumcor", "maxvar"])
def test_n_components_beyond_the_smallest_view_is_refused(objective):
    # A 2-feature view has only 2 canonical variables; a third and fourth would be round-off
    # rescaled to unit variance.  The same cap as two-view CCA's min(p, q).
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(50, 4)), rng.normal(size=(50, 2))
    with pytest.raises(InputError, match=r"n_components: expected at most 2 \(the rank of 'view1'"):
        MultisetCCA(n_components=4, objective=objective).fit([x, y])
    with pytest.raises(InputError, match=r"at most min\(.*\) = 2"):
        CanonicalCorrelation(n_components=4).fit(x, y)
    m = MultisetCCA(n_components=2, objective=objective).fit([x, y])
    assert np.all(m.eigenvalues_ > 1e-3)


@pytest.mark.parametrize("name", ["mcca", "gcca", "scca", "sm"])
def test_a_preprocess_key_that_is_no_modality_fitted_is_refused(three_views, name):
    labels = np.arange(len(three_views[0])) % 3
    p = Pairs({"image": three_views[0], "text": three_views[1]}, labels=labels)
    with pytest.raises(InputError, match=r"^preprocess: expected steps keyed by the modalities fitted \(image, text\), "
                                         r"got the key\(s\) 'imgae'$"):
        create_model(name, preprocess={"imgae": "pca:2", "text": "standard"}).fit(p)


@pytest.mark.parametrize("name", ["mcca", "gcca", "scca"])
def test_a_ridge_per_view_may_be_a_numpy_array(tmp_path, three_views, name):
    p = Pairs({"image": three_views[0], "text": three_views[1]}, labels=np.arange(len(three_views[0])) % 3)
    as_list = create_model(name, n_components=2, reg=[0.1, 0.4]).fit(p)
    as_array = create_model(name, n_components=2, reg=np.array([0.1, 0.4])).fit(p)
    np.testing.assert_array_equal(as_array.eigenvalues_, as_list.eigenvalues_)
    as_array.save(tmp_path / "m")
    assert load_model(tmp_path / "m").get_params()["reg"] == [0.1, 0.4]
