"""Trainable towers: the uniform module / to_batch interface, shapes, determinism, gradients."""

import re

import numpy as np
import pytest
import torch

from jointspace.errors import InputError
from jointspace.towers import create_tower

RNG = np.random.default_rng(0)
ITEMS = {
    "image": [RNG.integers(0, 256, (20, 24, 3), dtype=np.uint8), RNG.integers(0, 256, (16, 16), dtype=np.uint8),
              RNG.integers(0, 256, (30, 10, 3), dtype=np.uint8)],
    "text": ["a red car", "two dogs playing in the snow", "x"],
    "audio": [RNG.normal(0, 0.1, 4000).astype(np.float32), RNG.normal(0, 0.1, 1000).astype(np.float32),
              RNG.normal(0, 0.1, 2500).astype(np.float32)],
}
SMALL = {"cnn": dict(image_size=16, widths=[8, 16]), "resnet": dict(image_size=16, widths=[8, 16], depths=[1, 1]),
         "vit": dict(image_size=16, patch_size=4, width=32, depth=1, heads=2),
         "bow": dict(embed_dim=16), "gru": dict(embed_dim=16, hidden=16),
         "transformer": dict(width=32, depth=1, heads=2), "audio-cnn": dict(n_mels=16, max_frames=16, widths=[8])}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_interface_shapes_determinism_and_gradients(name):
    tower = create_tower(name, out_dim=12, **SMALL[name])
    items = ITEMS[tower.modality]
    v = tower.embed(items, batch_size=2)
    assert v.shape == (3, 12) and v.dtype == np.float32 and tower.out_dim == 12
    assert np.isfinite(v).all()
    # same settings and seed -> same weights -> same vectors; a batch alone gives the same rows
    twin = create_tower(name, **tower.config())
    assert np.allclose(twin.embed(items), v, atol=1e-5)
    assert np.allclose(tower.embed(items[:1]), v[:1], atol=1e-5)
    other = create_tower(name, **{**tower.config(), "seed": 1})
    assert not np.allclose(other.embed(items), v)
    # the trainer's view: module(to_batch(items)) -> (n, out_dim) with gradients
    module = tower.module
    assert isinstance(module, torch.nn.Module)
    module.train()
    z = module(tower.to_batch(items))
    assert z.shape == (3, 12)
    z.pow(2).sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    assert module.training  # embed leaves the mode as it found it
    tower.embed(items)
    assert module.training


def test_batches_have_documented_form():
    img = create_tower("cnn", image_size=8, channels=1)
    x = img.to_batch([np.full((4, 4), 255, np.uint8)])
    assert x.shape == (1, 1, 8, 8) and torch.allclose(x, torch.full_like(x, 128 / 128))
    txt = create_tower("transformer").to_batch(["a red car", "hello"])
    assert txt["input_ids"].shape == txt["attention_mask"].shape and txt["input_ids"][0, 0].item() == 101
    assert txt["attention_mask"][1].tolist() == [1, 1, 1, 0, 0]  # [CLS] hello [SEP] + padding
    bow = create_tower("bow").to_batch(["a red car"])
    assert bow["input_ids"].tolist() == [[1037, 2417, 2482]]  # WordPiece ids, no special tokens


def test_bag_of_embeddings_is_a_mean():
    tower = create_tower("bow", embed_dim=4, out_dim=3)
    m = tower.module
    ids = tower.to_batch(["a red car"])["input_ids"][0]
    with torch.no_grad():
        ref = m.head(m.bag.weight[ids].mean(0, keepdim=True)).numpy()
    assert np.allclose(tower.embed(["a red car"]), ref, atol=1e-6)
    # padding does not change a text's vector
    assert np.allclose(tower.embed(["a red car", "a much longer text than the other one"])[0], ref[0], atol=1e-6)


def test_mlp_tower_and_bad_widths():
    tower = create_tower("mlp", in_dim=5, hidden=[7], out_dim=3)
    x = RNG.normal(size=(4, 5))
    m = tower.module.eval()
    with torch.no_grad():
        ref = m(torch.from_numpy(x.astype(np.float32))).numpy()
    assert np.allclose(tower.embed(x), ref, atol=1e-6)
    with pytest.raises(InputError, match="expected 5 features"):
        tower.to_batch(np.zeros((2, 4)))
    with pytest.raises(InputError, match="multiple of patch_size"):
        create_tower("vit", image_size=30, patch_size=8)


def test_cache_key_follows_the_weights():
    tower = create_tower("mlp", in_dim=3, hidden=[4], out_dim=2)
    k0 = tower.cache_key()
    assert k0 == create_tower("mlp", in_dim=3, hidden=[4], out_dim=2).cache_key()
    with torch.no_grad():
        next(tower.module.parameters()).add_(1.0)
    assert tower.cache_key() != k0


@pytest.mark.parametrize("name", ["bow", "gru", "transformer"])
def test_text_without_tokens_is_an_input_error(name):
    """A lone combining accent is visible text, but WordPiece normalisation leaves no token of it."""
    tower = create_tower(name, out_dim=4, **SMALL[name])
    accent = "\u0301"
    assert tower.tokenizer([accent], add_special_tokens=False)["input_ids"] == [[]]
    message = (r"^items\[{}\]: text has no tokens after the tokenizer's normalisation "
               r"\(e\.g\. only accents or control characters\), got '\u0301'$")
    with pytest.raises(InputError, match=message.format(0)):
        tower.embed([accent])
    with pytest.raises(InputError, match=message.format(1)):
        tower.to_batch(["a red car", accent])  # in a mixed batch too (bow gave only its bias)
    assert tower.to_batch(["a red car", "e" + accent])["attention_mask"].sum(1).min() >= 1


@pytest.mark.parametrize("name, params, needle", [
    ("cnn", {"widths": 16}, "widths: expected a list of integers >= 1, got 16"),
    ("cnn", {"widths": "16"}, "widths: expected a list of integers >= 1, got '16'"),
    ("resnet", {"depths": 2}, "depths: expected a list of integers >= 1, got 2"),
    ("audio-cnn", {"widths": 32}, "widths: expected a list of integers >= 1, got 32"),
    ("mlp", {"in_dim": 3, "hidden": 5}, "hidden: expected a list of integers >= 1, got 5"),
    ("mlp", {"in_dim": 3, "hidden": {"a": 1}}, "hidden: expected a list of integers >= 1, got {'a': 1}"),
])
def test_layer_sizes_given_as_one_number_or_a_string_name_the_argument(name, params, needle):
    with pytest.raises(InputError, match=re.escape(needle)):
        create_tower(name, **params)
    assert create_tower("mlp", in_dim=3, hidden=(4, 5)).hidden == [4, 5]
