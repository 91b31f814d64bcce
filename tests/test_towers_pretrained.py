"""The frozen pretrained towers: EfficientNet-Lite0 and all-MiniLM-L6-v2, offline."""

import numpy as np
import pytest
import torch

from jointspace.towers import create_tower


def _runtimes():
    from jointspace.towers.runtime import onnx_available

    return ["torch", "onnx"] if onnx_available() else ["torch"]


# every check runs on each runtime: the tower equals the network on both
@pytest.fixture(scope="module", params=_runtimes())
def effnet(request):
    return create_tower("efficientnet-lite0", runtime=request.param)


@pytest.fixture(scope="module", params=_runtimes())
def minilm(request):
    return create_tower("minilm", runtime=request.param)


def test_efficientnet_input_scaling_by_hand(effnet):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)  # already network size: no resampling
    x = effnet.preprocess([img]).numpy()
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    # channel-first, (x - 127) / 128 by hand, pixel by pixel for a few pixels
    for (r, c, ch) in [(0, 0, 0), (5, 9, 1), (223, 100, 2)]:
        assert x[0, ch, r, c] == pytest.approx((int(img[r, c, ch]) - 127) / 128)
    assert np.allclose(x[0], (img.transpose(2, 0, 1).astype(np.float64) - 127) / 128)
    # a tiny constant image stays constant through resizing: every input value is (v - 127) / 128
    tiny = np.full((2, 2, 3), (0, 127, 255), dtype=np.uint8)
    t = effnet.preprocess([tiny]).numpy()[0]
    assert np.allclose(t[0], -127 / 128) and np.allclose(t[1], 0) and np.allclose(t[2], 1.0)
    # a non-square image is letterboxed on white (255 -> 127/128 - ... = 1.0) by default
    wide = np.zeros((2, 4, 3), dtype=np.uint8)
    t = effnet.preprocess([wide]).numpy()[0]
    assert np.allclose(t[:, 0], 1.0) and np.allclose(t[:, 112], -127 / 128)


def test_efficientnet_shapes_pooling_and_determinism(effnet):
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8), rng.integers(0, 256, (30, 30), dtype=np.uint8),
            rng.integers(0, 256, (64, 32, 3), dtype=np.uint8)]
    v = effnet.embed(imgs, batch_size=2, progress=False)
    assert v.shape == (3, 1280) and v.dtype == np.float32 and effnet.out_dim == 1280
    fmap = effnet.feature_map(imgs)
    assert fmap.shape == (3, 1280, 7, 7) and fmap.dtype == np.float32
    # the pooled feature is the global average of the last feature map
    assert np.allclose(v, fmap.mean(axis=(2, 3)), atol=1e-5)
    # batch size does not change the result, nor does running twice
    assert np.allclose(v, effnet.embed(imgs, batch_size=3), atol=1e-5)
    assert np.array_equal(v, effnet.embed(imgs, batch_size=2))
    # the same as the network's own forward up to its classifier
    with torch.no_grad():
        ref = effnet.network.extract_features(effnet.preprocess(imgs)).mean(dim=(2, 3)).numpy()
    assert np.allclose(v, ref, atol=1e-5)
    assert not any(p.requires_grad for p in effnet.network.parameters())


def test_efficientnet_multi_level_pooling_against_forward_hooks(effnet):
    from jointspace.errors import InputError
    from jointspace.towers.efficientnet import BLOCK_CHANNELS

    rng = np.random.default_rng(2)
    imgs = [rng.integers(0, 256, (48, 40, 3), dtype=np.uint8) for _ in range(3)]
    tower = create_tower("efficientnet-lite0", pool_blocks=[14, 10], runtime=effnet.runtime)
    v = tower.embed(imgs, progress=False)
    assert tower.out_dim == 192 + 112 + 1280 == v.shape[1]
    assert BLOCK_CHANNELS[14] == 192 and BLOCK_CHANNELS[10] == 112
    # independent: hooks on the network's own blocks during its own extract_features
    seen = {}
    hooks = [effnet.network._blocks[i].register_forward_hook(
        lambda mod, inp, out, i=i: seen.__setitem__(i, out.mean(dim=(2, 3)))) for i in (10, 14)]
    try:
        with torch.no_grad():
            last = effnet.network.extract_features(effnet.preprocess(imgs)).mean(dim=(2, 3))
    finally:
        for h in hooks:
            h.remove()
    assert np.allclose(v[:, :192], seen[14].numpy(), atol=1e-5)
    assert np.allclose(v[:, 192:304], seen[10].numpy(), atol=1e-5)
    assert np.allclose(v[:, 304:], last.numpy(), atol=1e-5)
    assert np.allclose(v[:, 304:], effnet.embed(imgs, progress=False), atol=1e-5)
    # the cache key changes with the blocks, and not at all without them
    assert tower.config()["pool_blocks"] == [14, 10] and "pool_blocks" not in effnet.config()
    for bad in (16, [3, 3], "10", [-1]):
        with pytest.raises(InputError, match="pool_blocks"):
            create_tower("efficientnet-lite0", pool_blocks=bad if not isinstance(bad, int) else [bad])


def test_efficientnet_recognises_a_simple_picture(effnet):
    # the ImageNet head over our pooled features must be a valid classifier: logits == fc(pooled)
    img = np.zeros((224, 224, 3), np.uint8)
    img[:, :112] = 255
    v = effnet.embed([img])
    with torch.no_grad():
        logits = effnet.network(effnet.preprocess([img])).numpy()
        fc = effnet.network._fc
        mine = fc(torch.from_numpy(v)).numpy()
    assert np.allclose(logits, mine, atol=1e-4)


def test_minilm_matches_sentence_transformers(minilm):
    texts = ["a red car", "two dogs playing in the snow", "Tree"]
    v = minilm.embed(texts, batch_size=2)
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    ref = minilm.model.encode(texts)
    assert np.allclose(v, ref, atol=1e-5)
    assert np.array_equal(v, minilm.embed(texts, batch_size=2))
    # meaning: the car sentence is closer to "an automobile" than to "a snowy dog"
    q = minilm.embed(["an automobile"])[0]
    assert q @ v[0] > q @ v[1]


def test_minilm_token_vectors_pool_to_the_sentence_vector(minilm):
    texts = ["a red car", "two dogs playing in the snow"]
    toks = minilm.token_vectors(texts)
    assert [t.shape[1] for t in toks] == [384, 384]
    assert toks[0].shape[0] == len(minilm.model.tokenizer("a red car")["input_ids"])
    pooled = np.stack([t.mean(0) for t in toks])
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    assert np.allclose(pooled, minilm.embed(texts), atol=1e-5)


@pytest.mark.parametrize("max_tokens", [0, -1, 2.5, "3", True])
def test_minilm_word_pieces_max_tokens_is_a_positive_integer(max_tokens):
    from jointspace.errors import InputError

    with pytest.raises(InputError, match="max_tokens: expected an integer"):
        create_tower("minilm", runtime="torch").word_pieces(["a red airplane"], max_tokens=max_tokens)


def test_pretrained_configs_rebuild(effnet, minilm):
    assert create_tower("efficientnet-lite0", **effnet.config()).config() == effnet.config()
    assert create_tower("minilm", **minilm.config()).config() == minilm.config()


def test_efficientnet_jpeg_draft_keeps_the_vector_of_a_large_photo(tmp_path):
    from PIL import Image
    from skimage import data

    from jointspace.errors import InputError

    path = tmp_path / "photo.jpg"
    Image.fromarray(data.astronaut()).resize((2000, 1500), Image.Resampling.BICUBIC).save(path, quality=90)
    fast = create_tower("efficientnet-lite0")
    full = create_tower("efficientnet-lite0", jpeg_draft=False)
    # the fast tower decodes at 1/2 scale (min(2000 // 448, 1500 // 448) = 3 -> 2: 1000 x 750),
    # the other every pixel
    a, b = fast.embed([str(path)], progress=False)[0], full.embed([str(path)], progress=False)[0]
    assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) >= 0.999
    assert not np.array_equal(a, b)
    # recorded only when off, so features cached at the default keep their key
    assert "jpeg_draft" not in fast.config() and full.config()["jpeg_draft"] is False
    assert create_tower("efficientnet-lite0", **full.config()).jpeg_draft is False
    assert fast.cache_key() != full.cache_key()
    with pytest.raises(InputError, match="jpeg_draft: expected True or False, got 'yes'"):
        create_tower("efficientnet-lite0", jpeg_draft="yes")


@pytest.mark.skipif("onnx" not in _runtimes(), reason="ONNX Runtime is not installed")
def test_efficientnet_cut_graph_gives_the_outputs_of_the_whole_graph():
    import onnx

    from jointspace.towers import efficientnet
    from jointspace.towers.runtime import onnx_session

    tower = create_tower("efficientnet-lite0", runtime="onnx")
    x = tower.pixels([np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8) for _ in range(3)])
    whole = tower.session
    for outputs in (["pooled"], ["block3", "pooled"], ["feature_map"]):
        path = efficientnet._onnx_part(tuple(outputs))
        assert path != efficientnet._onnx_file()
        assert [o.name for o in onnx_session(path).get_outputs()] == outputs
        for got, want in zip(tower._run_session(x, outputs), whole.run(outputs, {"pixels": x})):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # the 16 block averages are gone from the graph that only pools the head
    nodes = {p: len(onnx.load(str(p), load_external_data=False).graph.node)
             for p in (efficientnet._onnx_file(), efficientnet._onnx_part(("pooled",)))}
    assert list(nodes.values())[1] <= list(nodes.values())[0] - 16
    assert efficientnet._onnx_part(tuple(efficientnet._onnx_outputs())) == efficientnet._onnx_file()
    with pytest.raises(ValueError, match="no output 'logits'"):
        efficientnet._onnx_part(("logits",))


@pytest.mark.parametrize("bad", [0, -1, 1e9, 2.5])
def test_feature_map_refuses_a_batch_size_that_is_not_a_count(effnet, bad):
    from jointspace.errors import InputError

    img = np.random.default_rng(2).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    with pytest.raises(InputError, match=r"^batch_size: expected an integer"):
        effnet.feature_map([img], batch_size=bad)
    # one image per pass is the map of the whole batch, and its average is the pooled vector
    fmap = effnet.feature_map([img, img[::-1]], batch_size=1)
    assert np.allclose(fmap.mean(axis=(2, 3)), effnet.embed([img, img[::-1]], progress=False), atol=1e-5)
