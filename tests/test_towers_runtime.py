"""Tower runtimes: ONNX Runtime gives the float32 PyTorch vectors; the choice is explicit and recorded."""

import os
import time
import warnings
import zlib

import numpy as np
import pytest

from jointspace.errors import InputError
from jointspace.towers import create_tower
from jointspace.towers import runtime as rt

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

#: the equality the faster runtime must keep with the float32 PyTorch path
MIN_COSINE = 0.999


def _cosines(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _test_images():
    """Photos bundled with scikit-image when installed, plus drawings and noise of odd sizes."""
    from PIL import Image, ImageDraw

    imgs = []
    try:
        import skimage.data as skd

        imgs += [skd.astronaut(), skd.coffee(), skd.chelsea(), skd.camera(), skd.rocket()]
    except ImportError:
        pass
    rng = np.random.default_rng(0)
    for i in range(4):
        img = Image.new("RGB", (200 + 40 * i, 150), "white")
        draw = ImageDraw.Draw(img)
        for _ in range(5):
            x0, y0 = int(rng.integers(0, 150)), int(rng.integers(0, 100))
            draw.ellipse([x0, y0, x0 + 60, y0 + 40], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        imgs.append(np.asarray(img))
    imgs.append(rng.integers(0, 256, (37, 91, 3), dtype=np.uint8))
    return imgs


TEXTS = ["a red car parked by the sea", "  two dogs run in the snow  ", "Ünïcödé snow ☃ and café",
         "x", "A cartoon cat holding a FISH!", "a long text " * 200,  # longer than 256 word pieces: cut
         "blue flowers in a vase", "an old house with a tree, drawn in black ink"]


@pytest.fixture(scope="module")
def images():
    return _test_images()


@pytest.mark.parametrize("pool_blocks", [(), (3, 10, 15)])
def test_onnx_image_tower_equals_the_torch_vectors(images, pool_blocks):
    torch_tower = create_tower("efficientnet-lite0", runtime="torch", pool_blocks=pool_blocks)
    onnx_tower = create_tower("efficientnet-lite0", runtime="onnx", pool_blocks=pool_blocks)
    ref = torch_tower.embed(images, batch_size=5, progress=False)
    got = onnx_tower.embed(images, batch_size=5, progress=False)
    assert got.shape == ref.shape == (len(images), torch_tower.out_dim) and got.dtype == np.float32
    assert _cosines(got, ref).min() >= MIN_COSINE
    # each block's own average as well, not only the whole vector
    start = 0
    for width in [*(rt_bc(b) for b in pool_blocks), 1280]:
        assert _cosines(got[:, start:start + width], ref[:, start:start + width]).min() >= MIN_COSINE
        start += width
    # a chunk of ONNX Runtime does not depend on its neighbours
    assert np.allclose(onnx_tower.embed(images[:1], progress=False), got[:1], atol=1e-5)


@pytest.mark.parametrize("runtime, pool_blocks", [("onnx", ()), ("onnx", (3,)), ("torch", ()), ("torch", (3,))])
def test_decoding_ahead_gives_the_vectors_of_one_batch_at_a_time(images, runtime, pool_blocks):
    """embed prepares batch k + 1 in a thread while batch k runs: the same vectors, bit for
    bit, as embedding each batch alone (and the same as the network on preprocess())."""
    tower = create_tower("efficientnet-lite0", runtime=runtime, pool_blocks=pool_blocks)
    got = tower.embed(images, batch_size=3, progress=False)
    alone = np.concatenate([tower._embed_batch(images[s:s + 3]) for s in range(0, len(images), 3)])
    assert np.array_equal(got, alone)
    if runtime == "torch" and not pool_blocks:
        import torch

        with torch.inference_mode():
            ref = tower.network.extract_features(tower.preprocess(images[:3])).mean(dim=(2, 3)).numpy()
        assert np.array_equal(got[:3], ref)


def test_an_unreadable_image_in_a_later_batch_stops_embed_with_its_error(images, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    tower = create_tower("efficientnet-lite0", runtime="onnx")
    calls = []
    run = tower._embed_prepared
    tower._embed_prepared = lambda x: calls.append(len(x)) or run(x)
    with pytest.raises(InputError, match="broken.png"):
        tower.embed(list(images[:4]) + [str(bad)], batch_size=2, progress=False)
    assert calls == [2, 2]   # the two good batches ran; the broken one never reached the network


def rt_bc(block):
    from jointspace.towers.efficientnet import BLOCK_CHANNELS

    return BLOCK_CHANNELS[block]


def test_onnx_feature_map_equals_the_torch_map(images):
    ref = create_tower("efficientnet-lite0", runtime="torch").feature_map(images[:3])
    got = create_tower("efficientnet-lite0", runtime="onnx").feature_map(images[:3])
    assert got.shape == ref.shape == (3, 1280, 7, 7)
    assert _cosines(got.reshape(3, -1), ref.reshape(3, -1)).min() >= MIN_COSINE


def test_onnx_text_tower_equals_sentence_transformers():
    torch_tower = create_tower("minilm", runtime="torch")
    onnx_tower = create_tower("minilm", runtime="onnx")
    ref = torch_tower.embed(TEXTS, batch_size=3, progress=False)
    got = onnx_tower.embed(TEXTS, batch_size=3, progress=False)
    assert got.shape == (len(TEXTS), 384) and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert _cosines(got, ref).min() >= MIN_COSINE
    # independent of the batch it is in (padding is masked out)
    alone = np.vstack([onnx_tower.embed([t], progress=False) for t in TEXTS])
    assert _cosines(alone, got).min() >= 0.99999
    # the long text is cut at max_seq_length word pieces, as sentence-transformers does
    assert onnx_tower.tokenize([TEXTS[5]])["input_ids"].shape == (1, 256)


@pytest.mark.skipif(not rt.bf16_supported(), reason="this CPU has no native bfloat16")
def test_bf16_text_runtime_keeps_the_float32_vectors():
    ref = create_tower("minilm", runtime="torch").embed(TEXTS, batch_size=3, progress=False)
    tower = create_tower("minilm", runtime="torch-bf16")
    got = tower.embed(TEXTS, batch_size=3, progress=False)
    assert got.shape == (len(TEXTS), 384) and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    cos = _cosines(got, ref)
    assert cos.min() >= MIN_COSINE
    assert cos.min() < 1 - 1e-7   # it did run in bfloat16: not the float32 vectors bit for bit
    assert tower.config() == {"max_seq_length": 256, "runtime": "torch-bf16"}
    assert tower.cache_key() not in {create_tower("minilm", runtime=r).cache_key() for r in ("torch", "onnx")}
    assert create_tower("minilm", **tower.config()).runtime == "torch-bf16"


def test_bf16_runtime_choice_and_errors(monkeypatch):
    monkeypatch.setattr(rt, "bf16_supported", lambda: True)
    monkeypatch.setenv("JOINTSPACE_RUNTIME", "torch-bf16")
    assert create_tower("minilm").runtime == "torch-bf16"
    assert create_tower("efficientnet-lite0").runtime == "torch"   # the image tower's nearest runtime
    with pytest.raises(InputError, match=r"runtime: expected one of torch, onnx, got 'torch-bf16' \(bfloat16 "
                                         r"moves this tower's vectors to cosine 0.997"):
        create_tower("efficientnet-lite0", runtime="torch-bf16")
    monkeypatch.setattr(rt, "bf16_supported", lambda: False)
    with pytest.raises(InputError, match="'torch-bf16' needs a CPU with native bfloat16"):
        create_tower("minilm")
    with pytest.raises(InputError, match="'torch-bf16' needs a CPU with native bfloat16"):
        create_tower("minilm", runtime="torch-bf16")
    from jointspace.cli import build_parser

    assert build_parser().parse_args(["--runtime", "torch-bf16", "datasets"]).runtime == "torch-bf16"


def test_onnx_text_export_is_fused_and_leaves_the_torch_model_alone(tmp_path, monkeypatch):
    """The exported transformer has its attention, LayerNorms, GELU and embeddings fused by ONNX
    Runtime's optimiser; exporting it does not change the module the torch tower runs."""
    from collections import Counter

    import onnx

    from jointspace.towers import minilm

    bert = minilm._load_model(256)[0].auto_model
    before = bert.config._attn_implementation
    monkeypatch.setenv("JOINTSPACE_CACHE", str(tmp_path))
    minilm._onnx_file.cache_clear()
    try:
        path = minilm._onnx_file()
        assert str(path).startswith(str(tmp_path))
        assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".crc32"]
        ops = Counter(n.op_type for n in onnx.load(str(path)).graph.node)
        assert ops["Attention"] == 6 and ops["SkipLayerNormalization"] == 12 and ops["EmbedLayerNormalization"] == 1
        assert "Softmax" not in ops
        assert bert.config._attn_implementation == before
    finally:
        minilm._onnx_file.cache_clear()


def test_onnx_text_export_without_the_fusion_warns_and_gives_the_same_vectors(tmp_path, monkeypatch):
    from collections import Counter

    import onnx
    import onnxruntime.transformers.optimizer as optimizer

    from jointspace.towers import minilm

    def broken(*args, **kwargs):
        raise ValueError("no fusion here")

    monkeypatch.setattr(optimizer, "optimize_model", broken)
    monkeypatch.setenv("JOINTSPACE_CACHE", str(tmp_path))
    minilm._onnx_file.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match=r"not fused \(ValueError: no fusion here\)"):
            path = minilm._onnx_file()
        ops = Counter(n.op_type for n in onnx.load(str(path)).graph.node)
        assert "Attention" not in ops and ops["Softmax"] == 6
        got = create_tower("minilm", runtime="onnx").embed(TEXTS, batch_size=3, progress=False)
        ref = create_tower("minilm", runtime="torch").embed(TEXTS, batch_size=3, progress=False)
        assert _cosines(got, ref).min() >= MIN_COSINE
    finally:
        minilm._onnx_file.cache_clear()


def test_onnx_tokens_equal_the_transformers_tokenizer():
    from jointspace.towers.minilm import load_minilm_tokenizer

    tower = create_tower("minilm", max_seq_length=32, runtime="onnx")
    ref = load_minilm_tokenizer()(TEXTS, padding=True, truncation=True, max_length=32, return_tensors="np")
    got = tower.tokenize(TEXTS)
    assert got["input_ids"].shape == (len(TEXTS), 32)   # padded to the longest, cut at max_seq_length
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert got[key].dtype == np.int64 and np.array_equal(got[key], ref[key])


def test_onnx_path_needs_neither_torch_nor_transformers(tmp_path):
    """Once exported, the ONNX towers start without importing PyTorch or transformers (a
    faster cold start of the service)."""
    import subprocess
    import sys

    create_tower("minilm", runtime="onnx").embed(["warm"], progress=False)   # the exports exist
    create_tower("efficientnet-lite0", runtime="onnx").embed([np.zeros((8, 8, 3), np.uint8)], progress=False)
    code = ("import sys, numpy as np\n"
            "from jointspace.towers import create_tower\n"
            "create_tower('minilm', runtime='onnx').embed(['a cat'], progress=False)\n"
            "create_tower('efficientnet-lite0', runtime='onnx').embed([np.zeros((8, 8, 3), np.uint8)], progress=False)\n"
            "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_mean_pool_by_hand():
    from jointspace.towers.minilm import mean_pool

    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(2, 4, 3)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]])
    want = np.stack([tokens[0, :2].mean(0), tokens[1].mean(0)])
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    assert np.allclose(mean_pool(tokens, mask), want, atol=1e-6)


def test_runtime_choice_and_errors(monkeypatch):
    monkeypatch.delenv("JOINTSPACE_RUNTIME", raising=False)
    assert rt.default_runtime() == "onnx"  # the faster one, when ONNX Runtime is installed
    assert create_tower("minilm").runtime == "onnx"
    monkeypatch.setenv("JOINTSPACE_RUNTIME", "torch")
    assert create_tower("minilm").runtime == "torch"
    assert create_tower("efficientnet-lite0").runtime == "torch"
    assert create_tower("minilm", runtime="onnx").runtime == "onnx"  # an explicit runtime wins
    monkeypatch.setenv("JOINTSPACE_RUNTIME", "tensorflow")
    with pytest.raises(InputError, match="JOINTSPACE_RUNTIME: expected one of torch, onnx, torch-bf16, got 'tensorflow'"):
        create_tower("minilm")
    for bad in ("jax", 3):
        with pytest.raises(InputError, match="runtime: expected one of torch, onnx"):
            create_tower("minilm", runtime=bad)
    monkeypatch.setattr(rt, "onnx_available", lambda: False)
    monkeypatch.delenv("JOINTSPACE_RUNTIME")
    assert rt.default_runtime() == "torch"
    from jointspace.errors import MissingDependencyError

    with pytest.raises(MissingDependencyError, match="onnxruntime"):
        create_tower("minilm", runtime="onnx")


def test_runtime_recorded_and_cache_keys():
    for name, legacy in (("minilm", {"max_seq_length": 256}),
                         ("efficientnet-lite0", {"image_size": 224, "fit": "pad"})):
        t_torch, t_onnx = create_tower(name, runtime="torch"), create_tower(name, runtime="onnx")
        assert t_torch.config() == {**legacy, "runtime": "torch"}
        assert t_onnx.config() == {**legacy, "runtime": "onnx"}
        assert create_tower(name, **t_onnx.config()).runtime == "onnx"
        # features cached by the torch path before runtimes existed keep their key
        import hashlib
        import json

        old = hashlib.sha256(json.dumps({"tower": name, "config": legacy}, sort_keys=True).encode()).hexdigest()
        assert t_torch.cache_key() == old != t_onnx.cache_key()


def test_cached_export_once_atomic_and_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("JOINTSPACE_CACHE", str(tmp_path / "cache"))
    calls = []

    def export(path):
        calls.append(path)
        with open(path, "wb") as fh:
            fh.write(b"graph")

    a = rt.cached_export("demo", "k1", export)
    b = rt.cached_export("demo", "k1", export)
    assert a == b and a.parent == tmp_path / "cache" / "onnx" and a.read_bytes() == b"graph" and len(calls) == 1
    # no temporary file left; beside the export, the CRC-32 of its bytes
    assert sorted(p.name for p in a.parent.iterdir()) == [a.name, a.name + ".crc32"]
    assert (a.parent / (a.name + ".crc32")).read_text() == f"{zlib.crc32(b'graph'):08x}\n"
    assert rt.cached_export("demo", "k2", export) != a and len(calls) == 2

    def broken(path):
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError):
        rt.cached_export("demo", "k3", broken)
    assert len(list(a.parent.iterdir())) == 4  # the failed export left nothing behind

    # a cache folder that cannot be written: exported to a private folder, with one warning
    blocker = tmp_path / "ro"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("JOINTSPACE_CACHE", str(blocker))
    monkeypatch.setattr(rt, "_fallback_dir", [])
    with pytest.warns(RuntimeWarning, match="not writable"):
        c = rt.cached_export("demo", "k4", export)
    assert c.read_bytes() == b"graph" and not str(c).startswith(str(blocker))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rt.cached_export("demo", "k4", export) == c
    os.unlink(c)
    os.unlink(str(c) + ".crc32")


def _negation_export(calls):
    """An ``export(path)`` writing a one-node ONNX graph y = -x (a stand-in for a tower's network)."""
    import onnx
    from onnx import TensorProto, helper

    def export(path):
        calls.append(path)
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])
        graph = helper.make_graph([helper.make_node("Neg", ["x"], ["y"])], "neg", [x], [y])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)

    return export


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_damaged_cached_export_is_exported_again(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("JOINTSPACE_CACHE", str(tmp_path / "cache"))
    calls = []
    path = rt.cached_export("demo-neg", "k1", _negation_export(calls))
    good = path.read_bytes()
    path.write_bytes({"truncate": good[:len(good) // 2], "garbage": b"not a graph" * 50, "empty": b""}[damage])
    rt._session.cache_clear()
    # as a later run finds it: the damaged file is in the cache, so nothing is exported yet
    assert rt.cached_export("demo-neg", "k1", _negation_export(calls)) == path and len(calls) == 1
    with pytest.warns(RuntimeWarning, match="cannot be read .*it is exported again"):
        session = rt.onnx_session(path)
    assert session.run(["y"], {"x": np.array([[1.5, -2.0]], np.float32)})[0].tolist() == [[-1.5, 2.0]]
    assert len(calls) == 2 and path.read_bytes() == good
    # replaced in place, nothing left over
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".crc32"]
    rt._session.cache_clear()


def _scale_export(calls):
    """An ``export(path)`` writing a one-node ONNX graph y = x * w with weights w = (2, 3)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def export(path):
        calls.append(path)
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])
        w = numpy_helper.from_array(np.array([2.0, 3.0], np.float32), "w")
        graph = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"])], "scale", [x], [y], [w])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)

    return export


def _flip_a_weight_bit(path) -> bytes:
    """One bit of the export's weight w[0] flipped (2 -> 2 ** 17): the file still parses.
    Returns the export's bytes before."""
    good = path.read_bytes()
    at = good.index(np.array([2.0, 3.0], np.float32).tobytes())
    path.write_bytes(good[:at + 3] + bytes([good[at + 3] ^ 0x08]) + good[at + 4:])
    rt._session.cache_clear()
    return good


def _damaged_export(tmp_path, monkeypatch, name: str, calls: list) -> tuple:
    """An export ``name`` in a fresh cache with one weight bit flipped on disk, unchecked as a
    later process finds it; its path and its good bytes."""
    monkeypatch.setenv("JOINTSPACE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(rt, "_checked", set(), raising=False)
    path = rt.cached_export(name, "k1", _scale_export(calls))
    good = _flip_a_weight_bit(path)
    monkeypatch.setattr(rt, "_checked", set(), raising=False)
    return path, good


def test_an_export_whose_weights_changed_on_disk_is_exported_again(tmp_path, monkeypatch):
    """Flipped bits in a weight still parse: ONNX Runtime ran the damaged graph without a word."""
    calls = []
    path, good = _damaged_export(tmp_path, monkeypatch, "demo-scale", calls)
    assert rt.cached_export("demo-scale", "k1", _scale_export(calls)) == path and len(calls) == 1
    with pytest.warns(RuntimeWarning, match=r"cannot be read \(ValueError: its bytes \(CRC-32 \w+\) are not "
                                            r"those exported .*it is exported again"):
        session = rt.onnx_session(path)
    x = np.array([[1.5, -2.0]], np.float32)
    assert session.run(["y"], {"x": x})[0].tolist() == (x * [2.0, 3.0]).tolist()
    assert len(calls) == 2 and path.read_bytes() == good
    with warnings.catch_warnings():   # checked once: the same file again says nothing
        warnings.simplefilter("error")
        rt.onnx_session(path)
    rt._session.cache_clear()


def test_a_damaged_onnx_file_that_is_no_cached_export_is_reported_as_it_is(tmp_path):
    path = tmp_path / "mine.onnx"
    path.write_bytes(b"not a graph")
    with pytest.raises(Exception, match="(?i)protobuf|load model"):
        rt.onnx_session(path)


@pytest.mark.slow
def test_the_image_tower_heals_a_damaged_export_of_its_whole_graph(tmp_path, monkeypatch):
    # the graph the tower runs is cut from the whole export: a damaged whole export is made again first
    from jointspace.towers import efficientnet as eff

    image = [np.full((32, 32, 3), (200, 40, 40), np.uint8)]
    want = create_tower("efficientnet-lite0", runtime="onnx", image_size=64).embed(image)
    whole = eff._onnx_file()
    monkeypatch.setenv("JOINTSPACE_CACHE", str(tmp_path))
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / whole.name).write_bytes(whole.read_bytes()[:1000])
    eff._onnx_file.cache_clear()
    eff._cut_export.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="cannot be read"):
            got = create_tower("efficientnet-lite0", runtime="onnx", image_size=64).embed(image)
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert (tmp_path / "onnx" / whole.name).stat().st_size == whole.stat().st_size
    finally:
        eff._onnx_file.cache_clear()
        eff._cut_export.cache_clear()


def test_an_export_deletes_what_killed_exports_left_once_an_hour_old(tmp_path, monkeypatch):
    """A process killed while exporting left its temporary file (MiniLM's: 90 MB) for good."""
    monkeypatch.setenv("JOINTSPACE_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "onnx"
    folder.mkdir(parents=True)
    old, young = folder / ".minilm-0123.onnx.k1ll3d.tmp", folder / ".minilm-0123.onnx.wr1t1ng.tmp"
    for f in (old, young):
        f.write_bytes(b"half an export")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    path = rt.cached_export("demo-sweep", "k1", _scale_export([]))
    assert not old.exists() and young.exists()   # a younger one may be another process at work
    assert sorted(p.name for p in folder.iterdir()) == sorted([young.name, path.name, path.name + ".crc32"])


def test_threads_that_find_a_damaged_export_together_export_it_once(tmp_path, monkeypatch):
    """Two threads that checked a damaged export at once both exported it again (MiniLM: 30 s each)."""
    from concurrent.futures import ThreadPoolExecutor

    calls = []
    path, good = _damaged_export(tmp_path, monkeypatch, "demo-scale2", calls)
    crc32 = rt._crc32

    def slow_crc32(p):   # both threads are inside the check at the same time
        time.sleep(0.3)
        return crc32(p)

    monkeypatch.setattr(rt, "_crc32", slow_crc32)
    x = np.array([[1.5, -2.0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with ThreadPoolExecutor(2) as pool:
            outs = list(pool.map(lambda _: rt.onnx_session(path).run(["y"], {"x": x})[0].tolist(), range(2)))
    assert outs == [(x * [2.0, 3.0]).tolist()] * 2 and len(calls) == 2 and path.read_bytes() == good
    rt._session.cache_clear()
