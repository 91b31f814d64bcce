"""load_dataset: options a built-in dataset's loader does not take are refused by name."""

import pytest

from jointspace import load_dataset
from jointspace.errors import InputError


def test_an_option_the_loader_does_not_take_is_refused_naming_it():
    with pytest.raises(InputError, match=r"limit: dataset 'digits' takes the options shape; got 'limit'"):
        load_dataset("digits", "train", limit=5)                 # was a TypeError from Digits._load
    with pytest.raises(InputError, match=r"limt: dataset 'photos' takes the options .*; got 'limt'"):
        load_dataset("photos", "all", limt=5)
    assert len(load_dataset("digits", "test", shape="image")) == 450


def test_wikipedia_refuses_limit_instead_of_loading_every_row():
    with pytest.raises(InputError, match=r"limit: dataset 'wikipedia' takes no options; got 'limit'"):
        load_dataset("wikipedia", "train", limit=5)              # gave all 2,173 rows without a word
    assert len(load_dataset("wikipedia", "test")) == 693


@pytest.mark.parametrize("name", ["fashion-mnist", "fashion-mnist-trimodal", "openclipart"])
def test_a_misspelt_option_beside_root_is_refused_naming_it(tmp_path, name):
    with pytest.raises(InputError, match=rf"limt: dataset '{name}' takes the options .*root.*; got 'limt'"):
        load_dataset(name, "test", root=str(tmp_path), limt=5)


def test_the_command_line_takes_the_options_the_dataset_declares(monkeypatch):
    from jointspace.cli.commands.embed import _dataset_options
    from jointspace.data.datasets import get_dataset

    monkeypatch.setattr(type(get_dataset("wikipedia")), "option_names", lambda self: ["limit"])
    assert _dataset_options("wikipedia", {"limit": "5"}) == {"limit": "5"}
    with pytest.raises(InputError, match=r"--option: dataset 'wikipedia' accepts limit; got limt"):
        _dataset_options("wikipedia", {"limt": "5"})
