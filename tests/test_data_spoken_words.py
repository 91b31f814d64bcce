"""spoken-words: espeak-ng synthesis, valid WAV files, unseen-accent split, caching."""

import hashlib
import os

import numpy as np
import pytest
import soundfile as sf

from jointspace.data import speech
from jointspace.data.datasets import get_dataset
from jointspace.data.datasets import spoken_words as sw
from jointspace.errors import InputError, JointspaceError, MissingDependencyError

needs_espeak = pytest.mark.skipif(speech.espeak_path() is None,
                                  reason="needs: apt-get install -y espeak-ng (make test installs it)")
SMALL = dict(words=["zero", "ankle boot"], settings_per_accent=2, workers=2)


def test_vocabulary_and_accent_split():
    assert sw.VOCABULARY[:10] == ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    assert "ankle boot" in sw.VOCABULARY and len(sw.VOCABULARY) == 20
    tr, va, te = (set(sw.SPLIT_ACCENTS[s]) for s in ("train", "val", "test"))
    assert not tr & te and not tr & va and not va & te and len(te) == 2
    assert sw.clip_count() == {"train": 500, "val": 100, "test": 200}
    settings = sw.voice_settings("en-gb", 54)
    assert len({(v.variant, v.speed, v.pitch) for v in settings}) == 54


@needs_espeak
def test_accents_are_installed_english_voices():
    assert set(sw.ACCENTS) <= set(speech.english_accents())


@needs_espeak
def test_load_valid_wavs_and_cache_reuse(tmp_path):
    ds = get_dataset("spoken-words")
    p = ds.load("test", cache_dir=tmp_path, **SMALL)
    assert len(p) == 2 * 2 * 2 and ds.summary["synthesised_now"] == 8
    assert set(p.metadata["accent"]) == set(sw.SPLIT_ACCENTS["test"])
    assert p["text"] == p.metadata["word"] and p.label_names == ["zero", "ankle boot"]
    np.testing.assert_array_equal(p.labels, [0, 1] * 4)
    # a speaker is one voice setting: its id is the clip's id without the word
    md = p.metadata
    assert md["speaker"] == [f"{a}+{v}/s{s}/p{q}" for a, v, s, q in zip(md["accent"], md["variant"], md["speed"],
                                                                          md["pitch"])]
    assert md["speaker"] == [i.rsplit("/", 1)[0] for i in p.ids]
    assert len(set(md["speaker"])) == 4 and len(set(md["voice"])) <= 4
    for f in p["audio"]:
        data, rate = sf.read(f)
        assert rate == 22050 and data.ndim == 1 and len(data) > 2000 and np.abs(data).max() > 0.05
    # "ankle boot" is longer than "zero" for the same voice
    assert sf.info(p["audio"][1]).frames > sf.info(p["audio"][0]).frames
    stamps = [os.stat(f).st_mtime_ns for f in p["audio"]]
    q = ds.load("test", cache_dir=tmp_path, **SMALL)
    assert ds.summary["synthesised_now"] == 0 and q["audio"] == p["audio"]
    assert [os.stat(f).st_mtime_ns for f in q["audio"]] == stamps
    # a truncated clip is not trusted
    with open(p["audio"][3], "r+b") as fh:
        fh.truncate(30)
    ds.load("test", cache_dir=tmp_path, **SMALL)
    assert ds.summary["synthesised_now"] == 1 and sf.info(p["audio"][3]).frames > 2000


@needs_espeak
def test_splits_have_disjoint_voices(tmp_path):
    ds = get_dataset("spoken-words")
    tr = ds.load("train", cache_dir=tmp_path, words=["one"], settings_per_accent=1)
    te = ds.load("test", cache_dir=tmp_path, words=["one"], settings_per_accent=1)
    assert not set(tr.metadata["accent"]) & set(te.metadata["accent"])
    assert len(tr) == 5 and len(te) == 2 and len(set(tr.ids) | set(te.ids)) == 7


@needs_espeak
def test_synthesis_is_deterministic(tmp_path):
    v = speech.Voice("en-us", "f2", 160, 50)
    a = speech.synthesise("seven", v, tmp_path / "a.wav")
    b = speech.synthesise("seven", v, tmp_path / "b.wav")
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    c = speech.synthesise("seven", speech.Voice("en-us", "f2", 160, 70), tmp_path / "c.wav")
    assert c.read_bytes() != a.read_bytes()


@needs_espeak
def test_bad_input(tmp_path):
    ds = get_dataset("spoken-words")
    with pytest.raises(InputError, match=r"words\[1\]: expected a non-empty word or phrase, got '  '"):
        ds.load("test", cache_dir=tmp_path, words=["one", "  "])
    with pytest.raises(InputError, match="settings_per_accent"):
        ds.load("test", cache_dir=tmp_path, settings_per_accent=0)
    with pytest.raises(InputError, match="text: expected a non-empty"):
        speech.synthesise("   ", speech.Voice("en-us"), tmp_path / "x.wav")
    with pytest.raises(InputError, match="text: expected letters"):
        speech.synthesise("--help; rm", speech.Voice("en-us"), tmp_path / "x.wav")
    with pytest.raises(InputError, match="no voice 'en-xx'"):
        speech.synthesise("one", speech.Voice("en-xx"), tmp_path / "x.wav")
    with pytest.raises(InputError, match="no variant 'zz9'"):
        speech.synthesise("one", speech.Voice("en-us", "zz9"), tmp_path / "x.wav")
    with pytest.raises(JointspaceError, match="took longer than"):
        speech.synthesise("one two three four five six seven eight nine ten", speech.Voice("en-us"),
                          tmp_path / "x.wav", timeout=1e-6)
    assert not (tmp_path / "x.wav").exists() and not list(tmp_path.glob(".x.wav*"))


def test_missing_espeak(monkeypatch, tmp_path):
    monkeypatch.setattr(speech, "espeak_path", lambda: None)
    ds = get_dataset("spoken-words")
    assert ds.missing() == "apt-get install -y espeak-ng"
    with pytest.raises(MissingDependencyError, match="apt-get install -y espeak-ng"):
        ds.load("test", cache_dir=tmp_path)


@pytest.mark.parametrize("words, message", [
    ("cat", "words: expected a list of words, got the single string 'cat'; wrap it in a list, e.g. ['cat']"),
    (["one", "a/b"], "words[1]: expected letters, digits, spaces and simple punctuation (' . , ? ! -), got 'a/b'"),
    (["one", "--help; rm"], "words[1]: expected letters, digits, spaces and simple punctuation (' . , ? ! -), "
                            "got '--help; rm'"),
    (["one", "two", "one"], "words[2]: expected distinct words, got 'one' more than once"),
    (["one", 7], "words[1]: expected a non-empty word or phrase, got 7"),
    ([], "words: expected at least one word, got an empty list"),
    (5, "words: expected a list of words, got int"),
])
def test_check_words_names_the_bad_word(words, message):
    with pytest.raises(InputError) as info:
        sw.check_words(words)
    assert str(info.value) == message
    assert sw.check_words(("zero", "ankle boot", "t-shirt")) == ["zero", "ankle boot", "t-shirt"]


def test_clip_count_refuses_a_single_string():
    assert sw.clip_count(1, words=["one", "two"]) == {"train": 10, "val": 2, "test": 4}
    with pytest.raises(InputError, match="words: expected a list of words, got the single string 'cat'"):
        sw.clip_count(1, words="cat")


@needs_espeak
@pytest.mark.parametrize("words, message", [
    ("cat", r"^words: expected a list of words, got the single string 'cat'"),
    (["one", "a/b"], r"^words\[1\]: expected letters, digits, spaces and simple punctuation .*got 'a/b'$"),
])
def test_load_refuses_bad_words_before_synthesis(tmp_path, words, message):
    ds = get_dataset("spoken-words")
    with pytest.raises(InputError, match=message):
        ds.load("test", cache_dir=tmp_path, words=words, settings_per_accent=1, workers=1)
    assert not list(tmp_path.rglob("*.wav"))  # refused up front: nothing spoken, not even 'one'


@needs_espeak
def test_input_error_from_synthesis_is_not_counted_as_a_failed_clip(tmp_path, monkeypatch):
    """An InputError raised while synthesising reaches the caller as it is."""
    def refuse(text, voice, out_path, timeout=30.0):
        raise InputError(f"voice: espeak-ng has no voice {voice.accent!r}")

    monkeypatch.setattr(speech, "synthesise", refuse)
    with pytest.raises(InputError, match=r"^voice: espeak-ng has no voice 'en-gb-scotland'$"):
        get_dataset("spoken-words").load("test", cache_dir=tmp_path, words=["one"], settings_per_accent=1,
                                         workers=1)
