"""Kernel CCA pinned against linear CCA, the dual generalised eigenproblem and pyrcca."""

import numpy as np
import pytest
from scipy import linalg

from jointspace import InputError, Pairs, create_model, load_model
from jointspace.models._kernels import center_kernel, kernel_eig, solve_kernel_cca
from jointspace.models.cca import CCA
from jointspace.models.kernel_cca import KernelCCA

@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Small dense problems: one BLAS thread is faster than two on a busy machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield



def _corr(u, v):
    u = u - u.mean(0)
    v = v - v.mean(0)
    return (u * v).sum(0) / np.sqrt((u * u).sum(0) * (v * v).sum(0))


def _match_columns(a, b):
    """b's columns with signs flipped to agree with a's."""
    return b * np.sign((a * b).sum(0))


@pytest.mark.parametrize("reg", [0.0, 0.3])
def test_linear_kernel_equals_linear_cca(two_views, reg):
    x, y = two_views
    xt, yt = x[:40] * 1.5 + 0.2, y[:40] - 0.1
    x, y = x[100:250], y[100:250]
    lin = CCA(n_components=3, reg=reg).fit(x, y)
    ker = KernelCCA(n_components=3, kernel="linear", reg=reg).fit(x, y)
    np.testing.assert_allclose(ker.canonical_correlations_, lin.canonical_correlations_, atol=1e-10)
    u_l, v_l = lin.transform(xt, yt)
    u_k, v_k = ker.transform(xt, yt)
    np.testing.assert_allclose(_match_columns(u_l, u_k), u_l, atol=1e-8)
    np.testing.assert_allclose(_match_columns(v_l, v_k), v_l, atol=1e-8)


def test_exact_solver_solves_the_dual_generalised_eigenproblem(two_views):
    """The documented definition: [[0, KxKy], [KyKx, 0]] w = rho [[Rx, 0], [0, Ry]] w."""
    x, y = two_views
    x, y = x[:60], y[:60]
    n, c = 60, 0.2
    kx = center_kernel(np.exp(-0.1 * ((x[:, None] - x[None]) ** 2).sum(-1)))[0]
    ky = center_kernel(np.exp(-0.1 * ((y[:, None] - y[None]) ** 2).sum(-1)))[0]
    alpha, beta, rho = solve_kernel_cca(kernel_eig(kx, "x"), kernel_eig(ky, "y"), 3, (c, c))
    rx = (1 - c) * kx @ kx / (n - 1) + c * kx
    ry = (1 - c) * ky @ ky / (n - 1) + c * ky
    z = np.zeros((n, n))
    a = np.block([[z, kx @ ky / (n - 1)], [ky @ kx / (n - 1), z]])
    # Kernels are rank-deficient after centring; a tiny jitter makes B definite for eigh.
    b = np.block([[rx, z], [z, ry]]) + 1e-9 * np.eye(2 * n)
    ref = linalg.eigh(a, b, eigvals_only=True)[::-1][:3]
    np.testing.assert_allclose(rho, ref, rtol=1e-5)
    # The returned coefficients satisfy the constraints and attain rho.
    np.testing.assert_allclose(np.einsum("ik,ij,jk->k", alpha, rx, alpha), 1, rtol=1e-6)
    np.testing.assert_allclose(np.einsum("ik,ij,jk->k", alpha, kx @ ky / (n - 1), beta), rho, rtol=1e-6)


def test_dual_form_matches_pyrcca(two_views):
    rcca = pytest.importorskip("rcca")
    x, y = two_views
    x, y = x[:80], y[:80]
    kx, ky = (rcca.rcca._make_kernel(d, ktype="gaussian", gausigma=3.0) for d in (x, y))
    _, _, rho = solve_kernel_cca(kernel_eig(kx, "x"), kernel_eig(ky, "y"), 3, (0.1, 0.1), form="dual")
    lh = np.block([[np.zeros((80, 80)), kx @ ky], [ky @ kx, np.zeros((80, 80))]])
    rh = np.block([[kx @ kx + 0.1 * np.eye(80), np.zeros((80, 80))], [np.zeros((80, 80)), ky @ ky + 0.1 * np.eye(80)]])
    ref = linalg.eigh(lh, rh, eigvals_only=True)[::-1][:3]  # pyrcca's own eigenproblem
    np.testing.assert_allclose(rho, ref, rtol=1e-7)


def test_nystroem_with_all_landmarks_is_exact(two_views):
    x, y = two_views
    x, y = x[:120], y[:120]
    ex = KernelCCA(n_components=3, kernel="rbf", gamma=0.05, reg=0.1, method="exact").fit(x, y)
    ny = KernelCCA(n_components=3, kernel="rbf", gamma=0.05, reg=0.1, method="nystroem", n_features=120).fit(x, y)
    np.testing.assert_allclose(ny.canonical_correlations_, ex.canonical_correlations_, atol=1e-6)
    u_e, u_n = ex.transform(x[:10]), ny.transform(x[:10])
    np.testing.assert_allclose(_match_columns(u_e, u_n), u_e, atol=1e-5)


def test_poly_and_rff_run_and_roundtrip(tmp_path, two_views):
    x, y = two_views
    p = Pairs({"a": x[:150], "b": y[:150]})
    for params in ({"kernel": "poly", "degree": 2}, {"kernel": "rbf", "method": "rff", "n_features": 300}):
        m = create_model("kcca", n_components=2, **params).fit(p)
        m.save(tmp_path / params["kernel"])
        back = load_model(tmp_path / params["kernel"])
        np.testing.assert_allclose(back.encode("b", y[:5]), m.encode("b", y[:5]), atol=1e-6)
        assert np.all(m.canonical_correlations_ > 0.5)


def test_median_heuristic_gamma(two_views):
    x, y = two_views
    m = KernelCCA(n_components=2).fit(x[:100], y[:100])
    d2 = ((x[:100, None] - x[None, :100]) ** 2).sum(-1)[np.triu_indices(100, 1)]
    assert m.kernel_params_[0]["gamma"] == pytest.approx(1 / np.median(d2))


def test_not_psd_kernel_is_an_error_or_clipped(two_views):
    x, y = two_views
    x, y = x[:80], y[:80]
    with pytest.raises(InputError, match="not positive semi-definite"):
        KernelCCA(n_components=2, kernel="sigmoid", gamma=1.0, coef0=-1.0).fit(x, y)
    neg = lambda a, b: np.tanh(a @ b.T) - 2 * (a @ b.T)  # noqa: E731  (a custom kernel, not PSD)
    with pytest.raises(InputError, match="not positive semi-definite"):
        KernelCCA(n_components=2, kernel=(neg, "linear")).fit(x, y)
    m = KernelCCA(n_components=2, kernel="sigmoid", gamma=1.0, coef0=-1.0, psd="clip").fit(x, y)
    assert np.all(np.isfinite(m.transform(x[:5])))


@pytest.mark.parametrize("gamma", [0.0, -1.0])
def test_gamma_must_be_positive(two_views, gamma):
    x, y = two_views
    with pytest.raises(InputError, match="gamma"):
        KernelCCA(n_components=2, gamma=gamma).fit(x, y)


def test_fewer_samples_than_components(two_views):
    x, y = two_views
    with pytest.raises(InputError, match="n_components"):
        KernelCCA(n_components=5).fit(x[:5], y[:5])


def test_views_with_different_sample_counts(two_views):
    x, y = two_views
    with pytest.raises(InputError, match="rows"):
        KernelCCA(n_components=2).fit(x[:50], y[:40])


def test_rff_needs_rbf(two_views):
    x, y = two_views
    with pytest.raises(InputError, match="rff"):
        KernelCCA(n_components=2, kernel="poly", method="rff").fit(x[:50], y[:50])


@pytest.mark.parametrize("method", ["exact", "rff"])
@pytest.mark.parametrize("seed", [-1, 1.5, "x", 2**32 - 1])
def test_random_state_must_be_a_seed(two_views, method, seed):
    x, y = two_views
    with pytest.raises(InputError, match="^random_state: expected an integer"):
        KernelCCA(n_components=2, method=method, random_state=seed).fit(x, y)


def test_passes_sklearn_check_estimator():
    from sklearn.utils.estimator_checks import check_estimator

    check_estimator(KernelCCA(n_components=1))


@pytest.mark.parametrize("method", ["exact", "nystroem"])
def test_a_kernel_that_overflows_is_refused_naming_the_view(two_views, method):
    x, y = two_views
    big = x * 1e60
    # by hand: the poly kernel of the largest row with itself, (gamma |x|^2 + coef0)^3, overflows float64
    with np.errstate(over="ignore"):
        assert not np.isfinite((np.max((big * big).sum(1)) / big.shape[1] + 1.0) ** 3)
    with pytest.raises(InputError, match=r"^kernel \(x\): expected finite kernel values, but the poly kernel"):
        KernelCCA(kernel="poly", method=method, n_features=50, n_components=2).fit(big, y)
    model = KernelCCA(kernel="poly", method=method, n_features=50, n_components=2).fit(x, y)
    with pytest.raises(InputError, match=r"^kernel \(y\): expected finite kernel values"):
        model.transform(x[:3], y[:3] * 1e150)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_callable_kernel_that_is_not_finite_is_refused(two_views, value):
    x, y = two_views
    def kernel(a, b):
        return np.full((len(a), len(b)), value)
    with pytest.raises(InputError, match=r"^kernel \(x\): expected finite kernel values, but the callable kernel"):
        KernelCCA(kernel=kernel, method="exact", n_components=2).fit(x[:40], y[:40])


@pytest.mark.parametrize("method", ["exact", "nystroem"])
def test_rbf_features_with_a_shared_offset_give_the_same_fit(two_views, method):
    """The rbf kernel depends on differences only: features 1e7 away from the origin (a
    timestamp, a coordinate in metres) fit as the same features near it."""
    x, y = two_views
    x = x[:120]
    y = np.tanh(y[:120])
    off = 1e7
    # by hand, from the differences themselves: exp(-gamma ||x_i - x_j||^2)
    diff = x[:, None, :] - x[None, :, :]
    d2 = (diff ** 2).sum(-1)
    gamma = 1.0 / np.median(d2[np.triu_indices(len(x), 1)])
    from jointspace.models._kernels import kernel_matrix

    spec = {"kernel": "rbf", "gamma": gamma, "degree": 3, "coef0": 1.0}
    np.testing.assert_allclose(kernel_matrix(x + off, x + off, spec), np.exp(-gamma * d2), atol=1e-7)
    near = KernelCCA(n_components=3, method=method, n_features=60).fit(x, y)
    far = KernelCCA(n_components=3, method=method, n_features=60).fit(x + off, y)
    assert far.kernel_params_[0]["gamma"] == pytest.approx(gamma, rel=1e-7)
    np.testing.assert_allclose(far.canonical_correlations_, near.canonical_correlations_, atol=1e-7)
    np.testing.assert_allclose(np.abs(far.transform(x[:5] + off)), np.abs(near.transform(x[:5])), atol=1e-6)


def _ridge_cca_by_hand(x, y, c, k):
    """Correlations of the canonical variables of the canonical ridge, from scipy's generalised eigh."""
    n = len(x)
    xc, yc = x - x.mean(0), y - y.mean(0)
    sxx, syy, sxy = xc.T @ xc / (n - 1), yc.T @ yc / (n - 1), xc.T @ yc / (n - 1)
    rx = (1 - c) * sxx + c * np.eye(x.shape[1])
    ry = (1 - c) * syy + c * np.eye(y.shape[1])
    _, wx = linalg.eigh(sxy @ np.linalg.solve(ry, sxy.T), rx)
    wx = wx[:, ::-1][:, :k]
    wy = np.linalg.solve(ry, sxy.T @ wx)
    return np.abs(_corr(xc @ wx, yc @ wy))


@pytest.mark.parametrize("offset", [1e3, 1e7])
@pytest.mark.parametrize("reg", [0.0, 0.3])
def test_exact_linear_kernel_of_features_with_an_offset_is_linear_ridge_cca(two_views, reg, offset):
    """Features sharing an offset: their linear kernel is taken between centred rows (the
    double centring removes the difference), and its symmetry is checked before centring.
    Before, the round-off of the offset's products was refused as 'not symmetric' (1e3) or
    'not positive semi-definite' (1e5 and more)."""
    x, y = two_views
    x, y = x[:150], y[:150]
    ker = KernelCCA(n_components=3, kernel="linear", reg=reg, method="exact").fit(x + offset, y)
    want = _ridge_cca_by_hand(x, y, reg, 3)
    np.testing.assert_allclose(ker.canonical_correlations_, want, atol=1e-8)
    u, v = ker.transform(x[:20] + offset, y[:20])
    lin = CCA(n_components=3, reg=reg).fit(x, y)
    ul, vl = lin.transform(x[:20], y[:20])
    np.testing.assert_allclose(_match_columns(ul, u), ul, atol=1e-6)
    np.testing.assert_allclose(_match_columns(vl, v), vl, atol=1e-6)
    # a kernel that is not symmetric is still refused
    with pytest.raises(InputError, match=r"^kernel \(x\): the kernel matrix is not symmetric"):
        KernelCCA(kernel=lambda a, b: a @ b.T + a[:, :1], method="exact", n_components=2).fit(x[:30], y[:30])


@pytest.mark.parametrize("method", ["exact", "nystroem"])
def test_default_count_stops_at_the_rank_of_the_kernels(method):
    """n_components=None on three distinct rows, each ten times: two pairs exist, and the
    default fits those (it raised 'n_components: ... got 4' though none was given)."""
    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(size=(3, 5)), 10, axis=0)
    y = np.repeat(rng.normal(size=(3, 4)), 10, axis=0) + 0.01 * rng.normal(size=(30, 4))
    ker = KernelCCA(kernel="linear", reg=0.0, method=method, n_features=20).fit(x, y)
    # by hand: cosines of the principal angles between the centred column spaces
    qx = linalg.orth(x - x.mean(0))
    qy = linalg.orth(y - y.mean(0))
    want = linalg.svd(qx.T @ qy, compute_uv=False)
    assert qx.shape[1] == 2 and ker.n_components_ == 2
    np.testing.assert_allclose(ker.canonical_correlations_, want, atol=1e-8)
    assert KernelCCA(method="exact").fit(x, y).n_components_ == 2   # rbf: rank 2 after centring
    with pytest.raises(InputError, match=r"^n_components: the kernel matrices have rank 2"):
        KernelCCA(kernel="linear", reg=0.0, method="exact", n_components=3).fit(x, y)
