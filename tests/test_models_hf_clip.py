"""``hf-clip``: a pretrained transformers CLIP / SigLIP model as a joint space.

Tiny randomly initialised CLIP and SigLIP models (hidden size 32, 2 layers, 32x32 images in
8x8 patches) are written with their tokenizers and image processors to a temporary folder,
and every vector is pinned against transformers' own ``get_text_features`` /
``get_image_features`` on the outputs of the tokenizer and the PIL image processor.
"""

import atexit
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli_support import one_line, run
from jointspace.data.datasets import DATASETS, Dataset, register_dataset
from jointspace.data.pairs import Pairs
from jointspace.errors import InputError, NotFittedError
from jointspace.models.base import create_model, load_model

pytestmark = pytest.mark.usefixtures("one_thread")

LETTERS = "abcdefghijklmnopqrstuvwxyz"
MAX_POSITIONS = 16
TEXTS = ["a red square", "a blue disc", "yellow"]  # at most 16 tokens with the markers


def _unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _features(output) -> np.ndarray:
    """transformers 5 returns a model output whose ``pooler_output`` holds the projected features."""
    tensor = output if isinstance(output, torch.Tensor) else output.pooler_output
    return tensor.detach().float().numpy()


def _write_clip(folder: Path) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    folder.mkdir(parents=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in LETTERS:  # one piece per letter, and the word-final one; no merges
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=MAX_POSITIONS, bos_token_id=0,
                         eos_token_id=1, pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=16)
    CLIPModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def _write_siglip(folder: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, SiglipConfig, SiglipImageProcessorPil, SiglipModel

    folder.mkdir(parents=True)
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(
        "a red blue green yellow square disc on field".split())}}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    # SigLIP's own tokenizer gives input ids only: the model was trained without an attention mask
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                  model_input_names=["input_ids"])
    torch.manual_seed(1)
    config = SiglipConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=MAX_POSITIONS, pad_token_id=0,
                         eos_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8))
    SiglipModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    SiglipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # save_pretrained draws one per model
    return tmp_path_factory.mktemp("hfclip")


@pytest.fixture(scope="module")
def clip_dir(root):
    return _write_clip(root / "tiny-clip")


@pytest.fixture(scope="module")
def clip_model(clip_dir):
    return create_model("hf-clip", path=str(clip_dir), batch_size=2).fit()


@pytest.fixture(scope="module")
def clip_reference(clip_dir):
    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    return (CLIPModel.from_pretrained(clip_dir).eval(), CLIPTokenizer.from_pretrained(clip_dir),
            CLIPImageProcessorPil.from_pretrained(clip_dir))


@pytest.fixture(scope="module")
def pictures(root):
    """Three PNG files of different sizes (one RGBA, composited on white) and their RGB pictures."""
    rng = np.random.default_rng(0)
    paths, rgb = [], []
    for i, (h, w) in enumerate([(40, 40), (37, 55), (64, 30)]):
        arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        path = root / f"picture-{i}.png"
        Image.fromarray(arr).save(path)
        paths.append(str(path))
        rgb.append(Image.fromarray(arr))
    alpha = np.full((36, 36), 255, np.uint8)
    alpha[:, :18] = 0  # the left half transparent: white once composited
    arr = rng.integers(0, 256, size=(36, 36, 3), dtype=np.uint8)
    Image.fromarray(np.dstack([arr, alpha]), "RGBA").save(root / "picture-rgba.png")
    flat = arr.copy()
    flat[:, :18] = 255
    paths.append(str(root / "picture-rgba.png"))
    rgb.append(Image.fromarray(flat))
    return paths, rgb


# -- numbers pinned against transformers ------------------------------------------------------------

def test_clip_text_vectors_are_transformers_get_text_features(clip_model, clip_reference):
    model, tok, _ = clip_reference
    with torch.no_grad():
        want = _features(model.get_text_features(**tok(TEXTS, padding=True, return_tensors="pt")))
    got = clip_model.encode("text", TEXTS)
    assert got.dtype == np.float32 and got.shape == (3, 16)
    np.testing.assert_allclose(got, _unit(want), atol=1e-5)
    np.testing.assert_allclose(clip_model.encode("text", TEXTS, normalize=False), want, atol=1e-5)
    with torch.no_grad():  # one text alone: no padding at all, the same vector
        alone = _features(model.get_text_features(**tok(TEXTS[1:2], return_tensors="pt")))
    np.testing.assert_allclose(clip_model.encode("text", TEXTS[1:2]), _unit(alone), atol=1e-5)


def test_long_texts_are_truncated_to_the_model_positions_with_a_warning(clip_model, clip_reference):
    model, tok, _ = clip_reference
    long = "the quick brown fox jumps over a lazy dog"  # 33 letter pieces + 2 markers > 16 positions
    with pytest.warns(UserWarning, match=r"items: 1 of 2 texts are longer than the model's 16 tokens"):
        got = clip_model.encode("text", [long, "a cat"])
    with torch.no_grad():
        enc = tok([long, "a cat"], padding=True, truncation=True, max_length=MAX_POSITIONS, return_tensors="pt")
        want = _features(model.get_text_features(**enc))
    np.testing.assert_allclose(got, _unit(want), atol=1e-5)


def test_clip_image_vectors_are_transformers_get_image_features(clip_model, clip_reference, pictures):
    model, _, proc = clip_reference
    paths, rgb = pictures
    with torch.no_grad():
        want = _features(model.get_image_features(**proc(images=rgb, return_tensors="pt")))
    np.testing.assert_allclose(clip_model.encode("image", paths), _unit(want), atol=1e-5)
    # PIL pictures and uint8 arrays give the same vectors as their files (batch_size=2: two batches)
    mixed = [rgb[0], np.asarray(rgb[1]), Path(paths[2]), paths[3]]
    np.testing.assert_allclose(clip_model.encode("image", mixed), _unit(want), atol=1e-5)
    np.testing.assert_allclose(clip_model.encode("image", paths, normalize=False), want, atol=1e-5)


def test_the_temperature_is_the_model_logit_scale(clip_model, clip_reference):
    model, _, _ = clip_reference
    assert clip_model.temperature_ == pytest.approx(float(1 / model.logit_scale.detach().exp()), rel=1e-6)
    assert clip_model.raw_kind("image") == "image" and clip_model.raw_kind("text") == "text"
    assert clip_model.raw_kind("audio") is None and clip_model.modalities_ == ("image", "text")


def test_siglip_pads_texts_to_the_full_length_as_it_was_trained(root, pictures):
    from transformers import AutoTokenizer, SiglipImageProcessorPil, SiglipModel

    folder = _write_siglip(root / "tiny-siglip")
    model = create_model("hf-clip", path=str(folder)).fit()
    assert model.architecture_ == "SiglipModel" and model.dim_ == 32
    ref = SiglipModel.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    proc = SiglipImageProcessorPil.from_pretrained(folder)
    enc = tok(TEXTS, padding="max_length", max_length=MAX_POSITIONS, return_tensors="pt")
    assert set(enc) == {"input_ids"}
    paths, rgb = pictures
    with torch.no_grad():
        want_text = _features(ref.get_text_features(**enc))
        want_image = _features(ref.get_image_features(**proc(images=rgb, return_tensors="pt")))
        shortest = _features(ref.get_text_features(**tok(TEXTS, padding=True, return_tensors="pt")))
    np.testing.assert_allclose(model.encode("text", TEXTS), _unit(want_text), atol=1e-5)
    np.testing.assert_allclose(model.encode("image", paths), _unit(want_image), atol=1e-5)
    assert not np.allclose(_unit(shortest), _unit(want_text), atol=1e-3)  # the padding matters


# -- saving and loading ------------------------------------------------------------------------------

def test_a_saved_model_records_the_folder_and_reloads_to_the_same_vectors(clip_model, clip_dir, pictures, tmp_path):
    import hashlib

    out = clip_model.save(tmp_path / "run")
    assert sorted(p.name for p in out.iterdir()) == [".jointspace-written.json", "config.json", "state.safetensors"]
    assert (out / "state.safetensors").stat().st_size < 100  # no weights copied
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "hf-clip" and config["params"]["path"] == str(clip_dir.resolve())
    digest = hashlib.sha256((clip_dir / "config.json").read_bytes()).hexdigest()
    assert config["extra"]["fingerprint"] == f"sha256:{digest}"
    loaded = load_model(out)
    assert loaded._net is None  # the network is read on the first encode
    for modality, items in (("text", TEXTS), ("image", pictures[0])):
        np.testing.assert_array_equal(loaded.encode(modality, items), clip_model.encode(modality, items))


def test_a_relative_path_is_saved_absolute(clip_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(clip_dir.parent)
    model = create_model("hf-clip", path=clip_dir.name)
    assert model.get_config()["path"] == clip_dir.name  # the constructor only stores its arguments
    model.fit()
    assert model.get_config()["path"] == str(clip_dir.resolve())


def test_loading_a_saved_model_whose_pretrained_folder_is_gone_names_it(clip_dir, tmp_path):
    copy = tmp_path / "weights"
    shutil.copytree(clip_dir, copy)
    create_model("hf-clip", path=str(copy)).fit().save(tmp_path / "run")
    (copy / "config.json").write_text((copy / "config.json").read_text().replace('"projection_dim": 16',
                                                                                 '"projection_dim": 16 '))
    with pytest.raises(InputError, match="has changed since this hf-clip model was saved"):
        load_model(tmp_path / "run")
    shutil.rmtree(copy)
    with pytest.raises(InputError) as err:
        load_model(tmp_path / "run")
    msg = str(err.value)
    assert f"the pretrained folder {str(copy)!r}" in msg and "is gone" in msg
    assert f"hf download openai/clip-vit-base-patch32 --local-dir {copy}" in msg


# -- errors -----------------------------------------------------------------------------------------

def test_a_missing_folder_says_how_to_get_the_weights(tmp_path, monkeypatch):
    missing = tmp_path / "models" / "clip-vit-b32"
    with pytest.raises(InputError) as err:
        create_model("hf-clip", path=str(missing)).fit()
    assert str(err.value).startswith(f"path: the pretrained model folder {str(missing)!r} does not exist")
    assert f"hf download openai/clip-vit-base-patch32 --local-dir {missing}" in str(err.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as err:  # a hub id, offline and not in the cache
        create_model("hf-clip", path="jointspace-tests/no-such-model").fit()
    assert "nor a model in the Hugging Face cache, and the hub is offline" in str(err.value)
    assert ("hf download jointspace-tests/no-such-model --local-dir models/no-such-model"
            in str(err.value))
    # ORG/NAME may also be a folder the user means to fill: both readings are answered
    with pytest.raises(InputError) as err:
        create_model("hf-clip", path="models/clip-vit-b32").fit()
    assert "if 'models/clip-vit-b32' is a hub id" in str(err.value)
    assert f"if it is a folder, download a CLIP or SigLIP model into that folder, e.g. `hf download " \
           f"openai/clip-vit-base-patch32 --local-dir {tmp_path / 'models' / 'clip-vit-b32'}`" in str(err.value)


def test_bad_folders_and_settings_are_refused(tmp_path, clip_dir):
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
               intermediate_size=37).save_pretrained(tmp_path / "bert")
    with pytest.raises(InputError, match="holds a 'bert' model; hf-clip needs a joint image-text model: "
                                         "CLIPModel or SiglipModel"):
        create_model("hf-clip", path=str(tmp_path / "bert")).fit()
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="has no config.json"):
        create_model("hf-clip", path=str(tmp_path / "empty")).fit()
    with pytest.raises(InputError, match="expected a pretrained model folder, got the file"):
        create_model("hf-clip", path=str(clip_dir / "config.json")).fit()
    with pytest.raises(InputError, match=r"path: expected a pretrained model folder or a hub id .*got int 3"):
        create_model("hf-clip", path=3).fit()
    with pytest.raises(InputError, match="batch_size: expected an integer >= 1, got 0"):
        create_model("hf-clip", path=str(clip_dir), batch_size=0).fit()
    with pytest.raises(InputError, match="dtype: expected one of float32, float16, bfloat16"):
        create_model("hf-clip", path=str(clip_dir), dtype="int8").fit()
    with pytest.raises(InputError, match="path"):
        create_model("hf-clip")
    with pytest.raises(NotFittedError):
        create_model("hf-clip", path=str(clip_dir)).encode("text", ["a"])


def test_fit_checks_the_pairs_it_is_given(clip_dir):
    model = create_model("hf-clip", path=str(clip_dir))
    with pytest.raises(InputError, match="pairs: hf-clip embeds image and text items; these pairs hold audio, text"):
        model.fit(Pairs({"audio": np.zeros((2, 3)), "text": ["a", "b"]}))
    with pytest.raises(InputError, match="the image items of these pairs are 4-d feature vectors"):
        model.fit(Pairs({"image": np.zeros((2, 4)), "text": ["a", "b"]}))
    assert model.fit(Pairs({"image": [np.zeros((8, 8, 3), np.uint8)] * 2, "text": ["a", "b"]})) is model


def test_bad_items_are_refused_naming_the_item(clip_model, tmp_path):
    cases = [
        ("text", ["a cat", "  "], r"items\[1\]: expected a non-empty text \(a visible character\), got '  '"),
        ("text", ["a cat", 7], r"items\[1\]: expected a string, got int"),
        ("text", "a cat", "items: expected a list of text items, got a single str; wrap it in a list"),
        ("text", [], "items: expected at least one text item, got none"),
        ("image", [str(tmp_path / "nope.png")], r"items\[0\]: file .*nope.png' does not exist"),
        ("image", [3.5], r"items\[0\]: expected a file path, PIL image or uint8 array, got float"),
        ("image", np.zeros((2, 16), np.float32), r"items: expected an array with one image per row"),
        ("audio", ["a"], "modality: this model knows image, text; got 'audio'"),
    ]
    for modality, items, message in cases:
        with pytest.raises(InputError, match=message):
            clip_model.encode(modality, items)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(InputError, match=r"items\[0\] \('.*broken.png'\): cannot read the image"):
        clip_model.encode("image", [str(bad)])


# -- the command line --------------------------------------------------------------------------------

_DRAWINGS = Path(tempfile.mkdtemp(prefix="jointspace-hfclip-drawings-"))
atexit.register(shutil.rmtree, _DRAWINGS, ignore_errors=True)
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}


class HFClipDrawings(Dataset):
    """Eight labelled PNG files of coloured squares with captions (for the CLI tests only)."""

    name = "tiny-hfclip-drawings-test"
    modalities = ("image", "text")

    def _load(self, split):
        paths, texts, labels = [], [], []
        for i, (name, rgb) in enumerate(list(COLOURS.items()) * 2):
            path = _DRAWINGS / f"{split}-{i}.png"
            if not path.exists():
                img = np.full((40, 40, 3), 250, np.uint8)
                img[5 + i:30 + i, 5:30] = rgb
                Image.fromarray(img).save(path)
            paths.append(str(path))
            texts.append(f"a {name} square")
            labels.append(i % len(COLOURS))
        return Pairs({"image": paths, "text": texts}, labels=np.array(labels), label_names=list(COLOURS),
                     ids=np.array([f"d{i}" for i in range(8)]))


if HFClipDrawings.name not in DATASETS:
    register_dataset(HFClipDrawings)


def test_fit_index_search_zeroshot_and_serve_through_the_cli(clip_dir, tmp_path, capsys):
    name = HFClipDrawings.name
    code, out, err = run(capsys, "fit", name, "--model", "hf-clip", "--param", f"path={clip_dir}",
                         "--batch-size", "4", "--out", tmp_path / "run")
    assert code == 0, err
    model = load_model(tmp_path / "run")
    assert model.batch_size == 4
    code, _, err = run(capsys, "index", tmp_path / "run", "--dataset", name, "--split", "test", "--modality",
                       "image", "--out", tmp_path / "idx")
    assert code == 0, err
    code, out, err = run(capsys, "search", tmp_path / "idx", "--text", "a red square", "-k", "8", "--json")
    assert code == 0, err
    results = json.loads(out)["results"]
    test = HFClipDrawings().load("test")
    cos = model.encode("image", test["image"]) @ model.encode("text", ["a red square"])[0]
    assert len(results) == 8
    for r in results:
        assert r["score"] == pytest.approx(float(cos[r["id"]]), abs=1e-5)
    code, out, err = run(capsys, "search", tmp_path / "idx", "--image", test["image"][2], "-k", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["results"][0]["id"] == 2  # an image finds itself
    code, out, err = run(capsys, "zeroshot", tmp_path / "run", "--dataset", name, "--templates", "a {} square",
                         "--json")
    assert code == 0, err
    assert 0 <= json.loads(out)["results"]["single template"]["top1"] <= 1
    code, _, err = run(capsys, "fit", "wikipedia", "--model", "hf-clip", "--param", f"path={clip_dir}",
                       "--out", tmp_path / "wiki")
    assert code == 2 and "feature vectors" in err and one_line(err)

    from fastapi.testclient import TestClient

    from jointspace.server.app import create_app

    client = TestClient(create_app([tmp_path / "idx"]))
    body = client.get("/api/search", params={"text": "a red square", "k": 3}).json()
    assert [r["id"] for r in body["results"]] == [r["id"] for r in results[:3]]
    info = client.get("/api/info").json()
    assert info["model"]["raw_query_modalities"] == ["image", "text"]
