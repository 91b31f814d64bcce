"""Multimodal autoencoders and VAEs: training, inference from any subset, generation, saving,
and bad input.  Small nets on scikit-learn's digits (features + texts) and on tiny pixel images."""

import re

import numpy as np
import pytest
import torch

from jointspace.data.datasets import load_dataset
from jointspace.data.pairs import Pairs
from jointspace.errors import InputError, TrainingDiverged
from jointspace.models.base import create_model, load_model
from jointspace.objectives.elbo import product_of_experts

GENERATIVE = ("ae", "aae", "mvae-poe", "mvae-moe", "mvae-mopoe", "beta-vae")
SMALL = {"latent_dim": 8, "hidden": [64], "batch_size": 128, "lr": 3e-3}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "test")


@pytest.fixture(scope="module")
def mopoe(digits):
    return create_model("mvae-mopoe", epochs=40, seed=0, **SMALL).fit(digits[0])


def _images(n=120, seed=0):
    """Tiny 6x6 pictures of two classes (a bright left half or a bright top half), with texts."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    img = np.zeros((n, 6, 6), dtype=np.uint8)
    img[labels == 0, :, :3] = 220
    img[labels == 1, :3, :] = 220
    img = np.clip(img + rng.integers(0, 30, img.shape), 0, 255).astype(np.uint8)
    texts = ["a bright left half" if c == 0 else "a bright top half" for c in labels]
    return Pairs({"image": img, "text": texts}, labels=labels)


@pytest.mark.parametrize("name", GENERATIVE)
def test_every_variant_learns_and_encodes(name, digits):
    train, test = digits
    model = create_model(name, epochs=12, seed=0, **SMALL).fit(train)
    losses = [row["val_loss"] for row in model.history_]
    assert losses[-1] < 0.8 * losses[0], losses
    for m in ("image", "text"):
        z = model.encode(m, test[m][:50], normalize=False)
        assert z.shape == (50, 8) and z.dtype == np.float32 and np.isfinite(z).all()
    # a linear probe of the latent from the image alone is far above chance (0.1)
    from sklearn.linear_model import LogisticRegression

    ztr = model.encode("image", train["image"])
    zte = model.encode("image", test["image"])
    acc = LogisticRegression(max_iter=2000).fit(ztr, train.labels).score(zte, test.labels)
    assert acc > 0.6, acc


def test_cross_modal_generation_keeps_the_class(mopoe, digits):
    train, test = digits
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=5000).fit(train["image"], train.labels)
    gen = mopoe.generate("image", {"text": test["text"]})
    assert gen.shape == (len(test), 64)
    assert np.mean(clf.predict(gen) == test.labels) > 0.8
    texts = mopoe.generate("text", {"image": test["image"]})
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    hits = [words[c] in t or str(c) in t for t, c in zip(texts, test.labels)]
    assert np.mean(hits) > 0.6


def test_generate_draws_n_samples_per_item_in_order(mopoe, digits):
    test = digits[1]
    out = mopoe.generate("image", {"text": test["text"][:3]}, n_samples=4, seed=1)
    assert out.shape == (12, 64)
    same = mopoe.generate("image", {"text": test["text"][:3]}, n_samples=4, seed=1)
    np.testing.assert_array_equal(out, same)
    # draws of one item scatter around that item's mean, not another's
    means = out.reshape(3, 4, 64).mean(1)
    assert np.linalg.norm(means[0] - means[1]) > 0 or test.labels[0] == test.labels[1]


def test_generation_decodes_in_bounded_chunks_with_the_same_result(mopoe, digits, monkeypatch):
    from jointspace.models import _generative_inference as inference

    test = digits[1]
    whole_images = mopoe.generate("image", {"text": test["text"][:5]}, n_samples=3, seed=2)
    whole_texts = mopoe.generate("text", {"image": test["image"][:5]}, n_samples=3, seed=2)
    whole_sample = mopoe.sample(7, seed=3)
    rows = []
    decode = mopoe.net_.decode
    monkeypatch.setattr(inference, "DECODE_ROWS", 4)
    monkeypatch.setattr(mopoe.net_, "decode", lambda m, z, *a: rows.append(len(z)) or decode(m, z, *a))
    # the same up to float32 rounding: a GEMM over 4 rows may sum in another order than over 15
    # (about 1e-7 of the row's largest value apart on some CPUs), while another draw differs by ~0.1
    np.testing.assert_allclose(mopoe.generate("image", {"text": test["text"][:5]}, n_samples=3, seed=2),
                               whole_images, rtol=1e-5, atol=1e-6 * np.abs(whole_images).max())
    assert rows == [4, 4, 4, 3]
    assert mopoe.generate("text", {"image": test["image"][:5]}, n_samples=3, seed=2) == whole_texts
    chunked = mopoe.sample(7, seed=3)
    for m in whole_sample:
        if isinstance(chunked[m], list):
            assert chunked[m] == whole_sample[m]
        else:
            np.testing.assert_allclose(chunked[m], whole_sample[m], rtol=1e-5,
                                       atol=1e-6 * np.abs(whole_sample[m]).max())


def test_posterior_from_any_subset(digits):
    train, test = digits
    model = create_model("mvae-poe", epochs=3, seed=0, **SMALL).fit(train)
    items = {"image": test["image"][:20], "text": test["text"][:20]}
    both = model.posterior_mean(items)
    x = model._to_tensors(items)
    with torch.no_grad():
        experts = [model.net_.expert(m, x[m]) for m in ("image", "text")]
    mu, _ = product_of_experts(torch.stack([e[0] for e in experts]), torch.stack([e[1] for e in experts]),
                               prior=True)
    np.testing.assert_allclose(both, mu.numpy(), atol=1e-5)
    # one modality: the product of that expert and the prior
    mu1, _ = product_of_experts(experts[0][0].unsqueeze(0), experts[0][1].unsqueeze(0), prior=True)
    np.testing.assert_allclose(model.posterior_mean({"image": items["image"]}), mu1.numpy(), atol=1e-5)
    np.testing.assert_allclose(model.encode("image", items["image"], normalize=False), mu1.numpy(), atol=1e-5)


def test_mixture_posterior_mean_averages_its_components(digits):
    train, test = digits
    model = create_model("mvae-moe", epochs=2, seed=0, **SMALL).fit(train)
    items = {"image": test["image"][:10], "text": test["text"][:10]}
    expected = (model.posterior_mean({"image": items["image"]}) + model.posterior_mean({"text": items["text"]})) / 2
    np.testing.assert_allclose(model.posterior_mean(items), expected, atol=1e-5)


def test_save_and_load_give_the_same_model(tmp_path, digits):
    train, test = digits
    for name in ("aae", "ae", "mvae-mopoe"):
        model = create_model(name, epochs=2, seed=0, **SMALL).fit(train)
        model.save(tmp_path / name)
        back = load_model(tmp_path / name)
        assert type(back) is type(model)
        np.testing.assert_array_equal(back.encode("text", test["text"][:30]), model.encode("text", test["text"][:30]))
        np.testing.assert_array_equal(back.generate("image", {"text": test["text"][:5]}, seed=3),
                                      model.generate("image", {"text": test["text"][:5]}, seed=3))
        assert back.sample(4, seed=2)["text"] == model.sample(4, seed=2)["text"]


def test_a_loaded_model_fitted_again_leaves_the_first_run_folder_alone(tmp_path, digits, monkeypatch):
    """The run folder is where a fit ran, not part of the model: a saved model records none,
    so fitting a loaded one again does not replace the first run's checkpoints."""
    train, _ = digits
    monkeypatch.chdir(tmp_path)
    create_model("ae", epochs=1, seed=0, run_dir="run", progress=True, **SMALL).fit(train).save("m")
    first = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    back = load_model("m")
    assert back.run_dir is None and back.progress is False
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    back.fit(train)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == first
    assert {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()} == before
    assert not (other / "run").exists()


def test_pixels_and_texts_round_trip(tmp_path):
    pairs = _images()
    model = create_model("mvae-mopoe", seed=0, **SMALL).fit(pairs)      # epochs chosen for ~2,000 steps
    assert model.epochs_ == 300
    rec = model.reconstruct({"image": pairs["image"][:8], "text": pairs["text"][:8]})
    assert rec["image"].shape == (8, 6, 6) and rec["image"].min() >= 0 and rec["image"].max() <= 1
    assert rec["text"] == list(pairs["text"][:8])
    gen = model.generate("image", {"text": ["a bright top half"]})
    assert gen[0, :3].mean() > gen[0, 3:].mean() + 0.3       # the top half is brighter
    drawn = model.sample(5)
    assert drawn["image"].shape == (5, 6, 6) and len(drawn["text"]) == 5
    from jointspace.eval.generative import generation_grid

    path = generation_grid(model, pairs, tmp_path / "grid.png", n=4)
    from PIL import Image

    assert Image.open(path).size[0] > 100


def test_bound_evaluation_tightens_with_importance_samples(mopoe, digits):
    test = digits[1]
    items = {"image": test["image"][:100], "text": test["text"][:100]}
    one = mopoe.evaluate_bound(items, n_samples=1, seed=0)
    many = mopoe.evaluate_bound(items, n_samples=64, seed=0)
    assert many["log_likelihood"] > one["elbo"]
    assert one["elbo"] == pytest.approx(-(one["nll/image"] + one["nll/text"]) - one["kl"], rel=1e-6)
    assert one["kl"] > 0


def test_bound_evaluation_decodes_a_bounded_number_of_draws_at_once(mopoe, digits, monkeypatch):
    BOUND_DRAWS = 2**16   # jointspace.models.vae.BOUND_DRAWS
    test = digits[1]
    items = {m: test[m][:40] for m in ("image", "text")}
    few = mopoe.evaluate_bound(items, n_samples=8, seed=1)
    seen = []
    real = type(mopoe)._bound_terms

    def counting(self, x, n_samples, generator):
        seen.append(len(next(iter(x.values()))) * n_samples)
        return real(self, x, n_samples, generator)

    monkeypatch.setattr(type(mopoe), "_bound_terms", counting)
    assert mopoe.evaluate_bound(items, n_samples=8, seed=1) == few   # small K: one chunk, as before
    k = BOUND_DRAWS // 16
    many = mopoe.evaluate_bound(items, n_samples=k, seed=1)
    assert max(seen) <= BOUND_DRAWS and sum(seen) == 40 * 8 + 40 * k
    assert many["log_likelihood"] >= few["log_likelihood"] - 0.5 and np.isfinite(many["elbo"])


def test_importance_weighted_training_runs(digits):
    model = create_model("mvae-poe", epochs=2, iw_samples=4, seed=0, **SMALL).fit(digits[0])
    assert np.isfinite(model.encode("text", digits[1]["text"][:5])).all()


def test_empty_or_too_few_inputs_are_refused(mopoe, digits):
    pictures = create_model("ae", epochs=1, **SMALL).fit(_images())
    with pytest.raises(InputError, match="expected at least one image, got an empty array"):
        pictures.encode("image", np.zeros((0, 6, 6), np.uint8))
    with pytest.raises(InputError, match="pairs: expected at least 2 pairs to learn from, got 1"):
        create_model("mvae-poe", epochs=1, **SMALL).fit(digits[0].subset(np.array([0])))
    with pytest.raises(InputError, match="val: expected a Pairs object"):
        create_model("mvae-poe", epochs=1, **SMALL).fit(digits[0], val={"text": digits[1]["text"]})
    # one target by its name, as a list of one
    one = mopoe.reconstruct({"text": digits[1]["text"][:2]}, targets="image")
    assert list(one) == ["image"]
    for targets in ([], 5):   # no target, or not a name
        with pytest.raises(InputError, match=f"targets: expected a modality name or a non-empty list of them, of "
                                             f"image, text; got {re.escape(repr(targets))}"):
            mopoe.reconstruct({"text": digits[1]["text"][:2]}, targets=targets)


@pytest.mark.parametrize("seed, shown", [(-1, "an integer >= 0, got -1"), (1.5, "an integer, got 1.5"),
                                         ("x", "an integer, got 'x'"), (2**70, f"an integer <= {2**32 - 1}")])
def test_a_bad_seed_of_a_draw_is_refused_by_name(mopoe, digits, seed, shown):
    text = digits[1]["text"][:2]
    for draw in (lambda: mopoe.generate("image", {"text": text}, seed=seed), lambda: mopoe.sample(2, seed=seed),
                 lambda: mopoe.evaluate_bound({"text": text, "image": digits[1]["image"][:2]}, seed=seed)):
        with pytest.raises(InputError, match=f"seed: expected {shown}"):
            draw()


def test_texts_that_are_not_a_list_are_refused_by_name(mopoe):
    for items in (None, 5):
        with pytest.raises(InputError, match=rf"given\['text'\]: expected a list of texts, got {type(items).__name__}"):
            mopoe.encode("text", items)


def test_every_modality_missing_is_refused(mopoe):
    with pytest.raises(InputError, match="every modality is missing"):
        mopoe.generate("image", {})
    with pytest.raises(InputError, match="every modality is missing"):
        mopoe.posterior_mean({})


def test_a_modality_the_model_was_not_trained_with_is_refused(mopoe, digits):
    with pytest.raises(InputError, match="trained with image, text; it knows no 'audio'"):
        mopoe.generate("image", {"audio": np.zeros((2, 5))})
    with pytest.raises(InputError, match="target: this model generates image, text; got 'audio'"):
        mopoe.generate("audio", {"text": ["a handwritten digit 1"]})
    with pytest.raises(InputError, match="modality"):
        mopoe.encode("audio", np.zeros((2, 64)))
    with pytest.raises(InputError, match="64 features"):
        mopoe.encode("image", np.zeros((2, 5)))
    with pytest.raises(InputError, match=r"given\['image'\]: expected a feature array of shape \(n, d\), got ndarray "
                                         r"of shape \(64,\)"):
        mopoe.encode("image", np.zeros(64))


def test_feature_rows_as_nested_lists_are_array_like(mopoe, digits):
    rows = digits[1]["image"][:3]
    np.testing.assert_array_equal(mopoe.encode("image", rows.tolist()), mopoe.encode("image", rows))
    with pytest.raises(InputError, match=r"given\['image'\]: expected a feature array of shape \(n, d\), got list$"):
        mopoe.encode("image", [[0.0] * 64, [0.0] * 3])
    with pytest.raises(InputError, match="items \\(image\\): expected 64 features, got 5"):
        mopoe.observed("image", np.zeros((2, 5)))


@pytest.mark.parametrize("param, value, match", [
    ("latent_dim", 0, "latent_dim: expected an integer >= 1, got 0"),
    ("beta", -0.5, "beta: expected a number >= 0.0, got -0.5"),
    ("beta", "strong", "beta: expected a finite number, got 'strong'"),
    ("beta", True, "beta: expected a finite number, got True"),
    ("iw_samples", 0, "iw_samples"),
    ("likelihood_weights", "loud", "likelihood_weights"),
    ("likelihoods", {"text": "gaussian"}, "likelihoods\\['text'\\]"),
    ("likelihoods", {"image": "bernoulli"}, "bernoulli needs values in \\[0, 1\\]"),
    ("seed", -1, "seed: expected an integer >= 0, got -1"),
    ("modalities", ["text", "text"], "modalities: expected each modality once, got 'text' more than once"),
    ("modalities", "text", "modalities: expected a list of modality names, e.g. \\['image', 'text'\\], got 'text'"),
    ("modalities", 2, "modalities: expected a list of modality names"),
])
def test_absurd_settings_are_refused_before_training(digits, param, value, match):
    with pytest.raises(InputError, match=match):
        create_model("mvae-mopoe", epochs=1, **{param: value}).fit(digits[0])


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, digits):
    from jointspace.train.checkpoint import checkpoint_dirs

    model = create_model("mvae-mopoe", epochs=5, seed=0, run_dir=str(tmp_path / "run"), **SMALL)
    real_loss = model._loss

    def poisoned(net, batch, step, epoch):
        loss, logs = real_loss(net, batch, step, epoch)
        return (loss * float("nan") if epoch is not None and epoch >= 2 else loss), logs

    model._loss = poisoned
    with pytest.raises(TrainingDiverged, match="nan") as err:
        model.fit(digits[0])
    assert "checkpoint" in str(err.value)
    kept = checkpoint_dirs(tmp_path / "run")
    assert [p.name for p in kept] and str(kept[-1]) in str(err.value)
    # the run goes on from that checkpoint once the cause is gone
    model._loss = real_loss
    model.fit(digits[0], resume=str(tmp_path / "run"))
    assert len(model.history_) == 5
    assert np.isfinite(model.encode("text", digits[1]["text"][:5])).all()


def test_mixture_prior_is_the_em_fit_of_the_aggregate_posterior(digits):
    from sklearn.mixture import GaussianMixture

    train = digits[0]
    model = create_model("mvae-mopoe", epochs=3, seed=0, prior_components=5, **SMALL).fit(train)
    # the same draws from the aggregate posterior, fitted independently by scikit-learn
    rows = np.sort(np.random.default_rng(0).choice(len(train) - round(0.1 * len(train)),
                                                   len(train) - round(0.1 * len(train)), replace=False))
    order = np.random.default_rng(0).permutation(len(train))
    fit_rows = np.sort(order[round(0.1 * len(train)):])
    x = model._to_tensors({m: train.subset(fit_rows)[m] for m in ("image", "text")})
    gen = torch.Generator().manual_seed(0)
    z = model._sample_posterior({m: v[rows] for m, v in x.items()}, 1, gen).double().numpy()
    gmm = GaussianMixture(5, covariance_type="diag", reg_covar=1e-4, random_state=0, max_iter=200).fit(z)
    net = model.net_
    np.testing.assert_allclose(net.prior_means.numpy(), gmm.means_, atol=1e-4)
    np.testing.assert_allclose(net.prior_logvars.exp().numpy(), gmm.covariances_, rtol=1e-3)
    np.testing.assert_allclose(net.prior_logweights.exp().numpy(), gmm.weights_, atol=1e-5)
    # latents drawn from the prior follow it: their mean is the mixture's mean
    drawn = model._prior_sample(20000, torch.Generator().manual_seed(1)).numpy()
    np.testing.assert_allclose(drawn.mean(0), gmm.weights_ @ gmm.means_, atol=0.1)
    # and a standard-normal model samples N(0, I)
    normal = create_model("mvae-mopoe", epochs=1, prior="normal", **SMALL).fit(train)
    assert normal.net_.prior_means is None
    assert abs(normal._prior_sample(20000, torch.Generator().manual_seed(1)).numpy().std() - 1) < 0.02
