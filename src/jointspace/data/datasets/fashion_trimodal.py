"""Fashion-MNIST with three real modalities: the image, a sentence and a spoken word.

Each Fashion-MNIST image is paired with a sentence about its class (one of ``TEMPLATES``,
drawn at random per sample) and a clip of its class word spoken by espeak-ng (from the
``spoken-words`` dataset, drawn at random among the split's clips of that class).

Splits: ``train`` is the first 55,000 images of Fashion-MNIST's train file, ``val`` its last
5,000, ``test`` the 10,000 test images.  The clips of each split come from the spoken-words
split of the same name, which is split by accent: validation and test voices are never
heard in training.
"""

from __future__ import annotations

import re

import numpy as np

from ..._validation import check_int
from ...errors import InputError, MissingDependencyError
from .. import speech
from ..pairs import Pairs
from . import Dataset, load_dataset, register_dataset
from .fashion_mnist import APT_PACKAGE as FASHION_APT_PACKAGE
from .fashion_mnist import CITATION as FASHION_CITATION
from .fashion_mnist import CLASS_WORDS, LABEL_NAMES, FashionMNIST

TEMPLATES = ("a photo of a {}", "a picture of a {}", "an image of the {}", "a {} on a white background",
             "a close-up photo of a {}", "this is a {}", "a black and white photo of a {}", "a small {}")
#: (Fashion-MNIST file split, first image, end) of each split; None = to the end of the file
SOURCES = {"train": ("train", 0, 55_000), "val": ("train", 55_000, None), "test": ("test", 0, None)}
ESPEAK_CITATION = "Speech synthesised with eSpeak NG (https://github.com/espeak-ng/espeak-ng)."

_ARTICLE = re.compile(r"\ba \{\}")


def sentence(template: str, word: str) -> str:
    """``template`` filled with ``word``, with "a" before it turned into "an" before a vowel.

    >>> sentence("a {} on a white background", "ankle boot")
    'an ankle boot on a white background'
    >>> sentence("a small {}", "ankle boot")
    'a small ankle boot'
    """
    if word[:1].lower() in "aeiou":
        template = _ARTICLE.sub("an {}", template)
    return template.format(word)


def _fashion_images(split: str, root) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 28, 28) uint8 and labels (n,) int64 of the whole split (before ``limit``)."""
    file_split, start, stop = SOURCES[split]
    fm = load_dataset("fashion-mnist", split=file_split, root=root)
    return np.asarray(fm["image"])[start:stop], np.asarray(fm.labels, dtype=np.int64)[start:stop]


@register_dataset
class FashionTrimodal(Dataset):
    name = "fashion-mnist-trimodal"
    description = ("Fashion-MNIST image + class sentence + spoken class word (espeak-ng); "
                   "val/test voices unseen in training")
    splits = ("train", "val", "test")
    modalities = ("image", "text", "audio")
    citation = f"{FASHION_CITATION} {ESPEAK_CITATION}"

    def missing(self, need_fashion: bool = True) -> str | None:
        packages = []
        if need_fashion and FashionMNIST().missing():
            packages.append(FASHION_APT_PACKAGE)
        if speech.espeak_path() is None:
            packages.append(speech.APT_PACKAGE)
        return f"apt-get install -y {' '.join(packages)}" if packages else None

    def load(self, split: str, **options) -> Pairs:
        # an explicit root= replaces the Debian Fashion-MNIST package; espeak-ng is still needed
        if options.get("root") is not None:
            if split not in self.splits:
                raise InputError(f"split: dataset {self.name!r} has splits {', '.join(self.splits)}; got {split!r}")
            self.check_options(options)
            why = self.missing(need_fashion=False)
            if why:
                raise MissingDependencyError(f"dataset {self.name!r} is not installed: {why}")
            return self._load(split, **options)
        return super().load(split, **options)

    def _load(self, split: str, limit: int | None = None, settings_per_accent: int = 5, seed: int = 0,
              root=None, cache_dir=None) -> Pairs:
        """Load one split, synthesising (once, cached) the spoken clips it needs.

        Parameters
        ----------
        limit : int, optional
            Keep only the first ``limit`` images of the split.  The random draws are made for
            the whole split first, so a limited split is a prefix of the full one.
        settings_per_accent : int
            Voice settings per accent in ``spoken-words`` (1..54); each split's clips per class
            are its accents times this.
        seed : int
            Seed of the template and clip draws (with the split's index, so every split
            differs).
        root : str or path-like, optional
            Folder with Fashion-MNIST's four IDX files (default: the Debian package's folder).
        cache_dir : str or path-like, optional
            Folder for the spoken-words WAV files (default: the user cache).

        Returns
        -------
        Pairs
            ``image`` uint8 (N, 28, 28); ``text`` N sentences; ``audio`` N WAV paths; labels
            int64 (N,) in 0..9 with ``label_names``; ids ``"<split>-<i>"``; metadata
            ``class_name``, ``template`` (index into ``TEMPLATES``), ``accent``, ``voice``,
            ``speaker`` (the voice setting, as in ``spoken-words``) and ``clip`` (the
            spoken-words id of the clip, ending in its word).  Each split has
            ``10 * accents * settings_per_accent`` distinct clips, so many rows share a clip.
        """
        limit = None if limit is None else check_int(limit, "limit", low=1)
        seed = check_int(seed, "seed", low=0)
        images, labels = _fashion_images(split, root)
        clips = load_dataset("spoken-words", split=split, words=list(CLASS_WORDS),
                             settings_per_accent=settings_per_accent, cache_dir=cache_dir)
        clip_labels = np.asarray(clips.labels)
        by_class = [np.flatnonzero(clip_labels == c) for c in range(len(CLASS_WORDS))]
        counts = np.array([len(ix) for ix in by_class])

        rng = np.random.default_rng([seed, self.splits.index(split)])
        templates = rng.integers(0, len(TEMPLATES), size=len(labels))
        within = rng.integers(0, counts[labels])
        if limit is not None:
            images, labels, templates, within = images[:limit], labels[:limit], templates[:limit], within[:limit]
        picks = [int(by_class[c][k]) for c, k in zip(labels, within)]

        texts = [sentence(TEMPLATES[t], CLASS_WORDS[c]) for t, c in zip(templates, labels)]
        meta = clips.metadata
        return Pairs({"image": np.ascontiguousarray(images, dtype=np.uint8), "text": texts,
                      "audio": [clips["audio"][i] for i in picks]},
                     labels=labels.astype(np.int64),
                     ids=np.array([f"{split}-{i}" for i in range(len(labels))]),
                     metadata={"class_name": [LABEL_NAMES[c] for c in labels],
                               "template": templates.astype(np.int64),
                               "accent": [meta["accent"][i] for i in picks],
                               "voice": [meta["voice"][i] for i in picks],
                               "speaker": [meta["speaker"][i] for i in picks],
                               "clip": [str(clips.ids[i]) for i in picks]},
                     label_names=list(LABEL_NAMES), name=self.name)


__all__ = ["FashionTrimodal", "TEMPLATES", "SOURCES", "sentence"]
