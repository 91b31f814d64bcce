"""One progress bar: training's bar obeys JOINTSPACE_PROGRESS as every other bar does."""

import io
import sys

import numpy as np
import pytest
import torch

from jointspace._progress import Bar, progress_bar, progress_console
# imported here, not under a fake terminal: its console decides on colours when created
from jointspace.cli._common import progress
from jointspace.models.dual_encoder import DualEncoderNet
from jointspace.train import TrainConfig, fit_dual_encoder
from jointspace.train.monitor import ProgressBar

torch.set_num_threads(1)


class FakeTerminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self):
        return True


@pytest.fixture
def stderr(monkeypatch):
    """Returns ``use(terminal)``: replaces sys.stderr by a fresh buffer (a terminal or a pipe)."""
    def use(terminal: bool):
        buf = FakeTerminal() if terminal else io.StringIO()
        monkeypatch.setattr(sys, "stderr", buf)
        return buf
    return use


def _fit(progress: bool):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype(np.float32)
    y = (x @ rng.normal(size=(6, 5))).astype(np.float32)
    torch.manual_seed(0)
    net = DualEncoderNet({"a": 6, "b": 5}, dim=4, head="linear")
    return fit_dual_encoder(net, {"a": x, "b": y}, TrainConfig(batch_size=16, epochs=1, progress=progress))


def _draw_all(enabled):
    """Draw a generic bar, the command line's bar and training's bar."""
    with progress_bar("towers", 3, enabled=enabled) as advance:
        advance(3)
    if enabled is not False:
        with progress() as bar:
            bar.advance(bar.add_task("bench", total=2), 2)
    train = ProgressBar(4, enabled if enabled is not None else True)
    train.update(4, 0.5, 0.07, 100.0)
    train.close()


@pytest.mark.parametrize("env, terminal, enabled, drawn", [
    ("", True, True, True),        # a terminal, nothing set: drawn
    ("", False, True, False),      # a pipe: silent
    ("0", True, True, False),      # turned off, even on a terminal
    ("1", False, True, True),      # forced on, even into a pipe
    ("1", True, False, False),     # the caller said no bar
])
def test_every_bar_follows_the_same_rule(monkeypatch, stderr, env, terminal, enabled, drawn):
    monkeypatch.setenv("JOINTSPACE_PROGRESS", env)
    buf = stderr(terminal)
    assert (progress_console(enabled) is not None) == drawn
    _draw_all(enabled)
    out = buf.getvalue()
    if drawn:
        assert "towers" in out and "bench" in out and "train" in out and "loss 0.5000" in out and "tau 0.0700" in out
    else:
        assert out == ""


@pytest.mark.parametrize("env, terminal, drawn", [("0", True, False), ("1", False, True), ("", False, False)])
def test_training_draws_its_bar_as_the_variable_says(monkeypatch, stderr, env, terminal, drawn):
    monkeypatch.setenv("JOINTSPACE_PROGRESS", env)
    buf = stderr(terminal)
    result = _fit(progress=True)
    assert result.steps == 2
    out = buf.getvalue()
    assert ("train" in out and "pairs/s" in out) == drawn
    if not drawn:
        assert out == ""


def test_training_without_progress_draws_nothing_even_when_forced(monkeypatch, stderr):
    monkeypatch.setenv("JOINTSPACE_PROGRESS", "1")
    buf = stderr(False)
    _fit(progress=False)
    assert buf.getvalue() == ""


def test_a_bar_of_no_units_is_never_drawn(monkeypatch, stderr):
    monkeypatch.setenv("JOINTSPACE_PROGRESS", "1")
    buf = stderr(False)
    bar = Bar("empty", 0)
    bar.advance(1)
    bar.update(1, info="x")
    bar.close()
    assert not bar.drawn and buf.getvalue() == ""
