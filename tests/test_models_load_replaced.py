"""Loading a model folder while another process saves over it."""

import numpy as np
import pytest

from jointspace import Pairs
from jointspace.errors import InputError
from jointspace.models import base
from jointspace.models.base import create_model, load_model

from replace_support import save_after_reads


def _cca(seed, n_components=2):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((60, 5))
    y = x[:, :4] + 0.5 * rng.standard_normal((60, 4))
    return create_model("cca", n_components=n_components).fit(Pairs({"a": x, "b": y}))


def test_a_model_folder_replaced_while_it_loads_is_read_whole_from_the_new_version(tmp_path, monkeypatch):
    old, new = _cca(0), _cca(1, n_components=3)   # a refit of another size: its config and arrays change
    old.save(tmp_path / "m")
    calls = save_after_reads(monkeypatch, base, "_read_config", tmp_path / "m", new, times=1)
    back = load_model(tmp_path / "m")
    q = np.random.default_rng(2).standard_normal((3, 5))
    assert calls
    np.testing.assert_allclose(back.encode("a", q), new.encode("a", q), rtol=0, atol=0)


def test_a_model_folder_replaced_at_every_read_is_refused_with_a_message(tmp_path, monkeypatch):
    _cca(0).save(tmp_path / "m")
    save_after_reads(monkeypatch, base, "_read_config", tmp_path / "m", _cca(1), times=100)
    with pytest.raises(InputError, match="model: expected a saved model folder that holds still .* was replaced"):
        load_model(tmp_path / "m")


def test_an_index_records_the_digest_of_the_model_its_vectors_come_from(tmp_path, monkeypatch):
    from jointspace.cli import main
    from jointspace.index.faiss_index import Index

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 5)), rng.standard_normal((40, 4))
    np.savez(tmp_path / "arr.npz", x=x, y=y)
    _cca(0).save(tmp_path / "m")
    new = _cca(1)
    digest, saved = base.saved_model_digest, []

    def digest_after_a_fit_saved_again(path):   # another fit --out lands while the index reads the model
        if not saved:
            saved.append(new.save(tmp_path / "m"))
        return digest(path)

    monkeypatch.setattr(base, "saved_model_digest", digest_after_a_fit_saved_again)
    assert main(["index", str(tmp_path / "m"), "--data", str(tmp_path / "arr.npz"), "--modality", "a=x",
                 "--modality", "b=y", "--modality", "a", "--out", str(tmp_path / "ix")]) == 0
    index = Index.load(tmp_path / "ix")
    assert saved and index.info["model_sha256"] == digest(tmp_path / "m")
    scores, ids = index.search(new.encode("a", x[:3]), 1)   # the vectors are the recorded model's
    np.testing.assert_array_equal(ids[:, 0], [0, 1, 2])
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)


def test_index_append_refuses_a_model_saved_again_while_it_loads(tmp_path, monkeypatch, capsys):
    from jointspace.cli import main
    from jointspace.index.faiss_index import Index

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 5)), rng.standard_normal((40, 4))
    np.savez(tmp_path / "arr.npz", x=x, y=y)
    np.savez(tmp_path / "more.npz", x=x + 1, y=y)
    _cca(0).save(tmp_path / "m")
    options = ["--modality", "a=x", "--modality", "b=y", "--modality", "a"]
    assert main(["index", str(tmp_path / "m"), "--data", str(tmp_path / "arr.npz"), *options,
                 "--out", str(tmp_path / "ix")]) == 0
    load, saved = base.load_model, []

    def load_after_a_fit(path):   # another fit --out lands just before the model is read
        if not saved:
            saved.append(_cca(1).save(tmp_path / "m"))
        return load(path)

    monkeypatch.setattr(base, "load_model", load_after_a_fit)
    capsys.readouterr()
    code = main(["index", str(tmp_path / "ix"), "--append", "--data", str(tmp_path / "more.npz"), *options])
    assert saved and code == 2
    assert "was saved again after index" in capsys.readouterr().err
    assert len(Index.load(tmp_path / "ix")) == 40


def test_a_fusion_classifier_folder_replaced_while_it_loads_is_read_whole(tmp_path, monkeypatch):
    from jointspace.models import _fusion_io
    from jointspace.models.fusion import FusionClassifier

    def fitted(labels):
        rng = np.random.default_rng(0)
        y = rng.integers(0, len(labels), 60)
        a, b = rng.normal(size=(len(labels), 3))[y] * 3, rng.normal(size=(len(labels), 2))[y] * 3
        return FusionClassifier(fusion="mean").fit(Pairs({"a": a + rng.normal(size=(60, 3)),
                                                          "b": b + rng.normal(size=(60, 2))},
                                                         labels=np.asarray(labels)[y]))

    fitted(("x", "y")).save(tmp_path / "f")
    new = fitted(("x", "y", "z"))   # a refit with another class: its config and arrays change
    read, saved = _fusion_io._read_config, []

    def read_then_replaced(path):
        config = read(path)
        if not saved:
            saved.append(new.save(tmp_path / "f"))
        return config

    monkeypatch.setattr(_fusion_io, "_read_config", read_then_replaced)
    back = FusionClassifier.load(tmp_path / "f")
    assert saved and list(back.classes_) == ["x", "y", "z"]


def test_a_matcher_folder_replaced_while_it_loads_is_read_whole(tmp_path, monkeypatch):
    from jointspace.models import rerank
    from jointspace.models.rerank import CrossAttentionMatcher

    def fitted(dim):
        rng = np.random.default_rng(0)
        regions, tokens = rng.normal(size=(16, 4, 8)), rng.normal(size=(16, 3, 8))
        parts = (regions.astype(np.float32), np.ones((16, 4), bool), tokens.astype(np.float32),
                 np.ones((16, 3), bool), np.arange(16))
        return CrossAttentionMatcher(dim=dim, epochs=1, batch_size=8, progress=False).fit_parts(*parts)

    fitted(4).save(tmp_path / "x")
    new = fitted(6)   # a matcher of another size: its config and weights change
    read, reads = rerank.read_json_object, []

    def read_then_replaced(path):   # the config is read twice (what the folder is, then its fields)
        config = read(path)
        reads.append(path)
        if len(reads) == 2:
            new.save(tmp_path / "x")
        return config

    monkeypatch.setattr(rerank, "read_json_object", read_then_replaced)
    back = CrossAttentionMatcher.load(tmp_path / "x")
    assert len(reads) > 2 and back.dim == 6
