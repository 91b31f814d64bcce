"""Spoken words: speech synthesised with Debian's ``espeak-ng``, paired with the word's text.

The vocabulary is the digits ``zero`` .. ``nine`` and the ten Fashion-MNIST class words.
Each word is spoken in eight English accents, each accent with several voice settings
(variant, speed, pitch), giving 20 x 40 = 800 clips by default.  The split is by accent:
test accents (and the validation accent) are never heard in training, so test figures
measure unseen voices.  Synthesis is deterministic and cached (keyed by text, voice,
speed, pitch and the espeak-ng version).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
import numpy as np

from ..._validation import check_float, check_int
from ...errors import InputError, JointspaceError
from .. import speech
from .._parallel import default_workers
from ..._progress import progress_bar
from ..cache import FileCache, content_key
from ..pairs import Pairs
from . import Dataset, register_dataset
from .digits import WORDS as DIGIT_WORDS
from .fashion_mnist import CLASS_WORDS

VOCABULARY = tuple(DIGIT_WORDS) + tuple(CLASS_WORDS)
SPLIT_ACCENTS = {
    "train": ("en-gb", "en-us", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd"),
    "val": ("en-us-nyc",),
    "test": ("en-gb-scotland", "en-029"),
}
ACCENTS = tuple(a for accents in SPLIT_ACCENTS.values() for a in accents)
VARIANTS = ("m1", "f2", "m3", "f4", "m5", "f1")
SPEEDS = (130, 160, 190)
PITCHES = (35, 50, 65)


GRID = tuple((v, s, p) for v in VARIANTS for s in SPEEDS for p in PITCHES)


def voice_settings(accent: str, n: int) -> list[speech.Voice]:
    """``n`` distinct, deterministic voice settings (variant, speed, pitch) for one accent.

    Setting ``k`` of accent number ``a`` (its place in ``ACCENTS``) is entry
    ``(7 a + 11 k) mod 54`` of the grid variants x speeds x pitches; 11 is prime to 54, so
    the first 54 settings of an accent are all different.
    """
    a = ACCENTS.index(accent) if accent in ACCENTS else 0
    return [speech.Voice(accent, *GRID[(7 * a + 11 * k) % len(GRID)]) for k in range(n)]


def _job(word: str, voice: speech.Voice, path: str, timeout: float):
    try:
        speech.synthesise(word, voice, path, timeout=timeout)
        return None
    except InputError:
        raise  # the caller's mistake, not a failed clip: report it as such
    except JointspaceError as exc:
        return str(exc)


def check_words(words) -> list[str]:
    """The vocabulary ``words`` as a list, or :class:`InputError` naming the bad word.

    Parameters
    ----------
    words : sequence of str
        Distinct words or short phrases, each made of letters, digits, spaces and simple
        punctuation (what :func:`jointspace.data.speech.synthesise` accepts).

    Returns
    -------
    list of str
    """
    if isinstance(words, (str, bytes)):
        raise InputError(f"words: expected a list of words, got the single string {words!r}; "
                         f"wrap it in a list, e.g. [{words!r}]")
    try:
        vocab = list(words)
    except TypeError:
        raise InputError(f"words: expected a list of words, got {type(words).__name__}") from None
    if not vocab:
        raise InputError("words: expected at least one word, got an empty list")
    for i, w in enumerate(vocab):
        speech.check_text(w, f"words[{i}]")
        if w in vocab[:i]:
            raise InputError(f"words[{i}]: expected distinct words, got {w!r} more than once")
    return vocab


@register_dataset
class SpokenWords(Dataset):
    name = "spoken-words"
    description = "words (digits, clothing) spoken by espeak-ng in 8 English accents; test accents unseen"
    splits = ("train", "val", "test")
    modalities = ("audio", "text")
    citation = "Speech synthesised with eSpeak NG (https://github.com/espeak-ng/espeak-ng)."

    def __init__(self):
        self.summary: dict = {}

    def missing(self) -> str | None:
        return None if speech.espeak_path() else f"apt-get install -y {speech.APT_PACKAGE}"

    def _load(self, split: str, words=None, settings_per_accent: int = 5, limit: int | None = None,
              workers: int | None = None, timeout: float = 30.0, cache_dir=None) -> Pairs:
        """Load one split, synthesising (once) the clips not cached yet.

        Parameters
        ----------
        words : list of str, optional
            The vocabulary (default: ``VOCABULARY``, 20 words): distinct words or short
            phrases of letters, digits, spaces and simple punctuation (see
            :func:`check_words`); a single string is refused, not split into letters.
        settings_per_accent : int
            Voice settings per accent (1..54).
        limit : int, optional
            Keep only the first ``limit`` clips of the split (ordered by accent, setting, word).
        workers : int, optional
            espeak-ng processes run at once (default: the CPUs available, at most 4).
        timeout : float
            Seconds one clip may take.
        cache_dir : path, optional
            Folder for the WAV files (default: the user cache).

        Returns
        -------
        Pairs
            ``audio``: WAV paths (mono 16-bit, 22,050 Hz); ``text``: the word; labels: the
            word's index in the vocabulary; metadata ``word``, ``accent``, ``variant``,
            ``speed``, ``pitch``, ``voice`` (accent and variant) and ``speaker`` (the voice
            setting: accent, variant, speed and pitch; group by it to keep one speaker's clips
            together, as in :func:`jointspace.eval.probes.probe_accuracy`).
        """
        vocab = list(VOCABULARY) if words is None else check_words(words)
        n = check_int(settings_per_accent, "settings_per_accent", low=1, high=len(GRID))
        limit = None if limit is None else check_int(limit, "limit", low=1)
        workers = default_workers() if workers is None else check_int(workers, "workers", low=1)
        timeout = check_float(timeout, "timeout", low=0, low_open=True)
        cache = FileCache("spoken-words", folder=cache_dir)
        version = speech.espeak_version()

        rows = [(w, v) for accent in SPLIT_ACCENTS[split] for v in voice_settings(accent, n) for w in vocab]
        if limit is not None:
            rows = rows[:limit]
        for v in {v for _, v in rows}:
            speech.check_voice(v)
        paths = [cache.path(content_key("espeak-wav", w, v.accent, v.variant, v.speed, v.pitch, version), ".wav")
                 for w, v in rows]
        todo = [i for i, p in enumerate(paths) if not cache.is_valid(p)]
        errors = []
        if todo:
            with progress_bar(f"spoken-words: synthesising {split}", len(todo)) as advance, \
                    ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [(i, pool.submit(_job, rows[i][0], rows[i][1], str(paths[i]), timeout)) for i in todo]
                for i, fut in futures:
                    err = fut.result()
                    if err is None:
                        cache.record(paths[i])
                    else:
                        errors.append(err)
                    advance()
            cache.flush()
        if errors:
            raise JointspaceError(f"spoken-words: {len(errors)} of {len(todo)} clips failed; first: {errors[0]}")
        self.summary = {"split": split, "clips": len(rows), "synthesised_now": len(todo),
                        "from_cache": len(rows) - len(todo), "espeak": version}
        words_col = [w for w, _ in rows]
        voices = [v for _, v in rows]
        pairs = Pairs({"audio": [str(p) for p in paths], "text": words_col},
                      labels=np.array([vocab.index(w) for w in words_col], dtype=np.int64),
                      ids=np.array([f"{v.spec}/s{v.speed}/p{v.pitch}/{w}" for w, v in rows]),  # speaker/word
                      metadata={"word": words_col, "accent": [v.accent for v in voices],
                                "variant": [v.variant for v in voices], "speed": [v.speed for v in voices],
                                "pitch": [v.pitch for v in voices], "voice": [v.spec for v in voices],
                                "speaker": [f"{v.spec}/s{v.speed}/p{v.pitch}" for v in voices]},
                      label_names=vocab, name=self.name)
        pairs.summary = self.summary
        return pairs


def clip_count(settings_per_accent: int = 5, words=None) -> dict:
    """Clips per split for the given settings (no synthesis)."""
    nw = len(VOCABULARY if words is None else check_words(words))
    return {s: len(a) * settings_per_accent * nw for s, a in SPLIT_ACCENTS.items()}


__all__ = ["SpokenWords", "VOCABULARY", "SPLIT_ACCENTS", "voice_settings", "clip_count", "check_words"]
