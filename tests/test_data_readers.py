"""Array and manifest readers: each format, and each kind of bad input."""

import json
import numpy as np
import pytest

from jointspace.data.manifest import parse_columns, read_manifest
from jointspace.data.readers import read_array, read_arrays
from jointspace.errors import InputError

X = np.arange(12, dtype=np.float64).reshape(4, 3) / 7.0


def test_npy_roundtrip(tmp_path):
    np.save(tmp_path / "x.npy", X)
    np.testing.assert_array_equal(read_array(tmp_path / "x.npy"), X)


def test_npz_single_and_keyed(tmp_path):
    np.savez(tmp_path / "one.npz", feats=X)
    np.testing.assert_array_equal(read_array(tmp_path / "one.npz"), X)
    np.savez(tmp_path / "two.npz", a=X, b=X * 2)
    np.testing.assert_array_equal(read_array(tmp_path / "two.npz", key="b"), X * 2)
    with pytest.raises(InputError, match="several arrays.*a, b"):
        read_array(tmp_path / "two.npz")
    with pytest.raises(InputError, match="key: expected one of a, b.*'c'"):
        read_array(tmp_path / "two.npz", key="c")


def test_npy_object_array_is_refused(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="o.npy"):
        read_array(tmp_path / "o.npy")


def test_mat(tmp_path):
    from scipy.io import savemat

    savemat(tmp_path / "m.mat", {"I_tr": X, "T_tr": X[:, :2]})
    np.testing.assert_array_equal(read_array(tmp_path / "m.mat", key="T_tr"), X[:, :2])
    with pytest.raises(InputError, match="I_tr, T_tr"):
        read_array(tmp_path / "m.mat")


def test_a_damaged_mat_file_that_crashes_its_reader_is_an_input_error(tmp_path):
    from scipy.io import savemat

    savemat(tmp_path / "ok.mat", {"a": X.astype(np.float32)})
    data = bytearray((tmp_path / "ok.mat").read_bytes())
    tag = data.index(bytes([7, 0, 0, 0, 48, 0, 0, 0]))   # the type tag of a's 12 float32 values
    data[tag] = 0   # no such element type: scipy's reader dereferences it natively and segfaults
    (tmp_path / "bad.mat").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"^path: cannot read .*bad.mat' as mat: the file is damaged"):
        read_array(tmp_path / "bad.mat")
    np.testing.assert_array_equal(read_array(tmp_path / "ok.mat"), X.astype(np.float32))


def test_mat_labels_saved_as_a_row_vector(tmp_path):
    from scipy.io import savemat

    y = np.arange(len(X)) % 3
    savemat(tmp_path / "m.mat", {"I_tr": X, "T_tr": X[:, :2], "L_tr": y})   # savemat writes y as (1, N)
    p = read_arrays(tmp_path / "m.mat", {"image": "I_tr", "text": "T_tr"}, labels="L_tr")
    np.testing.assert_array_equal(p.labels, y)
    savemat(tmp_path / "w.mat", {"I_tr": X, "T_tr": X[:, :2], "L_tr": y[:-1]})   # one label short: still refused
    with pytest.raises(InputError, match="disagree on the number of samples"):
        read_arrays(tmp_path / "w.mat", {"image": "I_tr", "text": "T_tr"}, labels="L_tr")


NAMES = np.array(["cat", "dog", "cat", "émeu"])


def test_labels_may_be_class_names_in_every_arrays_format(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from scipy.io import savemat

    views = {"image": "I", "text": "T"}
    np.savez(tmp_path / "a.npz", I=X, T=X[:, :2], L=NAMES, B=np.char.encode(NAMES, "utf-8"))
    for key in ("L", "B"):   # str and UTF-8 bytes
        p = read_arrays(tmp_path / "a.npz", views, labels=key)
        assert p.labels.tolist() == NAMES.tolist()
        np.testing.assert_array_equal(p["image"], X.astype(np.float32))
    np.save(tmp_path / "labels.npy", NAMES)   # a labels file beside the arrays
    assert read_arrays(tmp_path / "a.npz", views, labels="labels.npy").labels.tolist() == NAMES.tolist()
    savemat(tmp_path / "c.mat", {"I": X, "T": X[:, :2], "L": np.array(list(NAMES), dtype=object)})  # cell array
    assert read_arrays(tmp_path / "c.mat", views, labels="L").labels.tolist() == NAMES.tolist()
    pq.write_table(pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "cat": NAMES}), tmp_path / "t.parquet")
    p = read_arrays(tmp_path / "t.parquet", {"image": "a,b", "text": "c"}, labels="cat")
    assert p.labels.tolist() == NAMES.tolist()
    np.testing.assert_array_equal(p["image"], X[:, :2].astype(np.float32))
    rows = "\n".join(f"{a!r},{b!r},{c!r},{n}" for (a, b, c), n in zip(X.tolist(), NAMES))
    (tmp_path / "t.csv").write_text("a,b,c,cat\n" + rows + "\n", encoding="utf-8")
    p = read_arrays(tmp_path / "t.csv", {"image": "a,b", "text": "c"}, labels="cat")
    assert p.labels.tolist() == NAMES.tolist()   # the text column does not stop the numbers being read
    np.testing.assert_allclose(p["image"], X[:, :2], rtol=1e-6)
    np.testing.assert_array_equal(read_arrays(tmp_path / "t.csv", {"image": "a"}, labels="b").labels, X[:, 1])
    # features stay numbers only, and an empty label is named
    with pytest.raises(InputError, match="expected numbers in .*line 2, column 4 holds 'cat'"):
        read_arrays(tmp_path / "t.csv", {"image": "a,cat"})
    (tmp_path / "e.csv").write_text("a,cat\n1,x\n2,\n", encoding="utf-8")
    with pytest.raises(InputError, match="expected a value in every row of 'cat' .*line 3 is empty"):
        read_arrays(tmp_path / "e.csv", {"image": "a"}, labels="cat")
    with pytest.raises(InputError, match="modality image=L: .*expected numeric data .*got dtype <U"):
        read_arrays(tmp_path / "a.npz", {"image": "L"})


def test_parquet_scalar_and_list_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2]}), tmp_path / "t.parquet")
    np.testing.assert_array_equal(read_array(tmp_path / "t.parquet"), X)
    np.testing.assert_array_equal(read_array(tmp_path / "t.parquet", key="c,a"), X[:, [2, 0]])
    pq.write_table(pa.table({"emb": [list(r) for r in X]}), tmp_path / "l.parquet")
    np.testing.assert_array_equal(read_array(tmp_path / "l.parquet"), X)
    with pytest.raises(InputError, match="'zz'"):
        read_array(tmp_path / "t.parquet", key="zz")



def test_a_null_row_of_a_parquet_list_column_is_named(tmp_path):
    """A missing vector was reported as 'holds lists of different lengths'."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"emb": [[1.0, 2.0], [3.0, 4.0], None, None]}), tmp_path / "n.parquet")
    with pytest.raises(InputError, match=r"column 'emb' of '.*n\.parquet' has no value \(null\) in 2 of 4 rows, "
                                         r"the first at row 2 \(counting from 0\)"):
        read_array(tmp_path / "n.parquet", key="emb")
    pq.write_table(pa.table({"emb": [[1.0, 2.0], [3.0]]}), tmp_path / "r.parquet")
    with pytest.raises(InputError, match="holds lists of different lengths"):
        read_array(tmp_path / "r.parquet", key="emb")

def test_csv_with_and_without_header(tmp_path):
    (tmp_path / "h.csv").write_text("a,b,c\n" + "\n".join(",".join(map(repr, r)) for r in X.tolist()) + "\n")
    np.testing.assert_allclose(read_array(tmp_path / "h.csv"), X)
    np.testing.assert_allclose(read_array(tmp_path / "h.csv", key="b"), X[:, [1]])
    (tmp_path / "n.csv").write_text("\n".join(",".join(map(repr, r)) for r in X.tolist()))
    np.testing.assert_allclose(read_array(tmp_path / "n.csv"), X)


def test_csv_ragged_names_line(tmp_path):
    (tmp_path / "r.csv").write_text("1,2,3\n4,5\n")
    with pytest.raises(InputError, match=r"ragged CSV .*r\.csv.*line 2 has 2 values, expected 3"):
        read_array(tmp_path / "r.csv")


def test_csv_non_numeric_cell(tmp_path):
    (tmp_path / "s.csv").write_text("a,b\n1,2\n3,oops\n")
    with pytest.raises(InputError, match="line 3, column 2 holds 'oops'"):
        read_array(tmp_path / "s.csv")


def test_missing_file_and_wrong_extension(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_array(tmp_path / "nope.npy")
    (tmp_path / "x.txt").write_text("1,2")
    with pytest.raises(InputError, match=r"expected a file ending in .npy.*x\.txt"):
        read_array(tmp_path / "x.txt")
    with pytest.raises(InputError, match="expected a file"):
        read_array(tmp_path)


@pytest.mark.parametrize("name", ["bad.npy", "bad.npz", "bad.mat", "bad.parquet"])
def test_corrupt_files(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x00\x01 this is not that format")
    with pytest.raises(InputError, match=name.replace(".", r"\.")):
        read_array(tmp_path / name)


def test_unreadable_file(tmp_path, monkeypatch):
    f = tmp_path / "x.npy"
    np.save(f, X)

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied", str(f))

    monkeypatch.setattr(np, "load", denied)  # root ignores file modes, so simulate the OS refusal
    with pytest.raises(InputError, match=r"cannot read .*x\.npy.*Permission denied"):
        read_array(f)


def test_csv_not_utf8(tmp_path):
    (tmp_path / "u.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InputError, match=r"u\.csv"):
        read_array(tmp_path / "u.csv")


# -- manifests ----------------------------------------------------------------------------

def _images(tmp_path, n=3):
    (tmp_path / "img").mkdir()
    for i in range(n):
        (tmp_path / "img" / f"{i}.png").write_bytes(b"png")


def test_parse_columns():
    assert parse_columns("image=path, text=caption,label") == {"image": "path", "text": "caption", "label": "label"}
    with pytest.raises(InputError, match="columns"):
        parse_columns(",")


def test_csv_manifest(tmp_path):
    _images(tmp_path)
    (tmp_path / "m.csv").write_text("path,caption,category,extra\n"
                                    "img/0.png,a cat,animal,x\nimg/1.png,a car,vehicle,y\nimg/2.png,\"a dog, sitting\",animal,z\n")
    p = read_manifest(tmp_path / "m.csv", "image=path,text=caption,label=category")
    assert p.modalities == ("image", "text")
    assert p["image"] == [str((tmp_path / "img" / f"{i}.png").resolve()) for i in range(3)]
    assert p["text"][2] == "a dog, sitting"
    assert p.label_names == ["animal", "vehicle"]
    np.testing.assert_array_equal(p.labels, [0, 1, 0])
    assert p.metadata["extra"] == ["x", "y", "z"]


def test_jsonl_manifest_absolute_paths_int_labels(tmp_path):
    _images(tmp_path)
    rows = [{"file": str(tmp_path / "img" / f"{i}.png"), "text": f"t{i}", "label": i % 2, "id": f"s{i}"}
            for i in range(3)]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    p = read_manifest(tmp_path / "m.jsonl", {"image": "file", "text": "text", "label": "label", "id": "id"})
    assert p["image"][1] == str(tmp_path / "img" / "1.png")
    np.testing.assert_array_equal(p.labels, [0, 1, 0])
    assert p.label_names is None
    assert list(p.ids) == ["s0", "s1", "s2"]


def test_jsonl_labels_one_and_one_point_zero_are_one_class(tmp_path):
    rows = [{"text": "a", "label": 1}, {"text": "b", "label": 1.0}, {"text": "c", "label": 2},
            {"text": "d", "label": "cat"}, {"text": "e", "label": 2.0}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    p = read_manifest(tmp_path / "m.jsonl", "text=text,label=label")
    assert p.label_names == ["1", "2", "cat"] and p.labels.tolist() == [0, 0, 1, 2, 1]
    (tmp_path / "n.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:3]))
    assert read_manifest(tmp_path / "n.jsonl", "text=text,label=label").labels.tolist() == [1, 1, 2]


def test_a_label_with_spaces_around_it_is_the_same_class(tmp_path):
    # "a, cat" after a comma and a space: the label " cat" is the class "cat", as " 3" is 3
    (tmp_path / "m.csv").write_text("caption,category\na,cat\nb, cat\nc,dog \nd, 3\n")
    p = read_manifest(tmp_path / "m.csv", "text=caption,label=category")
    assert p.label_names == ["3", "cat", "dog"] and p.labels.tolist() == [1, 1, 2, 0]


def test_duplicate_ids_name_the_rows_the_column_and_the_value(tmp_path):
    (tmp_path / "m.csv").write_text("key,caption\nx1,a\nx2,b\nx1,c\n")
    with pytest.raises(InputError, match=r"manifest '.*m.csv': rows 2 and 4 have the same id 'x1' in column 'key'"):
        read_manifest(tmp_path / "m.csv", "text=caption,id=key")


def test_manifest_missing_files_reported(tmp_path):
    _images(tmp_path, n=1)
    (tmp_path / "m.csv").write_text("path,caption\nimg/0.png,a\nimg/9.png,b\n")
    with pytest.raises(InputError, match=r"1 of 2 image files do not exist \(row 3: .*9\.png"):
        read_manifest(tmp_path / "m.csv", "image=path,text=caption")
    p = read_manifest(tmp_path / "m.csv", "image=path,text=caption", check_files=False)
    assert len(p) == 2



def test_a_manifest_path_that_is_a_folder_is_named_a_folder(tmp_path):
    """A row naming a folder was reported as a file that does not exist."""
    _images(tmp_path, n=1)
    (tmp_path / "m.csv").write_text("path,caption\nimg/0.png,a\nimg,b\n")
    with pytest.raises(InputError, match=r"1 of 2 image paths are folders, not files \(row 3: .*img \(a folder\)\)"):
        read_manifest(tmp_path / "m.csv", "image=path,text=caption")
    (tmp_path / "m.csv").write_text("path,caption\nimg/9.png,a\nimg,b\n")
    with pytest.raises(InputError, match=r"2 of 2 image files do not exist "
                                         r"\(row 2: .*9\.png; row 3: .*img \(a folder\)\)"):
        read_manifest(tmp_path / "m.csv", "image=path,text=caption")


def test_a_manifest_written_with_a_space_after_each_comma_reads_its_paths(tmp_path):
    """'a cat, img/0.png': the column was guessed from the path without its space, then read with
    it ('/x/ img/0.png' does not exist)."""
    _images(tmp_path, n=2)
    (tmp_path / "m.csv").write_text("caption, path\na cat, img/0.png\na dog, img/1.png \n", encoding="utf-8")
    p = read_manifest(tmp_path / "m.csv", "auto")
    assert p["image"] == [str((tmp_path / "img" / f"{i}.png").resolve()) for i in range(2)]

def test_manifest_missing_column(tmp_path):
    (tmp_path / "m.csv").write_text("path,caption\na.png,a\n")
    with pytest.raises(InputError, match=r"label=category not found .*its columns are path, caption"):
        read_manifest(tmp_path / "m.csv", "text=caption,label=category")


def test_manifest_empty_cell_ragged_badjson_extension(tmp_path):
    (tmp_path / "e.csv").write_text("caption,label\nhello,1\n  ,2\n")
    with pytest.raises(InputError, match="row 3 has no value in column 'caption'"):
        read_manifest(tmp_path / "e.csv", "text=caption")
    (tmp_path / "r.csv").write_text("caption,label\nhello,1,3\n")
    with pytest.raises(InputError, match="ragged CSV .*line 2"):
        read_manifest(tmp_path / "r.csv")
    (tmp_path / "b.jsonl").write_text('{"text": "a"}\n{oops\n')
    with pytest.raises(InputError, match=r"b\.jsonl.* line 2 is not valid JSON"):
        read_manifest(tmp_path / "b.jsonl")
    (tmp_path / "m.tsv").write_text("a\tb\n")
    with pytest.raises(InputError, match=r"expected a manifest ending in .csv.*m\.tsv"):
        read_manifest(tmp_path / "m.tsv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="is empty"):
        read_manifest(tmp_path / "empty.csv")


def test_pairs_subset_keeps_rows_aligned_and_refuses_repeats():
    from jointspace import Pairs

    x = np.arange(12, dtype=float).reshape(6, 2)
    p = Pairs({"a": x, "b": -x}, labels=np.array([0, 1, 0, 1, 0, 1]), ids=[10, 11, 12, 13, 14, 15])
    s = p.subset([4, 1])
    assert s.ids.tolist() == [14, 11] and s.labels.tolist() == [0, 1]
    np.testing.assert_array_equal(s["b"], -x[[4, 1]])
    with pytest.raises(InputError, match="indices: expected each row at most once"):
        p.subset([1, 1, 2])
    with pytest.raises(InputError, match="indices: expected each row at most once"):
        p.subset([5, -1])                        # the same row, counted from either end


# -- CSV parsing: quotes, newlines, BOM, header detection, long cells ---------------------

def test_csv_manifest_unclosed_quote_is_refused(tmp_path):
    # str.splitlines() + a lenient reader swallowed rows 3 and 4 into row 2's caption
    (tmp_path / "q.csv").write_text('image,text\na.png,"a cat\nb.png,a dog\nb.png,a bird\n')
    with pytest.raises(InputError, match=r"q\.csv.*line 2: a quoted field starts in this row and is never closed"):
        read_manifest(tmp_path / "q.csv", check_files=False)


def test_csv_manifest_keeps_quoted_newlines_and_unicode_separators(tmp_path):
    (tmp_path / "m.csv").write_text('image,text,label\na.png,"two\r\nlines",x\n\nb.png,x\u2028y\x85z\x0cw,y\n'
                                    'c.png,"",z\n', encoding="utf-8", newline="")
    with pytest.raises(InputError, match="row 6 has no value in column 'text'"):   # line numbers count
        read_manifest(tmp_path / "m.csv", check_files=False)                        # the quoted newline
    (tmp_path / "m.csv").write_text('image,text\na.png,"two\nlines"\nb.png,x\u2028y\x85z\x0cw\n', encoding="utf-8")
    p = read_manifest(tmp_path / "m.csv", check_files=False)
    assert p["text"] == ["two\nlines", "x\u2028y\x85z\x0cw"]
    assert p["image"] == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]


def test_jsonl_manifest_splits_on_newline_only(tmp_path):
    rows = [{"image": "a.png", "text": "x\u2028y"}, {"image": "b.png", "text": "p\x85q\x0cr"}]
    body = "\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n"
    (tmp_path / "m.jsonl").write_text(body, encoding="utf-8", newline="")
    p = read_manifest(tmp_path / "m.jsonl", check_files=False)
    assert p["text"] == ["x\u2028y", "p\x85q\x0cr"]
    (tmp_path / "g.jsonl").write_text('{"text": "a"}\n\n{"text": ""}\n')
    with pytest.raises(InputError, match="row 3 has no value in column 'text'"):   # blank line 2 counted
        read_manifest(tmp_path / "g.jsonl")


def test_csv_utf8_bom(tmp_path):
    (tmp_path / "b.csv").write_text("1,2\n3,4\n5,6\n", encoding="utf-8-sig")
    np.testing.assert_array_equal(read_array(tmp_path / "b.csv"), [[1, 2], [3, 4], [5, 6]])
    (tmp_path / "h.csv").write_text("x,y\n1,2\n", encoding="utf-8-sig")
    np.testing.assert_array_equal(read_array(tmp_path / "h.csv", key="x"), [[1]])
    (tmp_path / "m.csv").write_text("image,text\na.png,t\n", encoding="utf-8-sig")
    p = read_manifest(tmp_path / "m.csv", check_files=False)
    assert p.modalities == ("image", "text") and p["text"] == ["t"]
    (tmp_path / "m.jsonl").write_text('{"text": "t"}\n', encoding="utf-8-sig")
    assert read_manifest(tmp_path / "m.jsonl")["text"] == ["t"]


def test_csv_first_row_is_header_only_when_every_cell_is_a_name(tmp_path):
    (tmp_path / "e.csv").write_text("1,,3\n4,5,6\n7,8,9\n")
    with pytest.raises(InputError, match=r"e\.csv.*line 1, column 2 is empty"):
        read_array(tmp_path / "e.csv")
    (tmp_path / "g.csv").write_text("1,2\n\n3,\n")
    with pytest.raises(InputError, match=r"line 3, column 2 is empty"):          # blank line 2 counted
        read_array(tmp_path / "g.csv")
    (tmp_path / "t.csv").write_text("1,x,3\n4,5,6\n")                             # a typo, not a header
    with pytest.raises(InputError, match=r"line 1, column 2 holds 'x'; a header row needs a non-numeric name"):
        read_array(tmp_path / "t.csv")
    (tmp_path / "n.csv").write_text("nan,inf\n1,2\n")                            # numbers, not names
    np.testing.assert_array_equal(read_array(tmp_path / "n.csv"), [[np.nan, np.inf], [1, 2]])


def test_csv_long_cells(tmp_path):
    import csv

    limit = csv.field_size_limit()
    caption = "x" * 200_000                                                     # over csv's 128 KiB default
    (tmp_path / "long.csv").write_text(f"image,text\na.png,{caption}\n")
    assert read_manifest(tmp_path / "long.csv", check_files=False)["text"] == [caption]
    (tmp_path / "huge.csv").write_text(f"image,text\na.png,b\nc.png,{'y' * (16 * 2**20 + 1)}\n")
    with pytest.raises(InputError, match=r"huge\.csv.*line 3: field larger than field limit \(16777216\)"):
        read_manifest(tmp_path / "huge.csv", check_files=False)
    (tmp_path / "a.csv").write_text(f"a\n1\n{'7' * 200_000}\n")                # arrays keep the default
    with pytest.raises(InputError, match=r"a\.csv.*line 3: field larger than field limit"):
        read_array(tmp_path / "a.csv")
    assert csv.field_size_limit() == limit                                      # process-wide setting restored


def test_csv_manifest_header_without_rows(tmp_path):
    (tmp_path / "h.csv").write_text("image,text\n\n")
    with pytest.raises(InputError, match=r"manifest .*h\.csv' has a header but no data rows"):
        read_manifest(tmp_path / "h.csv")


def test_manifest_integer_labels_are_ascii_digits_only(tmp_path):
    (tmp_path / "s.csv").write_text("text,label\na,\u00b2\nb,--5\nc,3\n", encoding="utf-8")
    p = read_manifest(tmp_path / "s.csv")                                       # "²".isdigit() is True
    assert p.label_names == ["--5", "3", "\u00b2"]
    np.testing.assert_array_equal(p.labels, [2, 0, 1])
    (tmp_path / "i.csv").write_text("text,label\na,+5\nb, 7\nc,-2\n")
    p = read_manifest(tmp_path / "i.csv")
    assert p.label_names is None
    np.testing.assert_array_equal(p.labels, [5, 7, -2])


def test_jsonl_manifest_refuses_arrays_and_objects_in_used_columns(tmp_path):
    def write(*rows):
        (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        return tmp_path / "m.jsonl"

    ok = {"image": "a.png", "caption": "a cat", "label": "pet", "id": "s0"}
    with pytest.raises(InputError, match=r"row 2 column 'caption': expected a string, got a JSON array \[\"x\", \"y\"\]"):
        read_manifest(write(ok, {**ok, "caption": ["x", "y"], "id": "s1"}), "text=caption", check_files=False)
    with pytest.raises(InputError, match=r"row 1 column 'caption': expected a string, got a JSON boolean true"):
        read_manifest(write({**ok, "caption": True}), "text=caption")
    with pytest.raises(InputError, match=r"row 1 column 'image': expected a file path \(a string\), got a JSON number 5"):
        read_manifest(write({**ok, "image": 5}), "image=image", check_files=False)
    with pytest.raises(InputError, match=r"row 1 column 'label': expected a label .*got a JSON object \{\"a\": 1\}"):
        read_manifest(write({**ok, "label": {"a": 1}}), "text=caption,label=label")
    with pytest.raises(InputError, match=r"row 1 column 'id': expected a string, got a JSON array"):
        read_manifest(write({**ok, "id": [1]}), "text=caption,id=id")
    # numbers read as in a CSV manifest; unused columns keep any JSON value as metadata
    p = read_manifest(write({**ok, "caption": 5, "id": 7, "extra": [1, 2]}, {**ok, "id": 8, "extra": {}}),
                      "text=caption,id=id,label=label", check_files=False)
    assert p["text"] == ["5", "a cat"] and list(p.ids) == ["7", "8"]
    assert p.metadata["extra"] == [[1, 2], {}]


@pytest.mark.parametrize("name", ["m.csv", "m.jsonl"])
def test_a_manifest_that_is_not_utf8_names_the_line_and_the_fix(tmp_path, name):
    """A Latin-1 manifest said "'utf-8' codec can't decode byte 0xe9 in position 35"; it names the
    line and says to save it as UTF-8 (a byte-order mark is not counted in)."""
    rows = (["path,caption", "a.png,a cat", "b.png,caf\xe9"] if name.endswith(".csv")
            else ['{"text": "a cat"}', '{"text": "caf\xe9"}'])
    (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode("latin-1"))
    line = 3 if name.endswith(".csv") else 2
    with pytest.raises(InputError, match=rf"manifest '.*{name}' is not UTF-8 text: line {line} holds the byte 0xe9 "
                                         r"\(.+\); save it as UTF-8"):
        read_manifest(tmp_path / name, check_files=False)


@pytest.mark.parametrize(("sep", "word"), [(";", "semicolons"), ("\t", "tabs")])
def test_a_csv_manifest_separated_by_semicolons_or_tabs_says_so(tmp_path, sep, word):
    """A European spreadsheet's CSV (';') was read as one column 'path;caption' and refused as
    'cannot tell which columns hold the images'; the separator is named."""
    (tmp_path / "m.csv").write_text(f"path{sep}caption\na.png{sep}a cat\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"manifest '.*m\.csv' separates its columns with {word} "
                                         r"\('path(;|\\t)caption'\); a \.csv manifest separates them with commas"):
        read_manifest(tmp_path / "m.csv", "auto", check_files=False)
    (tmp_path / "one.csv").write_text("caption\na cat; a dog\n", encoding="utf-8")   # one column: read as it is
    assert read_manifest(tmp_path / "one.csv", "text=caption")["text"] == ["a cat; a dog"]


def test_a_jsonl_text_with_a_lone_surrogate_names_its_row(tmp_path):
    """A JSON '\\udce9' escape reached the towers and crashed the command with UnicodeEncodeError."""
    (tmp_path / "m.jsonl").write_text('{"text": "a cat"}\n{"text": "caf\\udce9"}\n{"text": "\\ud83d\\udc31"}\n',
                                      encoding="utf-8")
    with pytest.raises(InputError, match=r"m\.jsonl': row 2 column 'text' holds a lone surrogate U\+DCE9"):
        read_manifest(tmp_path / "m.jsonl", "text=text")
    (tmp_path / "m.jsonl").write_text('{"text": "\\ud83d\\udc31"}\n', encoding="utf-8")   # a pair: one character
    assert read_manifest(tmp_path / "m.jsonl", "text=text")["text"] == ["\U0001f431"]



@pytest.mark.parametrize(("line", "got"), [
    ("null", "got null"),
    ('["a.png", "a cat"]', 'got a JSON array ["a.png", "a cat"]'),
    ('"a cat"', 'got a JSON string "a cat"'),
    ("3", "got a JSON number 3"),
])
def test_a_jsonl_line_that_is_not_an_object_is_named_in_json_terms(tmp_path, line, got):
    """The message named Python types ('got NoneType', 'got list', 'got str')."""
    import re

    (tmp_path / "m.jsonl").write_text('{"text": "a cat"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=re.escape('m.jsonl\' line 2: expected a JSON object ({"image": ...}), ' + got)
                       + "$"):
        read_manifest(tmp_path / "m.jsonl", "text=text")
