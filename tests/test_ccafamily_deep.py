"""Deep CCA loss pinned against linear CCA on the same outputs; DCCA / DCCAE surface."""

import numpy as np
import pytest
import torch

from jointspace import InputError, Pairs, create_model, load_model
from jointspace.errors import TrainingDiverged
from jointspace.models.cca import CCA, covariances, solve_cca
from jointspace.objectives.cca_loss import canonical_correlations, cca_loss

pytestmark = pytest.mark.usefixtures("one_thread")



@pytest.fixture
def batch():
    rng = np.random.default_rng(3)
    h1 = rng.normal(size=(64, 5))
    h2 = h1[:, :3] @ rng.normal(size=(3, 4)) + rng.normal(size=(64, 4))
    return h1, h2


def test_loss_equals_minus_linear_cca_correlations(batch):
    h1, h2 = batch
    loss = cca_loss(torch.tensor(h1), torch.tensor(h2), ridge=0.0)
    lin = CCA(n_components=4).fit(h1, h2)
    assert float(loss) == pytest.approx(-lin.canonical_correlations_.sum(), abs=1e-9)
    top2 = cca_loss(torch.tensor(h1, dtype=torch.float32), torch.tensor(h2, dtype=torch.float32), n_components=2,
                    ridge=0.0)
    assert float(top2) == pytest.approx(-lin.canonical_correlations_[:2].sum(), abs=1e-5)


def test_ridge_matches_canonical_ridge(batch):
    """S + r I = (1 + r) ((1 - c) S + c I) with c = r / (1 + r): correlations scale by 1 / (1 + r)."""
    h1, h2 = batch
    r = 0.25
    rho = canonical_correlations(torch.tensor(h1), torch.tensor(h2), ridge=r).numpy()
    _, _, cxx, cyy, cxy = covariances(h1, h2)
    _, _, s = solve_cca(cxx, cyy, cxy, 4, (r / (1 + r), r / (1 + r)))
    np.testing.assert_allclose(rho, s / (1 + r), atol=1e-10)


def test_loss_gradient_is_finite_and_matches_finite_differences(batch):
    h1, h2 = batch
    t1 = torch.tensor(h1[:20, :3], requires_grad=True)
    t2 = torch.tensor(h2[:20, :2])
    torch.autograd.gradcheck(lambda a: cca_loss(a, t2, ridge=1e-2), (t1,), eps=1e-6, atol=1e-5)
    tied = torch.ones(20, 3, dtype=torch.float64, requires_grad=True)  # zero variance: ridge keeps it finite
    cca_loss(tied, t2, ridge=1e-3).backward()
    assert torch.isfinite(tied.grad).all()


def test_batch_smaller_than_output_dimension(batch):
    h1, h2 = batch
    with pytest.raises(InputError, match="batch"):
        cca_loss(torch.tensor(h1[:4]), torch.tensor(h2[:4]))
    # Without a ridge m centred samples span m - 1 dimensions: m = d is singular, m = d + 1 is not.
    wide = torch.tensor(np.random.default_rng(1).normal(size=(21, 20)))
    t1, t2 = wide[:20], torch.tensor(h2[:20])
    with pytest.raises(InputError, match="at least 21 samples"):
        cca_loss(t1, t2, ridge=0.0)
    assert torch.isfinite(cca_loss(wide, torch.tensor(h2[:21]), ridge=0.0))
    assert torch.isfinite(cca_loss(t1, t2, ridge=1e-3))   # a ridge makes m = d enough
    x = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.raises(InputError, match="batch_size"):
        create_model("dcca", n_components=2, out_dim=8, batch_size=4).fit(x, x)
    with pytest.raises(InputError, match="expected batch_size >= 9"):
        create_model("dcca", n_components=2, out_dim=8, batch_size=8, ridge=0.0).fit(x, x)
    # the output size set by n_components alone (no out_dim) is named as n_components
    with pytest.raises(InputError, match=r"^n_components: .*expected n_components <= 7 or batch_size >= 10, got 9"):
        create_model("dcca", n_components=9, batch_size=8, ridge=0.0).fit(x, x)
    with pytest.raises(InputError, match=r"^n_components: expected fewer output dimensions than the 50 samples.*got 60"):
        create_model("dcca", n_components=60, batch_size=64).fit(x, x)
    with pytest.raises(InputError, match=r"^out_dim: expected fewer output dimensions than the 50 samples.*got 60"):
        create_model("dcca", n_components=2, out_dim=60, batch_size=64).fit(x, x)
    with pytest.raises(InputError, match="hidden: expected a list of hidden-layer widths"):
        create_model("dcca", n_components=2, hidden=64).fit(x, x)
    with pytest.raises(InputError, match="hidden: expected an integer <= 16384"):
        create_model("dcca", n_components=2, hidden=[10 ** 9]).fit(x, x)


def test_views_with_different_sample_counts():
    x = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.raises(InputError, match="same number of samples"):
        create_model("dcca", n_components=2).fit(x, x[:40])


def test_one_view_twice_and_a_diverging_run_are_refused():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(120, 6))
    p = Pairs({"a": a, "b": a[:, :4] + 0.5 * rng.normal(size=(120, 4))})
    with pytest.raises(InputError, match="modalities: expected each modality once"):
        create_model("dcca", n_components=2, modalities=("a", "a")).fit(p)
    with pytest.raises(TrainingDiverged, match="training diverged.*lower the learning rate"):
        create_model("dccae", n_components=2, epochs=3, lr=1e8).fit(p)


@pytest.mark.parametrize("seed", [-1, 1.5, "x", 2**32])
def test_random_state_must_be_a_seed(seed):
    x = np.random.default_rng(0).normal(size=(40, 3))
    with pytest.raises(InputError, match="^random_state: expected an integer"):
        create_model("dcca", n_components=2, epochs=1, random_state=seed).fit(x, x[:, :2])


def test_three_modalities_need_the_two_named():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(60, 6))
    p = Pairs({"a": a, "b": a[:, :4] + 0.5 * rng.normal(size=(60, 4)), "c": a[:, 2:] + rng.normal(size=(60, 4))})
    with pytest.raises(InputError, match=r"modalities: these pairs have 3 modalities \(a, b, c\); name the two"):
        create_model("dcca", n_components=2, epochs=1).fit(p)
    named = create_model("dcca", n_components=2, epochs=1, modalities=["a", "c"]).fit(p)
    assert named.modalities_ == ("a", "c")
    ref = create_model("dcca", n_components=2, epochs=1).fit(p.select(["a", "c"]))
    np.testing.assert_array_equal(named.encode("c", p["c"]), ref.encode("c", p["c"]))


@pytest.mark.parametrize("name", ["dcca", "dccae"])
def test_training_raises_correlation_and_roundtrips(tmp_path, name):
    rng = np.random.default_rng(0)
    t = rng.uniform(-2, 2, size=(300, 2))
    x = np.c_[np.sin(2 * t), t ** 2] + 0.05 * rng.normal(size=(300, 4))
    y = np.c_[np.cos(t), t[:, ::-1] ** 3] + 0.05 * rng.normal(size=(300, 4))
    p = Pairs({"a": x, "b": y})
    untrained = create_model(name, n_components=2, out_dim=4, hidden=(32,), epochs=0, batch_size=100).fit(p)
    m = create_model(name, n_components=2, out_dim=4, hidden=(32,), epochs=15, batch_size=100, lr=1e-2).fit(p)
    assert m.loss_curve_[-1] < m.loss_curve_[0]
    assert m.cca_.canonical_correlations_.sum() > untrained.cca_.canonical_correlations_.sum()
    m.save(tmp_path / name)
    back = load_model(tmp_path / name)
    np.testing.assert_allclose(back.encode("b", y[:7]), m.encode("b", y[:7]), atol=1e-6)


def test_dccae_reconstruction_term_is_the_squared_error_per_element():
    from jointspace.models.deep_cca import reconstruction_error

    x = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    rebuilt = torch.tensor([[1.0, 0.0, 3.0], [1.0, 1.0, 1.0]])
    # squared norms per row: 4 and 3; per element: 7 / (2 rows * 3 features)
    assert float(reconstruction_error(rebuilt, x)) == pytest.approx(7 / 6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(ridge=float("nan")), r"^ridge: expected a finite number, got nan$"),
    (dict(ridge=float("inf")), r"^ridge: expected a finite number, got inf$"),
    (dict(ridge="0.1"), r"^ridge: expected a finite number, got '0.1'$"),
    (dict(ridge=(0.1, 0.2, 0.3)), r"^ridge: expected a number >= 0 or a pair of them"),
    (dict(ridge=-0.1), r"^ridge: expected a number >= 0.0, got -0.1$"),
    (dict(eps=-1.0), r"^eps: expected a number > 0.0, got -1.0$"),
    (dict(n_components=2.7), r"^n_components: expected an integer, got 2.7$"),
    (dict(n_components=True), r"^n_components: expected an integer, got True$"),
    (dict(n_components=5), r"^n_components: expected an integer <= 4, got 5$"),
])
def test_loss_arguments_are_checked_naming_them(batch, kwargs, match):
    h1, h2 = batch
    with pytest.raises(InputError, match=match):
        cca_loss(torch.tensor(h1), torch.tensor(h2), **kwargs)


def test_loss_top_k_is_the_closed_form_sum(batch):
    """n_components=k sums the k largest singular values of S11^-1/2 S12 S22^-1/2 (computed here by hand)."""
    h1, h2 = batch
    a, b = h1 - h1.mean(0), h2 - h2.mean(0)
    n = len(a)
    w1 = np.linalg.inv(np.linalg.cholesky(a.T @ a / (n - 1) + 0.1 * np.eye(5)))
    w2 = np.linalg.inv(np.linalg.cholesky(b.T @ b / (n - 1) + 0.2 * np.eye(4)))
    rho = np.linalg.svd(w1 @ (a.T @ b / (n - 1)) @ w2.T, compute_uv=False)
    for k in (1, 2, np.int64(3)):
        got = cca_loss(torch.tensor(h1), torch.tensor(h2), n_components=k, ridge=(0.1, 0.2))
        assert float(got) == pytest.approx(-rho[:k].sum(), abs=1e-10)


def test_a_batch_with_nan_or_a_singular_covariance_is_named(batch):
    h1, h2 = batch
    bad = h1.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError, match=r"^h1: expected finite values, got NaN or inf$"):
        cca_loss(torch.tensor(bad), torch.tensor(h2))
    const = np.c_[h2, np.full(len(h2), 2.5)]   # a dead output: constant over the batch
    with pytest.raises(InputError, match=r"^h2: the covariance of the 5-dimensional outputs is singular with ridge 0"):
        cca_loss(torch.tensor(h1), torch.tensor(const), ridge=0.0)
    # with a ridge the constant output adds a zero correlation: the closed form of the other four
    rho = canonical_correlations(torch.tensor(h1), torch.tensor(const), ridge=0.1).numpy()
    a, b = h1 - h1.mean(0), h2 - h2.mean(0)
    n = len(a)
    w1 = np.linalg.inv(np.linalg.cholesky(a.T @ a / (n - 1) + 0.1 * np.eye(5)))
    w2 = np.linalg.inv(np.linalg.cholesky(b.T @ b / (n - 1) + 0.1 * np.eye(4)))
    want = np.linalg.svd(w1 @ (a.T @ b / (n - 1)) @ w2.T, compute_uv=False)
    np.testing.assert_allclose(rho[:4], want, atol=1e-10)
    assert rho[4] == pytest.approx(np.sqrt(1e-9))   # the eps floor


def test_networks_whose_outputs_become_nan_are_reported_as_diverged(monkeypatch):
    import jointspace.models.deep_cca as D

    class Poisoned(torch.nn.Module):
        def forward(self, h):
            return h * float("nan")

    real = D._mlp
    monkeypatch.setattr(D, "_mlp", lambda torch_, sizes: torch.nn.Sequential(real(torch_, sizes), Poisoned()))
    x = np.random.default_rng(0).normal(size=(40, 4))
    with pytest.raises(TrainingDiverged, match="outputs became NaN or inf in epoch 1"):
        create_model("dcca", n_components=2, hidden=(8,), epochs=1, batch_size=20).fit(x, x[:, :3])


def test_a_deep_cca_fit_is_checkpointed_and_resumes_exactly(tmp_path):
    """Deep CCA trains with the package's trainer: checkpoints and metrics.csv in run_dir,
    and an interrupted fit continued from them ends with the weights of an uninterrupted one."""
    import csv

    from jointspace.train.checkpoint import checkpoint_dirs

    rng = np.random.default_rng(0)
    x = rng.normal(size=(102, 5))
    y = np.c_[np.tanh(x[:, :2]), x[:, 2:3] ** 2] + 0.1 * rng.normal(size=(102, 3))
    settings = dict(n_components=2, out_dim=3, hidden=(16,), epochs=4, batch_size=25, lr=1e-2)
    ref = create_model("dccae", **settings).fit(x, y)
    # 102 rows in batches of 25: a 2-row tail is too few for 3-d covariances, so 4 steps an epoch
    assert ref.train_result_.steps == 16 and len(ref.loss_curve_) == 4

    class Stop(Exception):
        pass

    def stop_after_6(step, loss):
        if step == 6:
            raise Stop

    import jointspace.train.generic as G

    real = G.fit_module
    run = tmp_path / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(G, "fit_module", lambda *a, **kw: real(*a, **{**kw, "step_callback": stop_after_6}))
        with pytest.raises(Stop):
            create_model("dccae", **settings, run_dir=run).fit(x, y)
    assert [p.name for p in checkpoint_dirs(run)] == ["step-00000004"]
    back = create_model("dccae", **settings, run_dir=run).fit(x, y, resume=run)
    assert back.train_result_.steps == 16 and back.loss_curve_ == pytest.approx(ref.loss_curve_, abs=0)
    np.testing.assert_array_equal(back.encode("y", y[:9]), ref.encode("y", y[:9]))
    with open(run / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {"correlation", "reconstruction"} <= set(rows[0]) and rows[-1]["step"] == "16"
    assert back.get_config()["run_dir"] is None   # where it ran is not saved with the model


def test_features_sharing_an_offset_train_as_the_centred_features():
    """Views 1e7 away from the origin (float32 keeps 7 digits: 300 values fell on 7) are
    centred in float64 first, so they fit as the same views near it."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6))
    y = np.tanh(x[:, :3]) + 0.2 * rng.normal(size=(300, 3))
    params = dict(n_components=2, hidden=(16,), epochs=5, batch_size=100)
    near = create_model("dcca", **params).fit(x, y)
    far = create_model("dcca", **params).fit(x + 1e7, y - 1e7)
    np.testing.assert_allclose(far.cca_.canonical_correlations_, near.cca_.canonical_correlations_, atol=1e-5)
    # the final CCA by hand on the network outputs: canonical ridge c = r / (1 + r), scipy's eigh
    from scipy import linalg

    hx, hy = far._outputs(0, x + 1e7), far._outputs(1, y - 1e7)
    a, b, c = hx - hx.mean(0), hy - hy.mean(0), 1e-3 / (1 + 1e-3)
    sab = a.T @ b / 299
    rx = (1 - c) * a.T @ a / 299 + c * np.eye(a.shape[1])
    ry = (1 - c) * b.T @ b / 299 + c * np.eye(b.shape[1])
    wx = linalg.eigh(sab @ np.linalg.solve(ry, sab.T), rx)[1][:, ::-1][:, :2]
    u, v = a @ wx, b @ np.linalg.solve(ry, sab.T @ wx)
    rho = [abs(np.corrcoef(u[:, k], v[:, k])[0, 1]) for k in range(2)]
    np.testing.assert_allclose(far.cca_.canonical_correlations_, rho, atol=1e-8)
    np.testing.assert_allclose(far.encode("x", x[:5] + 1e7), near.encode("x", x[:5]), atol=1e-4)


def test_a_refused_refit_leaves_a_model_that_saves_and_loads(tmp_path):
    """A refit refused after out_dim_ was set kept the new out_dim_ beside the old networks:
    the saved model then failed to load (size mismatch)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 6))
    y = x[:, :3] + rng.normal(size=(100, 3))
    params = dict(n_components=2, out_dim=3, hidden=(8,), epochs=1, batch_size=50)
    fresh = create_model("dcca", **params).fit(x, y)
    model = create_model("dcca", **params).fit(x, y)
    with pytest.raises(InputError, match="^batch_size: a batch of 2"):
        model.set_params(out_dim=5, batch_size=2).fit(x, y)
    model.set_params(out_dim=3, batch_size=50)
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    for m in (model, loaded):
        np.testing.assert_array_equal(m.transform(x[:5]), fresh.transform(x[:5]))


@pytest.mark.parametrize("weight, match", [(100, r"^weight: expected a number <= 16, got 100"),
                                           (-1, r"^weight: expected a number >= 0")])
def test_a_bad_weight_is_refused_before_the_networks_train(monkeypatch, weight, match):
    from jointspace.models.deep_cca import DeepCCA

    def trained(*args, **kwargs):
        raise AssertionError("the networks were trained before weight was checked")

    monkeypatch.setattr(DeepCCA, "_train", trained)
    x = np.random.default_rng(0).normal(size=(40, 3))
    with pytest.raises(InputError, match=match):
        create_model("dcca", n_components=2, epochs=1, weight=weight).fit(x, x[:, :2])
