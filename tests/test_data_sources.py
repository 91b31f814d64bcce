"""Reading a user's own collection: folders, guessed manifest columns, arrays, splits."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from jointspace.data import Pairs
from jointspace.data.keys import content_groups, content_hash, normalise_title
from jointspace.data.manifest import guess_columns
from jointspace.data.sources import UserData, _group_split, open_data
from jointspace.errors import InputError


def _png(path, colour, size=(8, 8), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)


def test_folder_captions_labels_and_duplicates(tmp_path):
    _png(tmp_path / "cats" / "black_cat-2.png", (0, 0, 0))
    _png(tmp_path / "cats" / "white.png", (255, 255, 255), size=(5, 9))
    (tmp_path / "cats" / "white.txt").write_text("  a white\n cat ", encoding="utf-8")
    _png(tmp_path / "dogs" / "dog.jpg", (200, 10, 10))
    _png(tmp_path / "dogs" / "same-as-black.png", (0, 0, 0))        # same bytes as black_cat-2.png
    _png(tmp_path / ".hidden" / "x.png", (1, 2, 3))
    p = Pairs.from_folder(tmp_path)
    assert len(p) == 3 and p.modalities == ("image", "text")
    assert p["text"] == ["black cat 2", "a white cat", "dog"]
    assert p.metadata["caption_source"] == ["file name", "sidecar", "file name"]
    assert p.label_names == ["cats", "dogs"] and p.labels.tolist() == [0, 0, 1]
    assert p.metadata["paths"][0] == "cats/black_cat-2.png;dogs/same-as-black.png"
    assert p.ids.tolist() == ["cats/black_cat-2.png", "cats/white.png", "dogs/dog.jpg"]
    assert p.metadata["sha256"][0] == content_hash(tmp_path / "dogs" / "same-as-black.png")



def test_a_file_name_with_a_semicolon_is_one_path_in_the_index(tmp_path):
    """Every copy's path reaches the index as it is: 'red;blue cat.png' was split into the
    paths 'red' and 'blue cat.png'."""
    from jointspace.cli.commands.index import unique_items
    from jointspace.data.folder import split_paths

    _png(tmp_path / "red;blue cat.png", (0, 0, 0))
    _png(tmp_path / "copy.png", (0, 0, 0))
    _png(tmp_path / "back\\slash;.png", (9, 9, 9))
    _png(tmp_path / "back\\slash;copy.png", (9, 9, 9))
    p = Pairs.from_folder(tmp_path)
    assert [split_paths(v) for v in p.metadata["paths"]] == [["back\\slash;.png", "back\\slash;copy.png"],
                                                             ["copy.png", "red;blue cat.png"]]
    _, meta, _, _, _ = unique_items(p, "image")
    assert meta["paths"] == [["back\\slash;.png", "back\\slash;copy.png"], ["copy.png", "red;blue cat.png"]]


def test_a_copy_s_sidecar_caption_beats_the_first_copy_s_file_name(tmp_path):
    """'IMG_0001.png' (no caption) sorts before its copy 'cats/tabby.png' + 'cats/tabby.txt': the
    written caption was dropped for 'IMG 0001'."""
    _png(tmp_path / "IMG_0001.png", (10, 20, 30))
    _png(tmp_path / "cats" / "tabby.png", (10, 20, 30))
    (tmp_path / "cats" / "tabby.txt").write_text("a tabby cat", encoding="utf-8")
    _png(tmp_path / "dog.png", (1, 2, 3))
    _png(tmp_path / "dogs" / "dog.png", (1, 2, 3))
    p = Pairs.from_folder(tmp_path)
    assert p.ids.tolist() == ["IMG_0001.png", "dog.png"]
    assert p["text"] == ["a tabby cat", "dog"]
    assert p.metadata["caption_source"] == ["sidecar", "file name"]


def test_a_file_name_of_separators_alone_is_its_own_caption(tmp_path):
    """'_.png' had the empty caption '', which the text towers refuse as 'items[0]: expected a
    non-empty text'."""
    _png(tmp_path / "_.png", (0, 0, 0))
    _png(tmp_path / "-_-.png", (1, 1, 1))
    _png(tmp_path / "red_fox-2.png", (2, 2, 2))
    p = Pairs.from_folder(tmp_path)
    assert p["text"] == ["-_-", "_", "red fox 2"]
    assert p.metadata["caption_source"] == ["file name"] * 3


def test_a_sidecar_caption_named_in_capitals_is_read(tmp_path):
    """'IMG_0001.JPG' + 'IMG_0001.TXT' (a camera's names, or files from a case-blind disk): the
    caption was ignored for 'IMG 0001'; '.txt' wins where both are there."""
    _png(tmp_path / "IMG_0001.JPG", (0, 0, 0))
    (tmp_path / "IMG_0001.TXT").write_text("a black square", encoding="utf-8")
    _png(tmp_path / "b.png", (9, 9, 9))
    (tmp_path / "b.TXT").write_text("upper", encoding="utf-8")
    (tmp_path / "b.txt").write_text("lower", encoding="utf-8")
    p = Pairs.from_folder(tmp_path)
    assert p["text"] == ["a black square", "lower"]
    assert p.metadata["caption_source"] == ["sidecar", "sidecar"]

def test_folder_bad_input(tmp_path):
    with pytest.raises(InputError, match="holds no images or sounds"):
        Pairs.from_folder(tmp_path)
    _png(tmp_path / "a.png", (0, 0, 0))
    (tmp_path / "a.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(InputError, match=r"caption file .*a\.txt' is not UTF-8"):
        Pairs.from_folder(tmp_path)
    (tmp_path / "a.txt").write_text("   \n", encoding="utf-8")
    with pytest.raises(InputError, match="is empty"):
        Pairs.from_folder(tmp_path)
    with pytest.raises(InputError, match="expected a folder"):
        Pairs.from_folder(tmp_path / "a.png")
    (tmp_path / "a.txt").unlink()
    _png(tmp_path / "b.png", (9, 9, 9))
    os.rename(tmp_path / "b.png", os.path.join(os.fsencode(tmp_path), b"caf\xe9.png"))   # a Latin-1 name
    with pytest.raises(InputError, match=r"path: the file name .*caf\\udce9\.png' is not UTF-8.*rename the file"):
        Pairs.from_folder(tmp_path)



@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_sidecar_caption_over_the_limit_is_cut_at_a_character(tmp_path, bom):
    """A UTF-8 caption longer than MAX_CAPTION_BYTES whose cut splits a character is read up to it
    (it was refused as not UTF-8)."""
    from jointspace.data.folder import MAX_CAPTION_BYTES

    _png(tmp_path / "a.png", (0, 0, 0))
    head = "ab" if bom else "a"   # an odd number of bytes before the 2-byte 'é's: the cut falls inside one
    caption = head + "\u00e9" * (MAX_CAPTION_BYTES // 2 + 10)
    (tmp_path / "a.txt").write_bytes(bom + caption.encode("utf-8"))
    kept = (MAX_CAPTION_BYTES - len(bom) - len(head)) // 2   # whole 'é's within the limit
    assert Pairs.from_folder(tmp_path)["text"] == [head + "\u00e9" * kept]
    (tmp_path / "a.txt").write_bytes(bom + b"a\xff" + caption.encode("utf-8"))   # a bad byte stays refused
    with pytest.raises(InputError, match=r"a\.txt' is not UTF-8"):
        Pairs.from_folder(tmp_path)


def test_a_caption_of_invisible_characters_is_named_where_it_is(tmp_path):
    """A zero-width space as a caption passed the readers and failed in the text tower as
    'items[1]: expected a non-empty text'; the caption file or manifest row is named instead."""
    _png(tmp_path / "a.png", (0, 0, 0))
    _png(tmp_path / "b.png", (9, 9, 9))
    (tmp_path / "b.txt").write_text("\u200b\u2060", encoding="utf-8")
    with pytest.raises(InputError, match=r"caption file .*b\.txt' is empty \(it holds only invisible characters: "
                                         r"'\\u200b\\u2060'\)"):
        Pairs.from_folder(tmp_path)
    (tmp_path / "m.csv").write_text("path,caption\na.png,a black square\nb.png,\u200b\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"m\.csv': row 3 column 'caption' holds only invisible characters "
                                         r"\('\\u200b'\); expected a text"):
        Pairs.from_manifest(tmp_path / "m.csv")
    (tmp_path / "m.csv").write_text("path,caption\na.png,a black square\nb.png,\u00e9t\u00e9\n", encoding="utf-8")
    assert Pairs.from_manifest(tmp_path / "m.csv")["text"] == ["a black square", "\u00e9t\u00e9"]

def test_content_groups_and_keys(tmp_path):
    rows = np.array([[1, 2], [3, 4], [1, 2]], dtype=np.float32)
    hashes, groups = content_groups(list(rows))
    assert groups == [[0, 2], [1]] and len(set(hashes)) == 2
    # equal values of another dtype are other content
    assert content_hash(rows[0]) != content_hash(rows[0].astype(np.float64))
    assert normalise_title("Red_Fox 12") == normalise_title("red fox") == "red fox"


def test_guessed_columns(tmp_path):
    rows = [{"file": "a.png", "caption": "x", "category": "c", "note": "n"}]
    assert guess_columns(["file", "caption", "category", "note"], rows) == \
        {"image": "file", "text": "caption", "label": "category"}
    # by content whatever the name; a sound column too
    rows = [{"pic": "a.JPG", "snd": "b.wav", "Title": "t"}]
    assert guess_columns(["pic", "snd", "Title"], rows) == {"image": "pic", "audio": "snd", "text": "Title"}
    with pytest.raises(InputError, match="cannot tell which columns"):
        guess_columns(["a", "b"], [{"a": "1", "b": "2"}])



def test_a_column_named_audio_or_image_is_read_whatever_its_files_suffix(tmp_path):
    """A column named 'audio' of FLAC files (which the sound towers read) was left as metadata, so the
    collection had no sound; a file column found by its contents still comes first."""
    rows = [{"audio": "a.flac", "caption": "a dog barks"}, {"audio": "b.ogg", "caption": "rain"}]
    assert guess_columns(["audio", "caption"], rows) == {"audio": "audio", "text": "caption"}
    rows = [{"image": "0001", "path": "a.png", "caption": "x"}]   # ids named image, files named path
    assert guess_columns(["image", "path", "caption"], rows) == {"image": "path", "text": "caption"}
    rows = [{"Image": "scan-01", "caption": "x"}]                 # no suffix at all
    assert guess_columns(["Image", "caption"], rows) == {"image": "Image", "text": "caption"}
    import soundfile as sf

    sf.write(tmp_path / "a.flac", np.zeros(800), 8000)
    (tmp_path / "m.csv").write_text("audio,caption\na.flac,silence\n", encoding="utf-8")
    p = Pairs.from_manifest(tmp_path / "m.csv")
    assert p.modalities == ("audio", "text") and p["audio"] == [str((tmp_path / "a.flac").resolve())]

def test_the_label_column_can_group_the_split(tmp_path):
    """The label column is also kept under its name, so --group-column (or --relevance) can name it."""
    for i in range(8):
        _png(tmp_path / f"{i}.png", (30 * i, 0, 0))
    (tmp_path / "m.csv").write_text("file,caption,category\n" + "".join(
        f"{i}.png,picture {i}x{'abc'[i % 3]},{'ab'[i % 2]}\n" for i in range(8)), encoding="utf-8")
    d = open_data(tmp_path / "m.csv", group_column="category", val_fraction=0.3)
    tr, va = d.load("train"), d.load("val")
    assert {tuple(set(tr.metadata["category"])), tuple(set(va.metadata["category"]))} in ({("a",), ("b",)},)
    assert list(tr.label_names) == ["a", "b"] and len(tr) + len(va) == 8


def test_manifest_paths_stay_inside_and_missing_column(tmp_path):
    _png(tmp_path / "img" / "a.png", (0, 0, 0))
    (tmp_path / "m.csv").write_text("path,caption\nimg/a.png,a black square\n", encoding="utf-8")
    p = Pairs.from_manifest(tmp_path / "m.csv")
    assert p["image"] == [str((tmp_path / "img" / "a.png").resolve())] and p["text"] == ["a black square"]
    with pytest.raises(InputError, match="columns: label=kind not found"):
        Pairs.from_manifest(tmp_path / "m.csv", "image=path,text=caption,label=kind")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.csv").write_text("path,caption\n../img/a.png,x\n", encoding="utf-8")
    with pytest.raises(InputError, match="leads outside the manifest's folder"):
        Pairs.from_manifest(tmp_path / "sub" / "m.csv")



def test_a_manifest_reads_a_sub_folder_that_links_to_another_disk(tmp_path):
    """``images/`` beside the manifest may be a symbolic link to pictures elsewhere (it was refused as
    leading outside the manifest's folder); ``..`` still is."""
    _png(tmp_path / "elsewhere" / "a.png", (0, 0, 0))
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "images").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "project" / "m.csv").write_text("path,caption\nimages/a.png,a black square\n", encoding="utf-8")
    p = Pairs.from_manifest(tmp_path / "project" / "m.csv")
    assert p["image"] == [str((tmp_path / "elsewhere" / "a.png").resolve())]
    (tmp_path / "project" / "up.csv").write_text("path,caption\nimages/../../elsewhere/a.png,x\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"'images/\.\./\.\./elsewhere/a\.png' leads outside the manifest's folder"):
        Pairs.from_manifest(tmp_path / "project" / "up.csv")


def test_caption_keys_keep_the_letters_of_every_script(tmp_path):
    """'Bär' and 'Bür' were one caption ('b r': the ASCII letters alone), and so were 'IMG кошка'
    and 'IMG собака' ('img'), so evaluation counted them relevant to each other."""
    for name, caption in (("a", "Bär 1"), ("b", "Bür 2"), ("c", "bär_3"), ("d", "IMG кошка"), ("e", "IMG собака"),
                          ("f", "cafe\u0301"), ("g", "Café 7"), ("h", "2024")):
        _png(tmp_path / f"{name}.png", (ord(name), 0, 0))
        (tmp_path / f"{name}.txt").write_text(caption, encoding="utf-8")
    expected = ["bär", "bür", "bär", "img кошка", "img собака", "café", "café", "2024"]
    assert Pairs.from_folder(tmp_path).metadata["caption_key"] == expected
    with open(tmp_path / "m.csv", "w", encoding="utf-8", newline="") as fh:
        fh.write("path,caption\n" + "".join(f"{n}.png,{c}\n" for n, c in zip("abcdefgh", (
            "Bär 1", "Bür 2", "bär_3", "IMG кошка", "IMG собака", "cafe\u0301", "Café 7", "2024"))))
    assert open_data(tmp_path / "m.csv").load("all").metadata["caption_key"] == expected
    # ASCII captions keep their keys: "Star 12" and "star_13" are one caption
    (tmp_path / "a.txt").write_text("Star 12", encoding="utf-8")
    (tmp_path / "b.txt").write_text("star_13", encoding="utf-8")
    assert Pairs.from_folder(tmp_path).metadata["caption_key"][:2] == ["star", "star"]

def test_arrays(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "f.npz", a=rng.normal(size=(6, 3)), b=rng.normal(size=(6, 2)), y=np.arange(6.0)[:, None],
             short=np.zeros((5, 2)), bad=np.full((6, 2), np.nan))
    p = Pairs.from_arrays(tmp_path / "f.npz", {"image": "a", "text": "b"}, labels="y")
    assert p["image"].dtype == np.float32 and p["text"].shape == (6, 2)
    assert p.labels.dtype == np.int64 and p.labels.tolist() == list(range(6))
    with pytest.raises(InputError, match=r"disagree on the number of samples N: image=a has 6, text=short has 5"):
        Pairs.from_arrays(tmp_path / "f.npz", {"image": "a", "text": "short"})
    with pytest.raises(InputError, match=r"modality text=bad: 6 of 6 rows hold NaN"):
        Pairs.from_arrays(tmp_path / "f.npz", {"image": "a", "text": "bad"})
    with pytest.raises(InputError, match=r"modality text=nope: key: expected one of"):
        Pairs.from_arrays(tmp_path / "f.npz", {"image": "a", "text": "nope"})


def test_group_split_keeps_groups_together_and_hits_the_fraction():
    groups = np.array([f"g{i // 3}" for i in range(300)])     # 100 groups of 3
    tr, va = _group_split(groups, 0.1, seed=0)
    assert len(tr) + len(va) == 300 and not set(tr) & set(va)
    assert not set(groups[tr]) & set(groups[va])
    assert 30 <= len(va) <= 33
    tr2, va2 = _group_split(groups, 0.1, seed=0)
    assert va.tolist() == va2.tolist()


def test_user_data_splits(tmp_path):
    texts = [f"caption {i % 7}" if i % 2 else f"thing number {i}x" for i in range(40)]
    p = Pairs({"x": np.arange(40.0)[:, None], "text": texts}, metadata={"part": ["train"] * 30 + ["test"] * 10})
    d = UserData(p, val_fraction=0.25)
    assert d.splits == ("all", "train", "val") and d.relevance == "caption_key"
    va = d.load("val")
    # "caption 1" .. "caption 6" normalise to one key ("caption"): all on one side
    tr = d.load("train")
    # "caption 1" .. "caption 6" normalise to one key ("caption"): all 20 on one side
    assert sorted([tr.metadata["caption_key"].count("caption"), va.metadata["caption_key"].count("caption")]) == [0, 20]
    assert len(tr) + len(va) == 40 and not set(tr.ids.tolist()) & set(va.ids.tolist())
    s = UserData(p, split_column="part")
    assert s.splits == ("all", "test", "train") and len(s.load("test")) == 10
    assert len(s.load("train+test")) == 40
    with pytest.raises(InputError, match="--split-column: no column 'nope'"):
        UserData(p, split_column="nope")
    with pytest.raises(InputError, match="--val-fraction: expected a number <= 0.9"):
        UserData(p, val_fraction=1.5)
    with pytest.raises(InputError, match=r"split: your data has splits all, train, val; got 'test'"):
        d.load("test")


def test_a_collection_that_cannot_be_split_reads_whole(tmp_path):
    """Captions from camera file names (IMG_0001.jpg ...) all read "img": one group, so no val
    can be held out.  Every row still loads (index, embed, eval and a closed-form fit read all);
    only asking for train or val is refused, naming the option."""
    p = Pairs({"x": np.arange(6.0)[:, None], "text": [f"IMG_{i:04d}" for i in range(6)]})
    d = UserData(p)
    assert d.splits == ("all", "train", "val") and len(d.load("all")) == 6
    for split in ("train", "val"):
        with pytest.raises(InputError, match=rf"^--val-fraction: every row is in one group \('img'\), so none can be "
                                             rf"held out for {split}; give --val-fraction 0"):
            d.load(split)
    assert len(UserData(p, val_fraction=0).load("train")) == 6


def test_open_data_names(tmp_path):
    assert open_data("wikipedia").builtin
    with pytest.raises(InputError, match="unknown dataset 'nope.csv'"):
        open_data(str(tmp_path / "nope.csv").replace(str(tmp_path) + "/", ""))
    with pytest.raises(InputError, match="--labels, --split-column.* built-in dataset"):
        open_data("wikipedia", labels="L", split_column="s")
    np.save(tmp_path / "a.npy", np.zeros((3, 2)))
    with pytest.raises(InputError, match="holds arrays; name them"):
        open_data(tmp_path / "a.npy")


def test_a_folder_of_sounds_reads_every_format_the_decoder_reads(tmp_path):
    """FLAC, Ogg Vorbis and MP3 sounds are a collection as WAV ones are (only .wav files were
    looked for, so a folder of FLAC said it held no images or sounds)."""
    import soundfile as sf

    from jointspace.data.folder import read_folder
    from jointspace.towers.inputs import load_audio

    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
    for name in ("dog barks.flac", "rain.ogg", "church bell.mp3", "wind.wav"):
        sf.write(tmp_path / name, tone, 16000)
    (tmp_path / "notes.txt").write_text("not a sound")
    p = read_folder(tmp_path)
    assert p.modalities == ("audio", "text")
    assert sorted(p["text"]) == ["church bell", "dog barks", "rain", "wind"]
    for path in p["audio"]:   # each decodes to the tone it holds (lossy codecs within a small error)
        y = load_audio(path, 16000)
        assert abs(len(y) - 16000) < 2000, path
        spectrum = np.abs(np.fft.rfft(y[:16000] if len(y) >= 16000 else np.pad(y, (0, 16000 - len(y)))))
        assert abs(int(np.argmax(spectrum)) - 440) <= 2, path


def test_an_empty_image_file_is_refused_by_name_when_the_folder_is_read(tmp_path):
    """A 0-byte 'broken.jpg' (an interrupted copy) was read as a sample and failed only when
    the images were embedded; several of them were even one sample (equal content)."""
    _png(tmp_path / "ok.png", (0, 0, 0))
    (tmp_path / "broken.jpg").write_bytes(b"")
    with pytest.raises(InputError, match=r"path: expected image files with content, got the empty \(0-byte\) "
                                         r"file '.*broken\.jpg'; copy it again or delete it"):
        Pairs.from_folder(tmp_path)
    for name in ("b.png", "c.png", "d.png", "e.png"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(InputError, match=r"'.*b\.png' \(and 4 more: '.*broken\.jpg', '.*c\.png', '.*d\.png', "
                                         r"\.\.\.\); copy"):
        Pairs.from_folder(tmp_path)
    (tmp_path / "s.wav").write_bytes(b"")
    with pytest.raises(InputError, match=r"expected audio files with content, got the empty \(0-byte\) file "
                                         r"'.*s\.wav'"):
        Pairs.from_folder(tmp_path, modality="audio")
