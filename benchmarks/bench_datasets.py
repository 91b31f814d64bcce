"""Built-in dataset preparation: cold (nothing cached) against cached loads, side by side.

- openclipart: parse + render into an empty cache folder with the worker pool, against a plain
  sequential loop over the same files calling resvg directly; then the cached reload.
- spoken-words: synthesise every clip into an empty cache folder, then the cached reload.
- fashion-mnist: our IDX reader against the plain gzip + numpy recipe of the dataset's authors.

    python benchmarks/bench_datasets.py [--quick] [--repeats 5]
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _util import machine, positive_int, save, side_by_side, timeit  # noqa: E402


def bench_openclipart(quick: bool, repeats: int) -> dict:
    from jointspace.data import svg as svgmod
    from jointspace.data.datasets import get_dataset
    from jointspace.data.datasets import openclipart as oc

    ds = get_dataset("openclipart")
    if ds.missing():
        return {"skipped": ds.missing()}
    opts = {"max_files": 600} if quick else {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        n = 0
        summary = {}
        for split in ds.splits:
            n += len(ds.load(split, cache_dir=tmp, **opts))
            summary[split] = dict(ds.summary)
        cold = time.perf_counter() - t0
        cached = timeit(lambda: [ds.load(s, cache_dir=tmp, **opts) for s in ds.splits], repeats=repeats)
        entries = oc.select(oc.catalogue(max_files=opts.get("max_files")), 50)[:300]
        files = [oc.DEFAULT_ROOT / e["rel"] for e in entries]
        t0 = time.perf_counter()
        for f in files:
            try:
                svgmod.render_svg(f.read_bytes(), 224, None)
            except ValueError:
                pass
        seq_rate = len(files) / (time.perf_counter() - t0)
    skipped = sum(s["render_skipped"] for s in summary.values())
    return {"items": n, "files": summary["test"]["files"], "parse_errors": summary["test"]["parse_errors"],
            "render_skipped": skipped, "split_sizes": {s: v["returned"] for s, v in summary.items()},
            "cold_s": cold, "cold_items_per_s": (n + skipped) / cold, "sequential_render_items_per_s": seq_rate,
            "cached_median_s": cached["median_s"], "cached_over_cold": cached["median_s"] / cold}


def bench_spoken_words(quick: bool, repeats: int) -> dict:
    from jointspace.data.datasets import get_dataset

    ds = get_dataset("spoken-words")
    if ds.missing():
        return {"skipped": ds.missing()}
    opts = {"settings_per_accent": 2} if quick else {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        n = sum(len(ds.load(s, cache_dir=tmp, **opts)) for s in ds.splits)
        cold = time.perf_counter() - t0
        cached = timeit(lambda: [ds.load(s, cache_dir=tmp, **opts) for s in ds.splits], repeats=repeats)
    return {"clips": n, "cold_s": cold, "clips_per_s": n / cold, "cached_median_s": cached["median_s"]}


def bench_idx(repeats: int) -> dict:
    from jointspace.data.datasets import fashion_mnist as fm
    from jointspace.data.idx import read_idx

    path = fm.DEFAULT_ROOT / "train-images-idx3-ubyte.gz"
    if not path.is_file():
        return {"skipped": fm.FashionMNIST().missing()}

    def reference():
        with gzip.open(path, "rb") as fh:
            return np.frombuffer(fh.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)

    assert np.array_equal(read_idx(path), reference())
    timed = side_by_side({"ours": lambda: read_idx(path), "reference": reference}, repeats=repeats)  # alternating
    return {"ours_median_s": timed["ours"]["median_s"], "reference_median_s": timed["reference"]["median_s"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="600 SVG files and 2 voice settings per accent")
    ap.add_argument("--repeats", type=positive_int, default=5)
    args = ap.parse_args(argv)
    out = {"machine": machine(), "quick": args.quick, "repeats": args.repeats,
           "openclipart": bench_openclipart(args.quick, args.repeats),
           "spoken_words": bench_spoken_words(args.quick, args.repeats),
           "fashion_mnist_idx": bench_idx(args.repeats)}
    oc, sw, fm = out["openclipart"], out["spoken_words"], out["fashion_mnist_idx"]
    print(f"{'what':<44}{'cold / ours':>14}{'cached / ref':>14}")
    if "skipped" not in oc:
        print(f"{'openclipart items (s)':<44}{oc['cold_s']:>14.1f}{oc['cached_median_s']:>14.2f}")
        print(f"{'openclipart render items/s (pool vs seq)':<44}{oc['cold_items_per_s']:>14.1f}"
              f"{oc['sequential_render_items_per_s']:>14.1f}")
        print(f"  items {oc['items']}, files {oc['files']}, parse errors {oc['parse_errors']}, "
              f"render skipped {oc['render_skipped']}, splits {oc['split_sizes']}")
    if "skipped" not in sw:
        print(f"{'spoken-words clips ' + str(sw['clips']) + ' (s)':<44}{sw['cold_s']:>14.1f}{sw['cached_median_s']:>14.3f}")
    if "skipped" not in fm:
        print(f"{'fashion-mnist train images IDX read (s)':<44}{fm['ours_median_s']:>14.3f}{fm['reference_median_s']:>14.3f}")
    print("results:", save("datasets", out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
