"""Error paths of the subcommands as a user meets them: options that would choose nothing,
damaged saved folders named by the argument that passed them, and interrupted runs."""

import pytest

from cli_support import one_line, run


@pytest.fixture
def split_manifest(tmp_path):
    """A manifest of captions whose column ``split`` names each row's split."""
    path = tmp_path / "captions.csv"
    path.write_text("text,label,split\na red car,car,train\na blue car,car,train\n"
                    "a green tree,tree,test\na tall tree,tree,test\n", encoding="utf-8")
    return path


def test_val_fraction_that_would_hold_out_nothing_is_refused(tmp_path, capsys, split_manifest):
    """A built-in dataset has fixed splits and a split column names every row's: --val-fraction
    there would be ignored without a word."""
    code, _, err = run(capsys, "eval", tmp_path / "nomodel", "--data", "wikipedia", "--val-fraction", "0.3")
    assert code == 2 and one_line(err), err
    assert "--val-fraction: 'wikipedia' is a built-in dataset with fixed splits" in err, err
    code, _, err = run(capsys, "fit", "wikipedia", "--model", "cca", "--val-fraction", "0.3", "--out", tmp_path / "m")
    assert code == 2 and one_line(err) and "--val-fraction: 'wikipedia' is a built-in dataset" in err, err
    assert not (tmp_path / "m").exists()
    code, _, err = run(capsys, "eval", tmp_path / "nomodel", "--data", split_manifest, "--split-column", "split",
                       "--val-fraction", "0.3")
    assert code == 2 and one_line(err), err
    assert "--val-fraction: the split column already decides every row's split" in err, err
