"""The digits and photos datasets."""

import os

import numpy as np
import pytest
from PIL import Image

from jointspace.data.datasets import get_dataset, load_dataset


def test_digits_split_is_stratified_deterministic_and_disjoint():
    from sklearn.datasets import load_digits

    a, b = load_dataset("digits", "train"), load_dataset("digits", "train")
    te = load_dataset("digits", "test")
    np.testing.assert_array_equal(a.ids, b.ids)
    assert len(a) + len(te) == 1797 and not set(a.ids) & set(te.ids)
    ref = load_digits()
    np.testing.assert_array_equal(te["image"], ref.data[te.ids])
    np.testing.assert_array_equal(te.labels, ref.target[te.ids])
    # each class keeps its share within one sample
    full = np.bincount(ref.target) / 1797
    assert np.abs(np.bincount(te.labels) / len(te) - full).max() < 0.01
    assert te["text"][0] == f"a handwritten digit {te.labels[0]}"
    assert load_dataset("digits", "test", shape="image")["image"].shape == (len(te), 8, 8)


@pytest.mark.skipif(get_dataset("photos").missing() is not None, reason="needs: pip install scikit-image")
def test_photos(tmp_path):
    p = load_dataset("photos", "all", cache_dir=tmp_path)
    assert len(p) >= 20 and len(set(p["text"])) == len(p)
    img = Image.open(p["image"][list(p.ids).index("chelsea")])
    assert img.mode == "RGB" and img.size == (451, 300)
    # second load reuses the files
    mtime = {f: os.stat(f).st_mtime_ns for f in p["image"]}
    q = load_dataset("photos", "all", cache_dir=tmp_path)
    assert {f: os.stat(f).st_mtime_ns for f in q["image"]} == mtime
