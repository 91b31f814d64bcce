"""Manifest and arrays-file values: how labels written in different ways are read."""

import json
import re

import numpy as np
import pytest

from jointspace.data.manifest import read_manifest
from jointspace.data.readers import read_array, read_arrays
from jointspace.errors import InputError


def test_an_integer_label_written_with_a_decimal_point_is_that_integer(tmp_path):
    # pandas writes an integer column that held a gap as 1.0, 2.0: the same labels as 1, 2 and as
    # the JSON numbers 1.0, 2.0 (they were the names '1.0', '2.0', coded 0, 1, and '1.0' != '1')
    labels = ["1.0", "1", "2.0", "3", " 2.00", "-4.", "+5"]
    (tmp_path / "m.csv").write_text("caption,label\n" + "".join(f"t{i},{v}\n" for i, v in enumerate(labels)))
    csv_pairs = read_manifest(tmp_path / "m.csv", "text=caption,label=label")
    assert csv_pairs.label_names is None
    np.testing.assert_array_equal(csv_pairs.labels, [1, 1, 2, 3, 2, -4, 5])
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps({"caption": f"t{i}", "label": float(v)})
                                                for i, v in enumerate(labels)))
    json_pairs = read_manifest(tmp_path / "m.jsonl", "text=caption,label=label")
    np.testing.assert_array_equal(json_pairs.labels, csv_pairs.labels)


def test_with_a_name_among_them_decimal_integers_are_named_as_integers(tmp_path):
    (tmp_path / "m.csv").write_text("caption,label\na,1.0\nb,1\nc,cat\nd,1.5\ne,10.0\n")
    p = read_manifest(tmp_path / "m.csv", "text=caption,label=label")
    assert p.label_names == ["1", "1.5", "10", "cat"]   # sorted as text, "1.0" and "1" one class
    assert p.labels.tolist() == [0, 0, 3, 1, 2]


def test_an_arrays_csv_column_named_twice_is_refused_when_chosen_by_name(tmp_path):
    (tmp_path / "f.csv").write_text("x,y,x,label\n1,2,3,0\n4,5,6,1\n")
    with pytest.raises(InputError, match=r"modality image=x: key: column 'x' is named 2 times in the header of "
                                         r".*f\.csv' \(columns 1, 3\)"):
        read_arrays(tmp_path / "f.csv", {"image": "x", "text": "y"}, labels="label")
    # columns named once are read as before; every column when none is chosen
    np.testing.assert_array_equal(read_array(tmp_path / "f.csv", "y,label"), [[2, 0], [5, 1]])
    np.testing.assert_array_equal(read_array(tmp_path / "f.csv"), [[1, 2, 3, 0], [4, 5, 6, 1]])


def test_a_missing_value_in_an_arrays_file_names_the_file_and_its_first_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # an integer label column with a null reads as floats with NaN: it was "labels: expected finite
    # values, got NaN or Inf", naming neither the column nor the file
    pq.write_table(pa.table({"x": [1.0, 2.0, 3.0, 4.0], "lab": pa.array([1, 2, None, None])}), tmp_path / "f.parquet")
    with pytest.raises(InputError, match=r"labels lab: 2 of 4 rows of '.*f\.parquet' have no label \(NaN, a null "
                                         r"or Inf\), the first at row 2 \(counting from 0\)"):
        read_arrays(tmp_path / "f.parquet", {"image": "x"}, labels="lab")
    pq.write_table(pa.table({"x": [1.0, None, 3.0, float("inf")], "lab": [1, 2, 3, 4]}), tmp_path / "g.parquet")
    with pytest.raises(InputError, match=r"modality image=x: 2 of 4 rows hold NaN or Inf .* in '.*g\.parquet', "
                                         r"the first at row 1 \(counting from 0\)"):
        read_arrays(tmp_path / "g.parquet", {"image": "x"}, labels="lab")
    np.savez(tmp_path / "h.npz", x=np.ones((3, 2)), lab=np.array([0.0, 1.0, 2.0]))
    assert read_arrays(tmp_path / "h.npz", {"image": "x"}, labels="lab").labels.tolist() == [0, 1, 2]
    np.save(tmp_path / "lab.npy", np.array([0.0, np.nan, 2.0]))
    with pytest.raises(InputError, match=r"labels lab\.npy: 1 of 3 rows of '.*lab\.npy' have no label"):
        read_arrays(tmp_path / "h.npz", {"image": "x"}, labels="lab.npy")


def test_a_jsonl_object_giving_a_key_twice_is_refused_naming_the_line_and_key(tmp_path):
    # the first "text" of line 2 was dropped without a word (json keeps the last value)
    (tmp_path / "m.jsonl").write_text('{"text": "a cat", "label": 1}\n'
                                      '{"text": "a dog", "label": 2, "text": "a wolf"}\n')
    with pytest.raises(InputError, match=r"manifest '.*m\.jsonl' line 2 gives the key 'text' twice in one JSON "
                                         r"object; expected each key once"):
        read_manifest(tmp_path / "m.jsonl")
    (tmp_path / "n.jsonl").write_text('{"text": "a dog", "meta": {"k": 1, "k": 2}}\n')
    with pytest.raises(InputError, match=r"line 1 gives the key 'k' twice"):
        read_manifest(tmp_path / "n.jsonl", "text=text")
    (tmp_path / "o.jsonl").write_text('{"text": "a dog", "meta": {"k": 1}, "Text": "same word, other case"}\n')
    p = read_manifest(tmp_path / "o.jsonl", "text=text")
    assert p["text"] == ["a dog"] and p.metadata == {"meta": [{"k": 1}], "Text": ["same word, other case"]}


def test_a_semicolon_manifest_with_quoted_cells_names_its_separator(tmp_path):
    # a spreadsheet quotes cells holding the separator: `"a cat; black";1` stopped the CSV reader
    # first, with "line 2: ',' expected after '\"'", before the separator was looked at
    (tmp_path / "m.csv").write_text('caption;label\n"a cat; black";1\n"a dog";2\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"manifest '.*m\.csv' separates its columns with semicolons "
                                         r"\('caption;label'\); a \.csv manifest separates them with commas"):
        read_manifest(tmp_path / "m.csv", "text=caption,label=label")
    (tmp_path / "c.csv").write_text('caption,label\n"a cat" black,1\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"cannot read CSV '.*c\.csv': line 2: ',' expected after '\"'"):
        read_manifest(tmp_path / "c.csv")   # a comma-separated file: the quoting is what is wrong
    (tmp_path / "q.csv").write_text('"caption";"label"\n"a cat";1\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"separates its columns with semicolons \('\"caption\";\"label\"'\)"):
        read_manifest(tmp_path / "q.csv")


@pytest.mark.parametrize("name, data", [("m.csv", b"image,text\nphotos/a\x00b.png,x\n"),
                                        ("m.jsonl", b'{"image": "/photos/a\\u0000b.png", "text": "x"}\n')])
def test_a_file_path_holding_a_nul_character_is_named_with_its_row(tmp_path, name, data):
    # it was a bare ValueError ("embedded null byte") from the path library, naming no row or column
    (tmp_path / name).write_bytes(data)
    for check_files in (True, False):
        with pytest.raises(InputError, match=r"manifest '.*m\.(csv|jsonl)' row (2|1) column 'image': path "
                                             r"'.*a\\x00b\.png' holds a NUL character"):
            read_manifest(tmp_path / name, check_files=check_files)


def test_a_url_in_a_file_column_is_named_as_a_url(tmp_path):
    # it was read as folders "https:" and "example.com" under the manifest's folder, and reported
    # as the missing file '<folder>/https:/example.com/a.jpg'
    (tmp_path / "m.csv").write_text("image,text\nhttps://example.com/a.jpg,x\n")
    for check_files in (True, False):
        with pytest.raises(InputError, match=r"manifest '.*m\.csv' row 2 column 'image': 'https://example\.com/a\.jpg' "
                                             r"is a URL; expected the path of a local file: nothing is downloaded"):
            read_manifest(tmp_path / "m.csv", check_files=check_files)
    (tmp_path / "f.jsonl").write_text('{"image": "file:///photos/a.png", "text": "x"}\n')
    with pytest.raises(InputError, match=r"row 1 column 'image': 'file:///photos/a\.png' is a URL; .* write it as a "
                                         r"path"):
        read_manifest(tmp_path / "f.jsonl")
    (tmp_path / "c.png").write_bytes(b"")
    (tmp_path / "ok.csv").write_text("image,text\nc.png,a text with https://example.com in it\n")
    assert read_manifest(tmp_path / "ok.csv")["image"] == [str(tmp_path.resolve() / "c.png")]


def test_ids_are_read_without_the_spaces_around_them(tmp_path):
    # "a cat, s1" (a space after each comma): the id was " s1", which no search for "s1" finds,
    # and " s1" and "s1" were two ids
    (tmp_path / "m.csv").write_text("caption, id\na cat, s1\na dog,s2 \n")
    assert read_manifest(tmp_path / "m.csv", "text=caption,id=id").ids.tolist() == ["s1", "s2"]
    (tmp_path / "d.csv").write_text("caption,id\na cat, s1\na dog,s1\n")
    with pytest.raises(InputError, match=r"rows 2 and 3 have the same id 's1' in column 'id'"):
        read_manifest(tmp_path / "d.csv", "text=caption,id=id")


def test_a_missing_path_written_with_backslashes_names_the_file_written_with_slashes(tmp_path):
    """'photos\\cat.png' (a manifest written on Windows) got only 'image files do not exist'
    while photos/cat.png was there; a file whose name holds a '\\' is still read as written."""
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.png").write_bytes(b"x")
    (tmp_path / "m.csv").write_text("image,text\nphotos\\cat.png,a cat\n")
    want = str(tmp_path.resolve() / "photos" / "cat.png")
    with pytest.raises(InputError, match=r"1 of 1 image files do not exist \(row 2: .*photos\\cat\.png \("
                                         + re.escape(want) + r" exists\)\); the paths are written with '\\' "
                                         r"\(as on Windows\): write them with '/'"):
        read_manifest(tmp_path / "m.csv")
    (tmp_path / "n.csv").write_text("image,text\nphotos\\dog.png,a dog\n")   # neither spelling exists
    with pytest.raises(InputError, match=r"do not exist \(row 2: [^()]*dog\.png\)$"):
        read_manifest(tmp_path / "n.csv")
    (tmp_path / "photos\\cat.png").write_bytes(b"y")   # a POSIX name holding a backslash is kept
    assert read_manifest(tmp_path / "m.csv")["image"] == [str(tmp_path.resolve() / "photos\\cat.png")]
