"""OpenClipart: SVG metadata, rendering, title-disjoint splits, skipping bad files, caching."""

import hashlib
import io
import os
import time
import warnings

import numpy as np
import pytest
from PIL import Image

from jointspace.data import svg as svgmod
from jointspace.data._parallel import run_jobs
from jointspace.data.cache import FileCache
from jointspace.data.datasets import get_dataset, load_dataset
from jointspace.data.datasets import openclipart as oc
from jointspace.errors import InputError, MissingDependencyError

NS = ('xmlns="http://www.w3.org/2000/svg" xmlns:dc="http://purl.org/dc/elements/1.1/" '
      'xmlns:cc="http://web.resource.org/cc/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"')


def make_svg(title, keywords=(), desc="", color="#c00000", body=None, size='width="100" height="50"'):
    lis = "".join(f"<rdf:li>{k}</rdf:li>" for k in keywords)
    body = body if body is not None else f'<rect x="10" y="10" width="60" height="30" fill="{color}"/>'
    return (f'<?xml version="1.0"?>\n<svg {NS} {size}><metadata><rdf:RDF><cc:Work rdf:about="">'
            f"<dc:title>{title}</dc:title><dc:description>{desc}</dc:description>"
            f"<dc:subject><rdf:Bag>{lis}</rdf:Bag></dc:subject></cc:Work></rdf:RDF></metadata>{body}</svg>")


LAUGHS = ('<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
          f'<svg {NS}><title>&b;</title></svg>')

BAD = {"misc/empty.svg": "", "misc/broken.svg": f"<svg {NS}><g><rect></svg>",
       "misc/notsvg.svg": "<html><body/></html>", "misc/laughs.svg": LAUGHS}
UNRENDERABLE = {"misc/blank.svg": make_svg("Nothing here", body=""),
                "misc/zerosize.svg": make_svg("Zero size", size='width="0" height="0"')}


@pytest.fixture(scope="module")
def clipart(tmp_path_factory):
    root = tmp_path_factory.mktemp("svg")
    colors = ["#c00000", "#00a000", "#0000c0", "#808000", "#008080", "#800080"]
    titles = ["Red Car", "Happy Cat", "Old House", "Blue Bird", "Green Tree", "Yellow Sun",
              "Chess Knight", "Coffee Cup", "Music Note", "Road Sign", "Star", "Rocket"]
    good = {}
    for i, t in enumerate(titles):
        for j in range(3 if i % 2 else 1):  # repeated titles, with number suffixes
            cat = ["animals", "food", "transportation"][(i + j) % 3]
            good[f"{cat}/{t.lower().replace(' ', '_')}_{j:02d}.svg"] = make_svg(
                f"{t} {j + 1}" if j else t, keywords=[t.split()[0].lower(), "clip art", "Clip Art"],
                desc=f"a drawing of a {t.lower()}" if i % 3 == 0 else "", color=colors[(i + j) % 6])
    for rel, text in {**good, **BAD, **UNRENDERABLE}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    os.symlink(root / "animals" / "red_car_00.svg", root / "animals" / "link.svg")
    return root, good


def test_normalise_title():
    assert oc.normalise_title("  Clipart by Nicu - jigsaw_red_10 ") == "clipart by nicu jigsaw red"
    assert oc.normalise_title("Star 12") == oc.normalise_title("star_13") == "star"
    assert oc.normalise_title("R2D2 robot") == "r2d2 robot"
    assert oc.normalise_title("Part of the Flat Icon Collection (Wed Aug 25 23:29:46 2004)") == \
        "part of the flat icon collection wed aug"
    assert oc.normalise_title("2005") == ""


def test_split_of_is_the_documented_hash():
    for key in ["red car", "happy cat", "gramastar", ""]:
        u = int(hashlib.sha256(("openclipart-split-v1:" + key).encode()).hexdigest()[:12], 16) / 16 ** 12
        assert oc.split_of(key) == ("train" if u < 0.7 else "val" if u < 0.8 else "test")
    counts = {s: 0 for s in ("train", "val", "test")}
    for i in range(4000):
        counts[oc.split_of(f"title {i} x")] += 1
    assert abs(counts["train"] / 4000 - 0.7) < 0.03 and abs(counts["test"] / 4000 - 0.2) < 0.03


def test_svg_metadata_and_fallbacks():
    meta = svgmod.svg_metadata(make_svg("Red Car", ["car", "Red", "car", "red, vehicle"], "a car").encode())
    assert meta["title"] == "Red Car" and meta["description"] == "a car"
    assert meta["keywords"] == ["car", "Red", "vehicle"]
    plain = f'<svg {NS}><title>Just a title</title><circle r="3"/></svg>'.encode()
    assert svgmod.svg_metadata(plain)["title"] == "Just a title"
    assert svgmod.aspect_ratio("48pt", "24pt", "") == 2.0
    assert svgmod.aspect_ratio("100%", "", "0 0 30 60") == 0.5
    assert svgmod.aspect_ratio("", "", "") is None


def test_a_drawing_of_unknown_aspect_is_fitted_without_a_huge_raster(monkeypatch):
    # sizes in em say nothing of the aspect: rendered by width alone, this 1:300 strip was
    # 224 x 67,200 pixels before it was refitted
    svg = (b'<svg xmlns="http://www.w3.org/2000/svg" width="1em" height="300em" viewBox="0 0 1 300">'
           b'<rect width="1" height="300" fill="black"/></svg>')
    raster, sizes = svgmod._raster, []

    def spy(data, width, height, timeout):
        png = raster(data, width, height, timeout)
        with Image.open(io.BytesIO(png)) as im:
            sizes.append(im.size)
        return png

    monkeypatch.setattr(svgmod, "_raster", spy)
    unknown = np.asarray(svgmod.render_svg(svg, 224, None))
    assert max(max(s) for s in sizes) <= 224, sizes
    known = np.asarray(svgmod.render_svg(svg, 224, svgmod.aspect_ratio("", "", "0 0 1 300")))
    assert np.array_equal(unknown, known)          # as when the aspect is read from the viewBox
    dark = np.argwhere(unknown.min(axis=2) < 128)
    assert dark[:, 0].min() == 0 and dark[:, 0].max() == 223 and dark[:, 1].max() - dark[:, 1].min() <= 1


def test_entities_short_ones_allowed_nested_refused():
    ok = (f'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY ns_svg "http://www.w3.org/2000/svg">]>'
          '<svg xmlns="&ns_svg;"><title>fine</title></svg>').encode()
    assert svgmod.svg_metadata(ok)["title"] == "fine"
    with pytest.raises(svgmod.UnsafeXMLError):
        svgmod.svg_metadata(LAUGHS.encode())
    ext = f'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]><svg {NS}>&x;</svg>'
    with pytest.raises(svgmod.UnsafeXMLError):
        svgmod.svg_metadata(ext.encode())


def _load_all(root, cache, **kw):
    ds = get_dataset("openclipart")
    out, summaries = {}, {}
    for split in ds.splits:
        out[split] = ds.load(split, root=root, size=32, workers=1, cache_dir=cache, **kw)
        summaries[split] = dict(ds.summary)
    return out, summaries


def test_load_splits_skip_and_count(clipart, tmp_path):
    root, good = clipart
    parts, summ = _load_all(root, tmp_path / "cache")
    ids = [i for p in parts.values() for i in p.ids]
    assert sorted(ids) == sorted(good)  # bad, blank, unrenderable and symlinked files are out
    keys = {s: set(p.metadata["title_key"]) for s, p in parts.items()}
    assert not keys["train"] & keys["val"] and not keys["train"] & keys["test"] and not keys["val"] & keys["test"]
    s = summ["test"]
    assert s["files"] == len(good) + len(BAD) + len(UNRENDERABLE) and s["parse_errors"] == len(BAD)
    assert set(s["parse_error_files"]) == set(BAD)
    skipped = sum(x["render_skipped"] for x in summ.values())
    assert skipped == len(UNRENDERABLE)
    reasons = {}
    for x in summ.values():
        for k, v in x["render_skipped_by_reason"].items():
            reasons[k] = reasons.get(k, 0) + v
    assert reasons == {"blank": 1, "render_error": 1}
    p = next(p for p in parts.values() if len(p))
    e = 0
    img = np.asarray(Image.open(p["image"][e]))
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    assert (img[0, 0] == 255).all() and (img[16, 16] != 255).any()  # white margin, drawing in the middle
    assert p.label_names == ["animals", "food", "misc", "transportation"] or "misc" not in p.label_names
    assert p.metadata["svg_path"][e] == str(root / p.ids[e]) and p.metadata["png_path"][e] == p["image"][e]


def test_text_views(clipart, tmp_path):
    root, _ = clipart
    ds = get_dataset("openclipart")
    views = {v: ds.load("train", root=root, size=32, workers=1, cache_dir=tmp_path, text=v) for v in oc.TEXT_VIEWS}
    tk = views["title+keywords"]
    i = next(k for k, t in enumerate(tk.metadata["title"]) if t.startswith("Red Car") or t)
    title = tk.metadata["title"][i]
    assert views["title"]["text"][i] == title
    assert tk["text"][i] == f"{title}; {tk.metadata['keywords'][i]}" and "clip art" in tk["text"][i]
    assert tk["text"][i].lower().count("clip art") == 1
    desc = views["description"]["text"]
    assert all(d == (md or t) for d, md, t in zip(desc, tk.metadata["description"], tk.metadata["title"]))
    with pytest.raises(InputError, match="text: expected one of"):
        ds.load("train", root=root, cache_dir=tmp_path, text="caption")


def test_max_per_title_and_limit(clipart, tmp_path):
    root, _ = clipart
    entries = oc.catalogue(root, cache=FileCache("x", folder=tmp_path))
    kept = oc.select(entries, 1)
    assert len({e["title_key"] for e in kept}) == len(kept) == 12 + len(UNRENDERABLE)
    ds = get_dataset("openclipart")
    p = ds.load("train", root=root, size=32, workers=1, cache_dir=tmp_path, limit=2)
    assert len(p) == 2


def test_cache_reuse_truncated_and_readonly_files(clipart, tmp_path):
    root, _ = clipart
    cache = tmp_path / "cache"
    ds = get_dataset("openclipart")
    first = ds.load("train", root=root, size=32, workers=1, cache_dir=cache)
    assert ds.summary["rendered_now"] == len(first) > 2
    stamps = [os.stat(f).st_mtime_ns for f in first["image"]]
    t = time.perf_counter()
    again = ds.load("train", root=root, size=32, workers=1, cache_dir=cache)
    assert ds.summary["rendered_now"] == 0 and ds.summary["from_cache"] == len(first)
    assert [os.stat(f).st_mtime_ns for f in again["image"]] == stamps and time.perf_counter() - t < 5
    # a truncated file and a read-only garbage file are not trusted: both are made again
    bad1, bad2 = first["image"][0], first["image"][1]
    with open(bad1, "r+b") as fh:
        fh.truncate(10)
    with open(bad2, "wb") as fh:
        fh.write(b"garbage")
    os.chmod(bad2, 0o444)
    third = ds.load("train", root=root, size=32, workers=1, cache_dir=cache)
    assert ds.summary["rendered_now"] == 2
    for f in third["image"][:2]:
        Image.open(f).load()
    # a truncated catalogue is parsed again
    cat = next(cache.glob("catalogue-*.json"))
    cat.write_text(cat.read_text()[:50])
    assert len(oc.catalogue(root, cache=FileCache("x", folder=cache))) == len(list(root.rglob("*.svg"))) - 1


def test_unwritable_cache_root_falls_back(clipart, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("JOINTSPACE_CACHE", str(blocker / "cache"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache = FileCache("openclipart")
    assert any("not writable" in str(w.message) for w in caught)
    assert not str(cache.folder).startswith(str(blocker))
    with pytest.raises(InputError, match="cache_dir: folder .* is not writable"):
        FileCache("openclipart", folder=blocker / "sub")


def _sleepy(x):
    time.sleep(x)
    return ("ok", str(x))


def test_pool_timeout_skips_slow_job_and_keeps_order():
    out = list(run_jobs(_sleepy, [(0.0,), (5.0,), (0.0,), (0.01,)], workers=2, timeout=0.5))
    assert [i for i, _ in out] == [0, 1, 2, 3]
    assert out[1][1][0] == "timeout" and out[0][1] == ("ok", "0.0") and out[3][1] == ("ok", "0.01")


def test_missing_package(monkeypatch, tmp_path):
    monkeypatch.setattr(oc, "DEFAULT_ROOT", tmp_path / "absent")
    ds = get_dataset("openclipart")
    assert ds.missing() == "apt-get install -y openclipart-svg"
    with pytest.raises(MissingDependencyError, match="apt-get install -y openclipart-svg"):
        ds.load("test")
    with pytest.raises(InputError, match="root: folder"):
        ds.load("test", root=tmp_path / "nope")


needs_package = pytest.mark.skipif(get_dataset("openclipart").missing() is not None,
                                   reason="needs: apt-get install -y openclipart-svg (make test installs it)")


@needs_package
def test_real_package_small(tmp_path):
    p = load_dataset("openclipart", "test", max_files=120, size=48, limit=4, cache_dir=tmp_path, workers=1)
    assert len(p) == 4 and all(t.strip() for t in p["text"])
    assert Image.open(p["image"][0]).size == (48, 48)


@needs_package
def test_real_package_split_sizes_title_disjoint():
    entries = oc.catalogue()
    assert len(entries) > 7000 and sum(e["status"] == "ok" for e in entries) > 7000
    kept = oc.select(entries, 50)
    by_split = {}
    for e in kept:
        by_split.setdefault(oc.split_of(e["title_key"]), []).append(e)
    assert len(by_split["test"]) >= 600
    keys = {s: {e["title_key"] for e in v} for s, v in by_split.items()}
    assert not keys["test"] & keys["train"] and not keys["val"] & keys["train"] and not keys["val"] & keys["test"]


def _tiny_clipart(root):
    titles = ["Red Car", "Happy Cat", "Old House", "Blue Bird"]
    for t in titles:
        (root / "animals").mkdir(parents=True, exist_ok=True)
        (root / "animals" / f"{t.lower().replace(' ', '_')}.svg").write_text(make_svg(t))
    return len(titles)


def _summed(summaries, key):
    total = {}
    for s in summaries.values():
        for k, v in (s[key].items() if isinstance(s[key], dict) else [("n", s[key])]):
            total[k] = total.get(k, 0) + v
    return total


def test_too_large_is_checked_again_on_each_load(tmp_path):
    """A file skipped as larger than max_bytes is rendered by a later load that allows it."""
    root = tmp_path / "svg"
    n = _tiny_clipart(root)
    cache = tmp_path / "cache"
    parts, summ = _load_all(root, cache, max_bytes=50)
    assert sum(len(p) for p in parts.values()) == 0
    assert _summed(summ, "render_skipped_by_reason") == {"too_large": n}
    assert all("> max_bytes=50" in f for s in summ.values() for f in s["render_skipped_files"])
    parts, summ = _load_all(root, cache, max_bytes=8_000_000)
    assert sum(len(p) for p in parts.values()) == n
    assert _summed(summ, "rendered_now") == {"n": n} and _summed(summ, "render_skipped_by_reason") == {}


def test_too_large_remembered_by_an_older_cache_is_ignored(tmp_path):
    """render-failures-*.json files written before the fix may hold too_large / timeout entries."""
    import json

    root = tmp_path / "svg"
    n = _tiny_clipart(root)
    cache = tmp_path / "cache"
    entries = oc.catalogue(root, cache=FileCache("x", folder=cache))
    renderer = svgmod.renderer_name()
    keys = [oc.content_key("openclipart-png", e["sha256"], 32, svgmod.RENDER_VERSION, renderer) for e in entries]
    stale = {k: ["too_large", "900 bytes > max_bytes=50"] for k in keys[:2]}
    stale.update({k: ["timeout", "took too long"] for k in keys[2:]})
    (cache / "render-failures-32.json").write_text(json.dumps(stale))
    parts, summ = _load_all(root, cache)
    assert sum(len(p) for p in parts.values()) == n and _summed(summ, "render_skipped_by_reason") == {}
    assert json.loads((cache / "render-failures-32.json").read_text()) == {}


@pytest.mark.parametrize("option, value, message", [
    ("root", 5, "root: expected a folder path (a string), got 5 (int); a folder named with digits must be "
                "given as a JSON string, e.g. --option 'root=\"5\"'"),
    ("root", ["a"], "root: expected a folder path (a string), got ['a'] (list)"),
    ("cache_dir", 2024, "cache_dir: expected a folder path (a string), got 2024 (int); a folder named with "
                        "digits must be given as a JSON string, e.g. --option 'cache_dir=\"2024\"'"),
])
def test_root_and_cache_dir_must_be_paths(clipart, tmp_path, option, value, message):
    root, _ = clipart
    opts = {"root": root, "cache_dir": tmp_path, option: value}
    with pytest.raises(InputError) as info:
        get_dataset("openclipart").load("train", size=32, workers=1, **opts)
    assert str(info.value) == message
    if option == "root":
        with pytest.raises(InputError, match=r"^root: expected a folder path"):
            oc.catalogue(value, cache=FileCache("x", folder=tmp_path))
