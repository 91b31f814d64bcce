"""The CLI refuses, by option, dataset items or queries a model cannot embed."""

import numpy as np
import pytest

from jointspace import InputError, Pairs, create_model
from jointspace.cli._checks import check_dataset_items, check_raw_query


class _Towered:
    """Stands in for a model reading raw images through a tower and texts as vectors."""

    towers = {"image": "efficientnet-lite0"}

    def raw_kind(self, modality, match_dims=True):
        return "image" if modality == "image" else None


@pytest.fixture(scope="module")
def features_model():
    rng = np.random.default_rng(0)
    return create_model("cca", n_components=2).fit(Pairs({"image": rng.normal(size=(30, 4)),
                                                          "text": rng.normal(size=(30, 3))}))


def test_raw_items_for_a_features_model_are_refused(features_model):
    pairs = Pairs({"image": ["a.png", "b.png"], "text": ["a cat", "a dog"]})
    with pytest.raises(InputError, match=r"^--dataset: the model embeds image items only as feature vectors, "
                                         r"but 'drawings' gives raw image items \(file paths\); fit a model"):
        check_dataset_items(features_model, pairs, ["image", "text"], "drawings")
    with pytest.raises(InputError, match=r"raw text items \(texts\)"):
        check_dataset_items(features_model, pairs, ["text"], "drawings")
    # vectors are what it reads
    check_dataset_items(features_model, Pairs({"image": np.zeros((2, 4)), "text": np.zeros((2, 3))}),
                        ["image", "text"], "vectors")


def test_vectors_for_a_tower_are_refused():
    with pytest.raises(InputError, match=r"^--dataset: the model reads raw image items through its "
                                         r"'efficientnet-lite0' tower, but the image items of 'digits' are 64-d"):
        check_dataset_items(_Towered(), Pairs({"image": np.zeros((2, 64))}), ["image"], "digits")
    # pictures as arrays (n, h, w) and file paths are fine; text vectors have no tower to miss
    check_dataset_items(_Towered(), Pairs({"image": np.zeros((2, 28, 28), np.uint8), "text": np.zeros((2, 3))}),
                        ["image", "text"], "fashion")
    check_dataset_items(_Towered(), Pairs({"image": ["a.png", "b.png"]}), ["image"], "drawings")


def test_raw_query_needs_a_tower(features_model, tmp_path):
    with pytest.raises(InputError, match=r"^--text: this model has no text tower"):
        check_raw_query(features_model, "text", "car")
    with pytest.raises(InputError, match=r"^--text: expected a query with visible characters, got ' '"):
        check_raw_query(_Towered(), "text", " ")
    with pytest.raises(InputError, match=r"^--image: file 'nope.png' does not exist"):
        check_raw_query(_Towered(), "image", "nope.png")
    with pytest.raises(InputError, match=r"^--image: expected an image file, got the folder"):
        check_raw_query(_Towered(), "image", str(tmp_path))


def test_raw_query_of_a_modality_the_model_lacks_names_its_modalities(features_model, tmp_path):
    sound = tmp_path / "q.wav"
    sound.write_bytes(b"RIFF")
    with pytest.raises(InputError, match=r"^--audio: this model has no audio modality \(it knows image, text\); "
                                         r"use --query-row$"):
        check_raw_query(features_model, "audio", str(sound))
    with pytest.raises(InputError, match=r"^--audio: this model has no audio modality \(it knows image, text\)$"):
        check_raw_query(features_model, "audio", str(sound), others=())


def test_raw_query_advises_only_the_options_the_command_has(features_model):
    with pytest.raises(InputError, match=r"no text tower \(it embeds text items only as feature vectors\); use "
                                         r"--query-row or a model fitted with --towers$"):
        check_raw_query(features_model, "text", "car")
    with pytest.raises(InputError, match=r"no text tower \(it embeds text items only as feature vectors\); use a "
                                         r"model fitted with --towers$"):
        check_raw_query(features_model, "text", "car", others=())


@pytest.mark.parametrize("towers, needle", [
    ("efficientnet-lite0,minilm", "--towers: 'efficientnet-lite0' reads raw image items, but the image items of "
                                  "'wikipedia' are 128-d feature vectors"),
    (",", "--towers: expected tower names separated by commas"),
    ("", "--towers: expected tower names separated by commas"),
])
def test_fit_towers_on_feature_vectors_is_refused(tmp_path, capsys, towers, needle):
    from cli_support import one_line, run

    code, _, err = run(capsys, "fit", "wikipedia", "--towers", towers, "--out", tmp_path / "m")
    assert code == 2 and needle in err and one_line(err)
    assert not (tmp_path / "m").exists()


def test_search_gallery_and_serve_plots_are_checked_first(tmp_path, capsys):
    from cli_support import one_line, run

    code, _, err = run(capsys, "search", tmp_path / "idx", "--query-row", "3", "--gallery", "")
    assert code == 2 and "--gallery: expected a file name, got ''" in err and one_line(err)
    code, _, err = run(capsys, "search", tmp_path / "idx", "--query-row", "3", "--gallery", tmp_path / "g.txt")
    assert code == 2 and "--gallery: the gallery is a PNG image" in err
    code, _, err = run(capsys, "serve", "--index", tmp_path / "idx", "--plots", tmp_path / "none")
    assert code == 2 and "--plots: expected a folder of map.png" in err and one_line(err)
