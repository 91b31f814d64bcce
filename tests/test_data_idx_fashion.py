"""IDX reader and the Fashion-MNIST dataset."""

import gzip
import re

import numpy as np
import pytest

from jointspace.data.datasets import get_dataset, list_datasets, load_dataset
from jointspace.data.datasets import fashion_mnist as fm
from jointspace.data.idx import read_idx, write_idx
from jointspace.errors import InputError, MissingDependencyError


def test_idx_hand_written_header(tmp_path):
    # header written byte by byte, independent of write_idx: uint8, 3 dims (2, 2, 3)
    data = np.arange(12, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, 3]) + (2).to_bytes(4, "big") + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + data.tobytes()
    (tmp_path / "a.idx").write_bytes(raw)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), data.reshape(2, 2, 3))
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx.gz"), data.reshape(2, 2, 3))


def test_idx_big_endian_types(tmp_path):
    x = np.array([[1.5, -2.25], [3.0, 1e6]], dtype=np.float32)
    raw = bytes([0, 0, 0x0D, 2]) + (2).to_bytes(4, "big") * 2 + x.astype(">f4").tobytes()
    (tmp_path / "f.idx").write_bytes(raw)
    out = read_idx(tmp_path / "f.idx")
    assert out.dtype == np.float32 and out.dtype.byteorder in "=<|"
    np.testing.assert_array_equal(out, x)
    y = np.array([-5, 70000], dtype=np.int32)
    write_idx(tmp_path / "i.idx", y)
    assert (tmp_path / "i.idx").read_bytes()[:4] == bytes([0, 0, 0x0C, 1])
    np.testing.assert_array_equal(read_idx(tmp_path / "i.idx"), y)


def test_idx_bad_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_idx(tmp_path / "none")
    (tmp_path / "m").write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(InputError, match="bad magic"):
        read_idx(tmp_path / "m")
    (tmp_path / "t").write_bytes(bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 7]))
    with pytest.raises(InputError, match="type code 0x42"):
        read_idx(tmp_path / "t")
    write_idx(tmp_path / "short", np.zeros((4, 5), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-3])
    with pytest.raises(InputError, match=r"declares shape \(4, 5\).*holds 17 bytes"):
        read_idx(tmp_path / "short")
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b\x08 not gzip")
    with pytest.raises(InputError, match="cannot read"):
        read_idx(tmp_path / "bad.gz")


def _fake_root(tmp_path, n=7):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10
    for split, (im, lb) in fm.FILES.items():
        write_idx(tmp_path / im, imgs)
        write_idx(tmp_path / lb, labels)
        (tmp_path / (lb + ".gz")).write_bytes(gzip.compress((tmp_path / lb).read_bytes()))
        (tmp_path / lb).unlink()
    return imgs, labels


def test_fashion_from_root(tmp_path):
    imgs, labels = _fake_root(tmp_path)
    p = load_dataset("fashion-mnist", "test", root=tmp_path)
    np.testing.assert_array_equal(p["image"], imgs)
    np.testing.assert_array_equal(p.labels, labels)
    assert p["text"][1] == "a photo of a trouser" and p["text"][9 % 7] == "a photo of a pullover"
    assert p.label_names[0] == "T-shirt/top" and len(p.label_names) == 10
    q = load_dataset("fashion-mnist", "train", root=tmp_path, limit=3, channel=True)
    assert q["image"].shape == (3, 28, 28, 1)
    with pytest.raises(InputError, match="limit"):
        load_dataset("fashion-mnist", "train", root=tmp_path, limit=0)


@pytest.mark.parametrize("limit, message", [(0, "limit: expected an integer >= 1, got 0"),
                                            (2.5, "limit: expected an integer, got 2.5"),
                                            ("3", "limit: expected an integer, got '3'")])
@pytest.mark.parametrize("name", ["fashion-mnist", "fashion-mnist-trimodal"])
def test_fashion_bad_limit_is_worded_as_in_the_other_datasets(tmp_path, name, limit, message):
    _fake_root(tmp_path)
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        load_dataset(name, "test", root=tmp_path, limit=limit)


def test_fashion_class_sentences():
    assert [fm.class_sentence(i) for i in (0, 9)] == ["a photo of a t-shirt", "a photo of an ankle boot"]


def test_fashion_missing_package(tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "DEFAULT_ROOT", tmp_path / "absent")
    ds = get_dataset("fashion-mnist")
    assert ds.missing() == "apt-get install -y dataset-fashion-mnist"
    with pytest.raises(MissingDependencyError, match="apt-get install -y dataset-fashion-mnist"):
        ds.load("train")
    row = next(r for r in list_datasets() if r["name"] == "fashion-mnist")
    assert row["available"] is False and "apt-get install" in row["install"]


def test_fashion_root_missing_files(tmp_path):
    with pytest.raises(InputError, match="train-images-idx3-ubyte"):
        load_dataset("fashion-mnist", "train", root=tmp_path)


@pytest.mark.skipif(get_dataset("fashion-mnist").missing() is not None,
                    reason="needs: apt-get install -y dataset-fashion-mnist (make test installs it)")
def test_fashion_real_package():
    p = load_dataset("fashion-mnist", "test")
    assert len(p) == 10000 and p["image"].shape == (10000, 28, 28) and p["image"].dtype == np.uint8
    assert np.bincount(p.labels).tolist() == [1000] * 10


def _header(code, dims):
    return bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_corrupt_header_is_checked_before_allocating(tmp_path, gz):
    # these headers declare 2**128 bytes (numpy: "array is too big") and 2 PiB (MemoryError)
    cases = {"huge": (_header(0x08, [0xFFFFFFFF] * 4), "(4294967295, 4294967295, 4294967295, 4294967295)",
                      0xFFFFFFFF ** 4),
             "big": (_header(0x0E, [65535] * 3), "(65535, 65535, 65535)", 65535 ** 3 * 8)}
    for name, (head, shape, nbytes) in cases.items():
        raw = head + bytes(10)
        f = tmp_path / (name + (".gz" if gz else ""))
        f.write_bytes(gzip.compress(raw) if gz else raw)
        with pytest.raises(InputError, match=rf"{name}.*declares shape {re.escape(shape)} \({nbytes} bytes of data\) "
                                             r"but holds 10 bytes"):
            read_idx(f)


def test_idx_gzip_payload_size_checked(tmp_path):
    head = _header(0x0B, [2, 3])
    (tmp_path / "long.gz").write_bytes(gzip.compress(head + bytes(13)))
    with pytest.raises(InputError, match=r"declares shape \(2, 3\) \(12 bytes of data\) but holds at least 13 bytes"):
        read_idx(tmp_path / "long.gz")
    (tmp_path / "ok.gz").write_bytes(gzip.compress(head + np.arange(-3, 3, dtype=">i2").tobytes()))
    out = read_idx(tmp_path / "ok.gz")
    assert out.dtype == np.int16 and out.flags.writeable
    np.testing.assert_array_equal(out, [[-3, -2, -1], [0, 1, 2]])
    (tmp_path / "empty.gz").write_bytes(gzip.compress(_header(0x08, [0, 28])))
    assert read_idx(tmp_path / "empty.gz").shape == (0, 28)


def test_fashion_root_with_corrupt_header(tmp_path):
    _fake_root(tmp_path)
    (tmp_path / fm.FILES["test"][0]).write_bytes(_header(0x08, [65535] * 3) + bytes(5))
    with pytest.raises(InputError, match=r"declares shape \(65535, 65535, 65535\).*holds 5 bytes"):
        load_dataset("fashion-mnist", "test", root=tmp_path)


def test_a_damaged_package_file_says_how_to_reinstall_the_package(tmp_path, monkeypatch):
    """A truncated file of the Debian package got the bare IDX size error, while a missing one
    names the apt-get command; a root= of the user's own is not theirs to reinstall."""
    _fake_root(tmp_path)
    image_file = tmp_path / fm.FILES["test"][0]
    image_file.write_bytes(image_file.read_bytes()[:-100])   # cut short, as an interrupted unpack leaves it
    monkeypatch.setattr(fm, "DEFAULT_ROOT", tmp_path)
    with pytest.raises(InputError, match=r"declares shape \(7, 28, 28\) \(5488 bytes of data\) but holds 5388 "
                                         r"bytes; the package's files are damaged: reinstall them with "
                                         r"apt-get install --reinstall -y dataset-fashion-mnist$"):
        load_dataset("fashion-mnist", "test")
    with pytest.raises(InputError, match=r"but holds 5388 bytes$"):
        load_dataset("fashion-mnist", "test", root=tmp_path)
