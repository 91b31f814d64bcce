"""scikit-learn's 8x8 handwritten digits, paired with a sentence naming the digit.

1,797 grey 8x8 images (values 0..16) of the digits 0..9, from the UCI "Optical Recognition
of Handwritten Digits" data (Alpaydin and Kaynak, 1998), bundled with scikit-learn.
"""

from __future__ import annotations

import numpy as np

from ...errors import InputError
from ..pairs import Pairs
from . import Dataset, register_dataset

CITATION = ("E. Alpaydin, C. Kaynak. Optical Recognition of Handwritten Digits. UCI Machine Learning "
            "Repository, 1998.")
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEST_SIZE = 0.25
SEED = 0


def digit_sentence(d: int) -> str:
    """``"a handwritten digit 3"``."""
    return f"a handwritten digit {d}"


@register_dataset
class Digits(Dataset):
    name = "digits"
    description = "scikit-learn 8x8 handwritten digits (1,797) with 'a handwritten digit N' texts"
    splits = ("train", "test")
    modalities = ("image", "text")
    citation = CITATION

    def _load(self, split: str, shape: str = "flat") -> Pairs:
        """Load one split (a stratified 75/25 split with a fixed seed).

        Parameters
        ----------
        shape : {"flat", "image"}
            ``image`` as float64 (N, 64) features or as (N, 8, 8) pictures; values 0..16.
        """
        from sklearn.datasets import load_digits

        if shape not in ("flat", "image"):
            raise InputError(f"shape: expected 'flat' or 'image', got {shape!r}")
        bunch = load_digits()
        x = np.asarray(bunch.images if shape == "image" else bunch.data, dtype=np.float64)
        y = np.asarray(bunch.target, dtype=np.int64)
        pairs = Pairs({"image": x, "text": [digit_sentence(int(d)) for d in y]}, labels=y,
                      ids=np.arange(len(y)), metadata={"word": [WORDS[d] for d in y]},
                      label_names=[str(d) for d in range(10)], name=self.name)
        train, test = pairs.split(TEST_SIZE, seed=SEED, stratify=True)
        return train if split == "train" else test
