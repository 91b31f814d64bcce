"""The Wikipedia cross-modal retrieval benchmark (published features).

Rasiwasia, Costa Pereira, Coviello, Doyle, Lanckriet, Levy and Vasconcelos, "A New Approach to
Cross-Modal Multimedia Retrieval", ACM Multimedia 2010 (extended in IEEE TPAMI 36(3), 2014).
2,866 image-text documents, 10 categories, 2,173 train / 693 test.  The image view is a
128-word bag of SIFT visual words, the text view 10 LDA topic proportions.  See
``builtin/wikipedia/README.md`` for the protocol and reference figures.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from ..pairs import Pairs
from . import Dataset, register_dataset

CITATION = ("N. Rasiwasia, J. Costa Pereira, E. Coviello, G. Doyle, G. Lanckriet, R. Levy, N. Vasconcelos. "
            "A New Approach to Cross-Modal Multimedia Retrieval. ACM Multimedia 2010.")


def _folder():
    return resources.files("jointspace.data") / "builtin" / "wikipedia"


@register_dataset
class Wikipedia(Dataset):
    name = "wikipedia"
    description = "Wikipedia image-text benchmark: 128-d SIFT BoW images, 10-d LDA texts, 10 classes"
    splits = ("train", "test")
    modalities = ("image", "text")
    citation = CITATION

    def missing(self):
        return None if (_folder() / "raw_features.mat").is_file() else "the package data is incomplete; reinstall jointspace"

    def _load(self, split: str) -> Pairs:
        from scipy.io import loadmat

        folder = _folder()
        mat = loadmat(str(folder / "raw_features.mat"))
        tag = "tr" if split == "train" else "te"
        listing = "trainset_txt_img_cat.list" if split == "train" else "testset_txt_img_cat.list"
        rows = [line.split("\t") for line in (folder / listing).read_text().splitlines() if line.strip()]
        names = [c.strip() for c in (folder / "categories.list").read_text().splitlines() if c.strip()]
        labels = np.array([int(r[2]) - 1 for r in rows], dtype=np.int64)
        return Pairs({"image": np.asarray(mat[f"I_{tag}"], dtype=np.float64),
                      "text": np.asarray(mat[f"T_{tag}"], dtype=np.float64)},
                     labels=labels, ids=np.array([r[1] for r in rows]),
                     metadata={"text_id": [r[0] for r in rows], "image_id": [r[1] for r in rows]},
                     label_names=names, name="wikipedia")
