"""Fashion-MNIST from the Debian package ``dataset-fashion-mnist``.

Xiao, Rasul and Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine
Learning Algorithms", arXiv:1708.07747, 2017.  70,000 grey 28x28 images of clothing in 10
classes: 60,000 train, 10,000 test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..._validation import check_int
from ...errors import InputError
from ..cache import check_folder_arg
from ..idx import read_idx
from ..pairs import Pairs
from . import Dataset, register_dataset

CITATION = ("H. Xiao, K. Rasul, R. Vollgraf. Fashion-MNIST: a Novel Image Dataset for Benchmarking "
            "Machine Learning Algorithms. arXiv:1708.07747, 2017.")
DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
APT_PACKAGE = "dataset-fashion-mnist"
LABEL_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# one spoken / written word (or phrase) per class, in label order
CLASS_WORDS = ("t-shirt", "trouser", "pullover", "dress", "coat",
               "sandal", "shirt", "sneaker", "bag", "ankle boot")
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def class_sentence(index: int) -> str:
    """The text paired with class ``index``: ``"a photo of a trouser"``, ``"... an ankle boot"``."""
    word = CLASS_WORDS[index]
    article = "an" if word[0] in "aeiou" else "a"
    return f"a photo of {article} {word}"


def _find(root: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    return None


@register_dataset
class FashionMNIST(Dataset):
    name = "fashion-mnist"
    description = "Fashion-MNIST: 70,000 grey 28x28 clothing images, 10 classes, with class sentences"
    splits = ("train", "test")
    modalities = ("image", "text")
    citation = CITATION

    def missing(self) -> str | None:
        if all(_find(DEFAULT_ROOT, stem) for pair in FILES.values() for stem in pair):
            return None
        return f"apt-get install -y {APT_PACKAGE}"

    def load(self, split: str, **options) -> Pairs:
        # an explicit root= replaces the Debian package, so only check it when it is used
        if options.get("root") is not None:
            if split not in self.splits:
                raise InputError(f"split: dataset {self.name!r} has splits {', '.join(self.splits)}; got {split!r}")
            self.check_options(options)
            return self._load(split, **options)
        return super().load(split, **options)

    def _load(self, split: str, root=None, limit: int | None = None, channel: bool = False) -> Pairs:
        """Load one split.

        Parameters
        ----------
        root : str or path-like, optional
            Folder with the four IDX files (default: the Debian package's folder).
        limit : int, optional
            Keep only the first ``limit`` samples (the files are already in random order).
        channel : bool
            Images as (N, 28, 28, 1) instead of (N, 28, 28).

        Returns
        -------
        Pairs
            ``image`` uint8 (N, 28, 28), ``text`` class sentences, labels 0..9, label_names.
        """
        limit = None if limit is None else check_int(limit, "limit", low=1)
        folder = check_folder_arg(root, "root") if root is not None else DEFAULT_ROOT
        paths = []
        for stem in FILES[split]:
            found = _find(folder, stem)
            if found is None:
                raise InputError(f"root: {stem}(.gz) not found in {str(folder)!r}")
            paths.append(found)
        try:
            images, labels = read_idx(paths[0]), read_idx(paths[1])
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise InputError(f"root: IDX files in {str(folder)!r} disagree: images {images.shape}, "
                                 f"labels {labels.shape}")
            if labels.size and (labels.min() < 0 or labels.max() > 9):
                raise InputError(f"root: labels in {str(paths[1])!r} must be 0..9, got {labels.min()}..{labels.max()}")
        except InputError as exc:
            if root is not None:   # the user's own copy: only they know where it came from
                raise
            raise InputError(f"{exc}; the package's files are damaged: reinstall them with "
                             f"apt-get install --reinstall -y {APT_PACKAGE}") from None
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        images = np.ascontiguousarray(images, dtype=np.uint8)
        if channel:
            images = images[..., None]
        labels = labels.astype(np.int64)
        texts = [class_sentence(int(c)) for c in labels]
        return Pairs({"image": images, "text": texts}, labels=labels,
                     ids=np.array([f"{split}-{i}" for i in range(len(labels))]),
                     metadata={"class_name": [LABEL_NAMES[c] for c in labels]},
                     label_names=list(LABEL_NAMES), name=self.name)
