"""Property-based tests of the readers: arbitrary or damaged content fails only with the
project's own clear errors, and what is written is read back.

Readers: :func:`jointspace.data.readers.read_array` (.npy .npz .mat .parquet .csv),
:func:`jointspace.data.manifest.read_manifest` (CSV / JSON-lines manifests),
:func:`jointspace.data.svg.svg_metadata` and :func:`~jointspace.data.svg.aspect_ratio`.
"""

import csv
import io
import json
import math
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jointspace._validation import has_visible_text
from jointspace.data.manifest import MISSING_LABELS, read_manifest
from jointspace.data.readers import read_array
from jointspace.data.svg import UnsafeXMLError, aspect_ratio, svg_metadata
from jointspace.errors import InputError

#: examples per property: kept small for ``make test``; JOINTSPACE_FUZZ_EXAMPLES=2000 fuzzes deeper
FUZZ = settings(max_examples=int(os.environ.get("JOINTSPACE_FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


#: one folder for the whole module, each example overwriting its file
_DIR = Path(tempfile.mkdtemp(prefix="jointspace-fuzz-"))


@pytest.fixture(scope="module", autouse=True)
def _remove_files():
    yield
    shutil.rmtree(_DIR, ignore_errors=True)


def _write(suffix: str, data: bytes) -> Path:
    path = _DIR / f"f{suffix}"
    path.write_bytes(data)
    return path


def _damaged(valid: bytes, draw) -> bytes:
    """A valid file cut short, with some bytes overwritten, or with bytes inserted."""
    data = bytearray(valid)
    how = draw(st.sampled_from(["cut", "flip", "insert"]))
    if how == "cut":
        return bytes(data[:draw(st.integers(0, max(0, len(data) - 1)))])
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, max(0, len(data) - 1)))
        b = draw(st.integers(0, 255))
        if how == "flip" and data:
            data[i] = b
        else:
            data.insert(i, b)
    return bytes(data)


def _read_or_input_error(path, key=None):
    try:
        return read_array(path, key)
    except InputError as exc:
        assert str(exc).startswith(("path:", "key:")), str(exc)
        return None


# -- arrays ----------------------------------------------------------------------------------

numeric_dtypes = st.sampled_from([np.float32, np.float64, np.int8, np.int32, np.int64, np.uint16, np.bool_])
small_arrays = numeric_dtypes.flatmap(lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5)))


def _npy_bytes(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _npz_bytes(named) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **named)
    return buf.getvalue()


@FUZZ
@given(small_arrays)
def test_npy_round_trip(a):
    np.testing.assert_array_equal(read_array(_write(".npy", _npy_bytes(a))), a)


@FUZZ
@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), small_arrays, min_size=1, max_size=3))
def test_npz_round_trip(named):
    path = _write(".npz", _npz_bytes(named))
    for key, a in named.items():
        got = read_array(path, key)
        assert got.dtype == a.dtype
        np.testing.assert_array_equal(got, a)


@FUZZ
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=6),
                  elements=st.floats(-1e300, 1e300, allow_nan=False)))
def test_mat_round_trip(a):
    from scipy.io import savemat

    buf = io.BytesIO()
    savemat(buf, {"X": a})
    np.testing.assert_array_equal(read_array(_write(".mat", buf.getvalue()), "X"), a)


@FUZZ
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(1, 4)),
                  elements=st.floats(allow_nan=False, allow_infinity=False)))
def test_parquet_round_trip(a):
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({f"c{j}": a[:, j] for j in range(a.shape[1])}), buf)
    path = _write(".parquet", buf.getvalue())
    np.testing.assert_array_equal(read_array(path), a)
    np.testing.assert_array_equal(read_array(path, "c0"), a[:, :1])


@FUZZ
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(1, 4)),
                  elements=st.floats(allow_nan=False, allow_infinity=False)), st.booleans())
def test_csv_round_trip(a, header):
    buf = io.StringIO()
    w = csv.writer(buf)
    if header:
        w.writerow([f"col{j}" for j in range(a.shape[1])])
    w.writerows([[repr(float(v)) for v in row] for row in a])
    np.testing.assert_array_equal(read_array(_write(".csv", buf.getvalue().encode())), a)


@FUZZ
@given(st.sampled_from([".npy", ".npz", ".mat", ".parquet", ".csv"]), st.binary(max_size=400))
def test_arbitrary_bytes_fail_only_with_input_error(suffix, data):
    _read_or_input_error(_write(suffix, data))


@FUZZ
@given(st.data())
def test_damaged_array_files_fail_only_with_input_error(data):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from scipy.io import savemat

    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    suffix = data.draw(st.sampled_from([".npy", ".npz", ".mat", ".parquet", ".csv"]))
    if suffix == ".npy":
        valid = _npy_bytes(a)
    elif suffix == ".npz":
        valid = _npz_bytes({"a": a, "b": a[:1]})
    elif suffix == ".mat":
        buf = io.BytesIO()
        savemat(buf, {"a": a})
        valid = buf.getvalue()
    elif suffix == ".parquet":
        buf = io.BytesIO()
        pq.write_table(pa.table({"x": a[:, 0], "y": a[:, 1]}), buf)
        valid = buf.getvalue()
    else:
        valid = b"x,y\n1,2\n3,4\n"
    got = _read_or_input_error(_write(suffix, _damaged(valid, data.draw)),
                               data.draw(st.sampled_from([None, "a", "x"])))
    assert got is None or isinstance(got, np.ndarray)


@FUZZ
@given(st.text(max_size=200))
def test_arbitrary_csv_text_fails_only_with_input_error(text):
    got = _read_or_input_error(_write(".csv", text.encode("utf-8", errors="surrogatepass")))
    if got is not None:
        assert got.ndim == 2 and got.dtype == np.float64


# -- manifests -------------------------------------------------------------------------------

# texts with commas, quotes, newlines and any unicode a caption may hold (no NUL: csv refuses it;
# no lone surrogates: not UTF-8)
caption = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
                  max_size=40).filter(lambda s: s.strip())
label = st.one_of(st.integers(-10**6, 10**6),
                  st.from_regex(r"[A-Za-z][A-Za-z0-9 _-]{0,10}", fullmatch=True)
                  .filter(lambda s: s.strip().lower() not in MISSING_LABELS))


def _expected_labels(labels):
    """Labels as read_manifest defines them: ints stay ints; otherwise codes of the sorted names,
    each name without the spaces around it ("A " and "A" are one class)."""
    if all(isinstance(v, int) for v in labels):
        return list(labels), None
    names = sorted({str(v).strip() for v in labels})
    return [names.index(str(v).strip()) for v in labels], names


@FUZZ
@given(st.lists(st.tuples(caption, label), min_size=1, max_size=8), st.sampled_from([".csv", ".jsonl"]))
@example(rows=[("two\r\nlines", "a"), ("cr\ronly", "b")], suffix=".csv")
@example(rows=[("a cat", "a"), ("\u200b", "b")], suffix=".jsonl")
@example(rows=[("a cat", "A "), ("a dog", "A")], suffix=".csv")
def test_manifest_round_trip(rows, suffix):
    if suffix == ".csv":
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(["text", "label"])
        w.writerows(rows)
        data = buf.getvalue().encode()
    else:
        data = "\r\n".join(json.dumps({"text": t, "label": v}) for t, v in rows).encode()
    path = _write(suffix, data)
    if not all(has_visible_text(t) for t, _ in rows):   # e.g. a zero-width space alone: no text to read
        with pytest.raises(InputError, match=r"column 'text' holds only invisible characters"):
            read_manifest(path, "text=text,label=label", check_files=False)
        return
    pairs = read_manifest(path, "text=text,label=label", check_files=False)
    assert list(pairs["text"]) == [t for t, _ in rows]   # quoted line ends inside a caption kept
    want, names = _expected_labels([v for _, v in rows])
    np.testing.assert_array_equal(pairs.labels, want)
    assert pairs.label_names == names


@FUZZ
@given(st.sampled_from([".csv", ".jsonl"]), st.text(max_size=300), st.sampled_from([None, "auto", "text=text"]))
def test_arbitrary_manifest_text_fails_only_with_input_error(suffix, text, columns):
    path = _write(suffix, text.encode("utf-8", errors="surrogatepass"))
    try:
        pairs = read_manifest(path, columns, check_files=False)
    except InputError:
        return
    assert len(pairs) >= 1


json_value = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                      max_size=3),
                          max_leaves=6)


@FUZZ
@given(st.lists(st.dictionaries(st.sampled_from(["text", "label", "id", "image", "other"]), json_value,
                                min_size=1, max_size=5), min_size=1, max_size=5),
       st.sampled_from(["text=text", "text=text,label=label", "text=text,id=id", "image=image", "auto"]))
@example(rows=[{"text": "a", "label": 10**30}], columns="text=text,label=label")
@example(rows=[{"text": "a", "label": "99999999999999999999999"}], columns="text=text,label=label")
def test_arbitrary_json_values_in_a_manifest_fail_only_with_input_error(rows, columns):
    data = "\n".join(json.dumps(r) for r in rows).encode()
    try:
        pairs = read_manifest(_write(".jsonl", data), columns, check_files=False)
    except InputError:
        return
    assert len(pairs) == len(rows)
    if pairs.labels is not None:
        assert pairs.labels.dtype == np.int64


# -- SVG metadata ----------------------------------------------------------------------------

xml_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)


def _svg(title, keywords, description, width="10", height="20"):
    items = "".join(f"<rdf:li>{escape(k)}</rdf:li>" for k in keywords)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
            f'xmlns:cc="http://creativecommons.org/ns#" xmlns:dc="http://purl.org/dc/elements/1.1/" '
            f'width="{escape(width)}" height="{escape(height)}"><metadata><rdf:RDF><cc:Work>'
            f"<dc:title>{escape(title)}</dc:title><dc:description>{escape(description)}</dc:description>"
            f"<dc:subject><rdf:Bag>{items}</rdf:Bag></dc:subject></cc:Work></rdf:RDF></metadata></svg>").encode()


def _squash(s: str) -> str:
    return " ".join(s.split())


@FUZZ
@given(xml_text, st.lists(xml_text.filter(lambda s: "," not in s), max_size=4), xml_text)
def test_svg_metadata_round_trip(title, keywords, description):
    meta = svg_metadata(_svg(title, keywords, description))
    assert meta["title"] == _squash(title)
    assert meta["description"] == _squash(description)
    want, seen = [], set()
    for k in keywords:
        k = _squash(k)
        if k and k.lower() not in seen:
            seen.add(k.lower())
            want.append(k)
    assert meta["keywords"] == want
    assert (meta["width"], meta["height"]) == ("10", "20")


SVG_ERRORS = (ET.ParseError, UnsafeXMLError, ValueError)


@FUZZ
@given(st.binary(max_size=300))
@example(b"<!ENTITY")
@example(b'<!DOCTYPE svg [<!ENTITY a "x">')
def test_arbitrary_bytes_as_svg_fail_only_with_the_documented_errors(data):
    try:
        meta = svg_metadata(data)
    except SVG_ERRORS:
        return
    assert set(meta) == {"title", "keywords", "description", "width", "height", "viewbox"}


@FUZZ
@given(st.data())
def test_damaged_svg_fails_only_with_the_documented_errors(data):
    valid = (b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY ns "http://www.w3.org/2000/svg">]>'
             + _svg("a title", ["k1", "k2"], "words"))
    try:
        svg_metadata(_damaged(valid, data.draw))
    except SVG_ERRORS:
        pass


@FUZZ
@given(st.text(max_size=20), st.text(max_size=20), st.text(max_size=40))
@example("1e999", "1", "")
@example("1e999", "1e999", "")
@example("", "", "0 0 1e999 1")
def test_aspect_ratio_is_a_positive_finite_number_or_none(width, height, viewbox):
    r = aspect_ratio(width, height, viewbox)
    assert r is None or (math.isfinite(r) and r > 0)


@FUZZ
@given(st.floats(1e-3, 1e4), st.floats(1e-3, 1e4), st.sampled_from(["", "px", "mm", "in", "pt"]))
def test_aspect_ratio_of_sizes_in_one_unit(w, h, unit):
    assert aspect_ratio(f"{w!r}{unit}", f"{h!r}{unit}", "") == pytest.approx(w / h, rel=1e-12)
    assert aspect_ratio("", "", f"0 0 {w!r} {h!r}") == pytest.approx(w / h, rel=1e-12)


@FUZZ
@given(st.integers(1, 6), st.integers(1, 3), st.integers(1, 3), st.data())
def test_read_arrays_round_trip(n, dx, dy, data):
    from jointspace.data.readers import read_arrays

    floats = st.floats(-2.0**100, 2.0**100, allow_nan=False, width=32)
    x = data.draw(hnp.arrays(np.float32, (n, dx), elements=floats))
    y = data.draw(hnp.arrays(np.float32, (n, dy), elements=floats))
    multi = data.draw(st.booleans())
    labels = data.draw(hnp.arrays(np.bool_, (n, 3)) if multi else hnp.arrays(np.int64, n, elements=st.integers(-5, 5)))
    pairs = read_arrays(_write(".npz", _npz_bytes({"X": x, "Y": y, "L": labels.astype(np.float64)})),
                        {"image": "X", "text": "Y"}, labels="L")
    np.testing.assert_array_equal(pairs["image"], x)
    np.testing.assert_array_equal(pairs["text"], y)
    np.testing.assert_array_equal(pairs.labels, labels)
    assert pairs.labels.dtype == (bool if multi else np.int64)
