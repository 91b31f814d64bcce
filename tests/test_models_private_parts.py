"""Shared and private parts of the dual encoder, with the regularisers between them."""

import numpy as np
import pytest

import jointspace as js
from cli_support import run
from jointspace.data.pairs import Pairs
from jointspace.errors import InputError
from jointspace.eval.redundancy import debiased_linear_cka
from jointspace.models.dual_encoder import DualEncoder

pytestmark = pytest.mark.usefixtures("one_thread")


def _views(n=800, seed=0):
    """Two views of a 3-d content code, each with its own style and one nuisance factor they
    share (so their private parts are redundant unless told otherwise)."""
    mix = np.random.default_rng(99)   # one pair of views for every sample set
    mix_a, mix_b = mix.normal(size=(8, 12)), mix.normal(size=(8, 10))
    rng = np.random.default_rng(seed)
    content = rng.normal(size=(n, 3))
    common = rng.normal(size=(n, 2))
    a = np.c_[content, rng.normal(size=(n, 3)), common] @ mix_a
    b = np.c_[content, rng.normal(size=(n, 3)), common] @ mix_b
    return Pairs({"a": (a + 0.05 * rng.normal(size=a.shape)).astype(np.float32),
                  "b": (b + 0.05 * rng.normal(size=b.shape)).astype(np.float32)})


def _fit(pairs, **params):
    base = dict(dim=4, private_dim=4, epochs=30, batch_size=100, lr=1e-2, val_fraction=0.0, seed=0)
    return DualEncoder(**{**base, **params}).fit(pairs)


def _private_redundancy(model, pairs):
    pa, pb = (model.encode_parts(m, pairs[m])["private"] for m in ("a", "b"))
    return debiased_linear_cka(pa, pb)


@pytest.fixture(scope="module")
def views():
    return _views(), _views(400, seed=1)


def test_parts_shapes_and_the_shared_part_is_the_joint_space(views, tmp_path):
    train, test = views
    model = _fit(train, private_dim=6, epochs=2)
    parts = model.encode_parts("a", test["a"])
    assert parts["shared"].shape == (400, 4) and parts["private"].shape == (400, 6)
    np.testing.assert_allclose(parts["shared"], model.encode("a", test["a"]), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(parts["private"], axis=1), 1.0, atol=1e-5)
    model.save(tmp_path / "m")
    again = js.load_model(tmp_path / "m")
    np.testing.assert_array_equal(again.encode_parts("b", test["b"])["private"],
                                  model.encode_parts("b", test["b"])["private"])
    assert DualEncoder(dim=4).fit(train).encode_parts("a", test["a"])["private"].shape == (400, 0)


def test_frobenius_and_hsic_cut_private_redundancy_and_keep_retrieval(views):
    from jointspace.eval.retrieval import evaluate_retrieval

    train, test = views
    plain = _fit(train)
    base_red = _private_redundancy(plain, test)
    base_map = evaluate_retrieval(plain, test, relevance="id")["a->b/mAP"]
    assert base_red > 0.08   # the shared nuisance factor lands in both private parts
    for spec in ("frobenius:10", "hsic:10"):
        model = _fit(train, regularizers=[spec])
        assert _private_redundancy(model, test) < base_red / 4, spec
        assert evaluate_retrieval(model, test, relevance="id")["a->b/mAP"] > 0.9 * base_map, spec


def test_lagrange_logs_the_multiplier_and_the_constraint(views, tmp_path):
    from jointspace.viz.curves import read_metrics

    train, _ = views
    model = _fit(train, regularizers=["lagrange:1"], epochs=3, run_dir=tmp_path / "run")
    cols = read_metrics(tmp_path / "run")
    mu, c = cols["mu"][~np.isnan(cols["mu"])], cols["constraint"][~np.isnan(cols["constraint"])]
    assert len(mu) >= 2 and np.all(mu >= 0) and mu.max() > 0   # raised while the constraint is violated
    assert np.all(c <= 1) and c[0] > 0
    state = model.net_.state_dict()
    mus = [lm.mu for lm in model.net_.regularizer.multipliers]   # one per constrained pair
    assert len(mus) == 3   # a-b private, and each modality's own shared-private pair
    assert mus == pytest.approx([float(state[f"regularizer.multipliers.{k}.mu_param"]) for k in range(3)])
    assert model.get_config()["regularizers"] == ["lagrange:1.0"]


@pytest.mark.parametrize("params, needle", [
    ({"private_dim": 0, "regularizers": ["frobenius"]}, "regularizers: they act between private parts"),
    ({"private_dim": 3, "regularizers": ["abs_dot"]}, "private_dim equal to dim \\(4\\); got private_dim=3"),
    ({"regularizers": ["orthogonal"]}, "unknown name 'orthogonal'"),
    ({"regularizers": ["frobenius:-1"]}, "^regularizers: expected a finite number >= 0"),
    ({"private_dim": -1}, "private_dim"),
    ({"recon_weight": -1.0}, "recon_weight"),
    ({"accum_steps": 2}, "accum_steps: private parts train without gradient accumulation"),
    ({"regularizers": ["auglag"], "batch_size": 3}, "batch_size: auglag reads its constraint on a batch of at least 4"),
])
def test_bad_settings_name_the_parameter(views, params, needle):
    with pytest.raises(InputError, match=needle):
        _fit(views[0], **params)


def test_cli_fit_with_private_parts_and_regularizers(tmp_path, capsys):
    out = tmp_path / "m"
    args = ["fit", "wikipedia", "--model", "clip", "--epochs", "1", "--batch-size", "128", "--param", "dim=8",
            "--param", "progress=false"]
    code, _, err = run(capsys, *args, "--private-dim", "8", "--regularizer", "hsic:2", "--regularizer", "lagrange",
                       "--out", str(out))
    assert code == 0, err
    model = js.load_model(out)
    assert model.private_dim == 8 and model.get_config()["regularizers"] == ["hsic:2.0", "lagrange:0.1"]
    test = js.load_dataset("wikipedia")["test"]
    assert model.encode_parts("text", test["text"][:3])["private"].shape == (3, 8)
    code, _, err = run(capsys, *args, "--regularizer", "frobenius", "--out", str(tmp_path / "bad"))
    assert code == 2 and err.strip() == ("error: --regularizer: frobenius acts between private parts, and the model "
                                         "has none; give --private-dim P (P > 0) too"), err
    code, _, err = run(capsys, *args, "--private-dim", "8", "--regularizer", "nope", "--out", str(tmp_path / "bad"))
    assert code == 2 and err.startswith("error: --regularizer: unknown name 'nope'"), err
    code, _, err = run(capsys, *args, "--private-dim", "8", "--regularizer", "hsic:-1", "--out", str(tmp_path / "bad"))
    assert code == 2 and err.startswith("error: --regularizer: expected a finite number >= 0, got -1"), err
    # parts of two sizes: abs_dot's refusal names the option that asked for it
    code, _, err = run(capsys, *args, "--private-dim", "4", "--regularizer", "abs_dot", "--out", str(tmp_path / "bad"))
    assert code == 2 and err.strip() == ("error: --regularizer: 'abs_dot' compares parts coordinate by coordinate, "
                                         "so it needs private_dim equal to dim (8); got private_dim=4"), err
    assert not (tmp_path / "bad").exists()
    # given as --param regularizers, the error names it (it named 'regularizer', neither option)
    code, _, err = run(capsys, *args, "--private-dim", "8", "--param", 'regularizers=["hsic:-1"]', "--out",
                       str(tmp_path / "bad"))
    assert code == 2 and err.strip() == "error: --param regularizers: expected a finite number >= 0, got -1.0", err
    code, _, err = run(capsys, "fit", "wikipedia", "--model", "cca", "--regularizer", "hsic", "--out",
                       str(tmp_path / "bad"))
    assert code == 2 and "--regularizer: model 'cca' does not use" in err
    # the note names every model with private parts: the dual encoder and the VAEs (it said clip alone)
    assert "--private-dim and --regularizer are for beta-vae, clip, mvae-moe, mvae-mopoe, mvae-poe)" in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


# -- private latents of the multimodal VAE -----------------------------------------------------------------
@pytest.fixture(scope="module")
def styled():
    """Two feature modalities sharing a class; each also has a strong style of its own."""
    rng = np.random.default_rng(0)
    mix = np.random.default_rng(7)
    ma, mb = mix.normal(size=(6, 10)), mix.normal(size=(6, 10))

    def make(n):
        c = rng.integers(0, 4, n)
        onehot = 3.0 * np.eye(4)[c]
        a = np.c_[onehot, 2.0 * rng.normal(size=(n, 2))] @ ma + 0.1 * rng.normal(size=(n, 10))
        b = np.c_[onehot, 2.0 * rng.normal(size=(n, 2))] @ mb + 0.1 * rng.normal(size=(n, 10))
        return Pairs({"a": a.astype(np.float32), "b": b.astype(np.float32)}, labels=c)

    return make(1200), make(300)


@pytest.fixture(scope="module")
def private_vae(styled):
    return js.create_model("mvae-mopoe", latent_dim=4, private_dim=4, regularizers=["frobenius"], hidden=[64],
                           epochs=40, batch_size=128, lr=3e-3, seed=0).fit(styled[0])


def test_vae_private_latents_carry_each_modality_s_style(private_vae, styled):
    _, test = styled
    model = private_vae
    parts = model.encode_parts("a", test["a"])
    assert parts["shared"].shape == (300, 4) and parts["private"].shape == (300, 4)
    np.testing.assert_allclose(parts["shared"], model.encode("a", test["a"], normalize=False), atol=1e-6)
    # rebuilding a from its own private latent beats the prior's mean for it: w_a holds a's style
    own = np.asarray(model.reconstruct({"a": test["a"], "b": test["b"]}, targets=["a"])["a"])
    from_b = np.asarray(model.reconstruct({"b": test["b"]}, targets=["a"])["a"])
    err_own, err_b = (float(np.mean((r - test["a"]) ** 2)) for r in (own, from_b))
    assert err_own < 0.7 * err_b, (err_own, err_b)
    # and the class still crosses over through z
    from sklearn.linear_model import LogisticRegression

    z_b = model.encode("b", test["b"])
    assert LogisticRegression(max_iter=1000).fit(z_b, test.labels).score(z_b, test.labels) > 0.9


def test_vae_private_latents_generate_bound_and_save(private_vae, styled, tmp_path):
    _, test = styled
    model = private_vae
    assert np.shape(model.generate("a", {"b": test["b"][:5]}, n_samples=3)) == (15, 10)
    assert np.shape(model.sample(4)["b"]) == (4, 10)
    items = {m: test[m][:100] for m in ("a", "b")}
    one, many = model.evaluate_bound(items, n_samples=1), model.evaluate_bound(items, n_samples=50)
    assert np.isfinite(one["elbo"]) and many["log_likelihood"] >= one["log_likelihood"] - 0.5
    model.save(tmp_path / "vae")
    again = js.load_model(tmp_path / "vae")
    np.testing.assert_array_equal(again.encode_parts("b", test["b"])["private"],
                                  model.encode_parts("b", test["b"])["private"])


@pytest.mark.parametrize("name", ["lagrange", "hsic"])
def test_vae_regularizers_train_on_an_epoch_s_last_few_rows(styled, name):
    """60 pairs in batches of 29 end each epoch on 2 rows, and the validation set has 3."""
    train, test = styled
    model = js.create_model("mvae-mopoe", latent_dim=4, private_dim=4, regularizers=[name], hidden=[16], epochs=2,
                            batch_size=29, seed=0).fit(train.subset(np.arange(60)), val=test.subset(np.arange(3)))
    assert len(model.history_) == 2 and all(np.isfinite(row["val_loss"]) for row in model.history_)
    assert f"reg/{name}" in model.history_[0]


@pytest.mark.parametrize("params, needle", [
    ({"regularizers": ["hsic"]}, "need private_dim > 0"),
    # the VAE's shared size is latent_dim (the message named dim, a parameter it does not have)
    ({"private_dim": 2, "regularizers": ["abs_dot"]}, "private_dim equal to latent_dim \\(4\\); got private_dim=2$"),
    ({"private_dim": 4, "iw_samples": 5}, "iw_samples: private latents train on the ELBO"),
    ({"private_dim": -2}, "private_dim"),
    ({"private_dim": 4, "regularizers": ["lagrange"], "batch_size": 3},
     "batch_size: lagrange is estimated on a batch of at least 4 pairs; got batch_size=3"),
    ({"private_dim": 4, "regularizers": ["club"], "batch_size": 1}, "batch_size: club .* at least 2 pairs"),
    ({"private_dim": 4, "regularizers": ["frobenius", "weight"]},
     "regularizers: 'weight' compares the output weights of separate shared and private heads, and a VAE's parts "
     "come from one encoder; use one of abs_dot, frobenius, lagrange"),
])
def test_vae_bad_private_settings(styled, params, needle):
    with pytest.raises(InputError, match=needle):
        js.create_model("mvae-mopoe", latent_dim=4, hidden=[16], epochs=1, **params).fit(styled[0])
