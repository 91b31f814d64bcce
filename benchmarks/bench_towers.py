"""Tower throughput: images/s through EfficientNet-Lite0, sentences/s through MiniLM, and the cache.

Side by side in one run (medians of ``--repeats`` runs):

* ours: ``tower.embed`` on PNG files / sentences (decoding, resizing, batching included);
* reference: the bare network on already-prepared input (EfficientNet's ``extract_features``
  + pooling on a ready tensor; sentence-transformers' own ``encode``), same batch size;
* cache: a first run through an empty :class:`~jointspace.towers.EmbeddingCache` (one run,
  it fills the cache) and second runs that read it (median), which must take under a tenth
  of the first.

Writes ``benchmarks/results/towers.json``.

    python benchmarks/bench_towers.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from jointspace.towers import EmbeddingCache, create_tower  # noqa: E402


def _median_time(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def _images(folder: Path, n: int) -> list[str]:
    """n distinct 320x240 RGB PNG drawings (shapes on white), written to ``folder``."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        img = Image.new("RGB", (320, 240), "white")
        draw = ImageDraw.Draw(img)
        for _ in range(6):
            x0, y0 = rng.integers(0, 280), rng.integers(0, 200)
            draw.ellipse([x0, y0, x0 + rng.integers(10, 120), y0 + rng.integers(10, 120)],
                         fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        p = folder / f"img{i:04d}.png"
        img.save(p)
        paths.append(str(p))
    return paths


def _sentences(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    words = ("a red car parked by the sea", "two dogs run in the snow", "an old house with a tree",
             "a cartoon cat holding a fish", "blue flowers in a vase", "a man riding a bicycle downhill")
    return [f"{words[i % len(words)]} number {i} {rng.integers(1000)}" for i in range(n)]


def bench_tower(name: str, items, batch_size: int, repeats: int, reference, unit: str) -> dict:
    import torch

    tower = create_tower(name)
    tower.embed(items[:batch_size], batch_size=batch_size, progress=False)  # load weights, warm up
    n = len(items)
    ours, ours_all = _median_time(lambda: tower.embed(items, batch_size=batch_size, progress=False), repeats)
    ref, ref_all = _median_time(reference(tower, items, batch_size), repeats)
    with tempfile.TemporaryDirectory() as tmp:
        cache = EmbeddingCache(tmp)
        t0 = time.perf_counter()
        first = cache.embed(tower, items, batch_size=batch_size, progress=False)
        cold = time.perf_counter() - t0
        warm, warm_all = _median_time(lambda: cache.embed(tower, items, batch_size=batch_size, progress=False),
                                      repeats)
        assert np.array_equal(first, cache.embed(tower, items, progress=False))
    return {"tower": name, "n_items": n, "batch_size": batch_size, "repeats": repeats,
            "torch_threads": torch.get_num_threads(),
            f"ours_{unit}_per_s": n / ours, f"reference_{unit}_per_s": n / ref,
            "ours_seconds": ours_all, "reference_seconds": ref_all,
            "cache_first_run_seconds": cold, "cache_second_run_seconds_median": warm,
            "cache_second_run_seconds": warm_all, "cache_ratio": warm / cold, "cache_ok": warm < cold / 10}


def _ref_effnet(tower, items, bs):
    import torch

    x = tower.preprocess(items[:bs])  # prepared once: the bare network's speed

    def fn():
        with torch.inference_mode():
            for _ in range(0, len(items), bs):
                tower.network.extract_features(x).mean(dim=(2, 3))
    return fn


def _ref_minilm(tower, items, bs):
    return lambda: tower.model.encode(items, batch_size=bs, show_progress_bar=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer items")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    n_img, n_txt = (32, 256) if args.quick else (128, 1024)
    with tempfile.TemporaryDirectory() as tmp:
        paths = _images(Path(tmp), n_img)
        img = bench_tower("efficientnet-lite0", paths, 32, args.repeats, _ref_effnet, "images")
    txt = bench_tower("minilm", _sentences(n_txt), 64, args.repeats, _ref_minilm, "sentences")
    result = {"towers": [img, txt], "quick": args.quick,
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "load_average_after": list(os.getloadavg())}}
    out = Path(__file__).resolve().parent / "results" / "towers.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"{'tower':<20}{'items':>7}{'batch':>7}{'ours/s':>10}{'ref/s':>10}{'1st (s)':>10}{'cached (s)':>12}"
          f"{'ratio':>8}")
    for r, unit in ((img, "images"), (txt, "sentences")):
        print(f"{r['tower']:<20}{r['n_items']:>7}{r['batch_size']:>7}{r[f'ours_{unit}_per_s']:>10.1f}"
              f"{r[f'reference_{unit}_per_s']:>10.1f}{r['cache_first_run_seconds']:>10.2f}"
              f"{r['cache_second_run_seconds_median']:>12.4f}{r['cache_ratio']:>8.4f}")
    print(f"(medians of {args.repeats}; 'ref' = the bare network on prepared input; load average "
          f"{result['machine']['load_average_after'][0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"wrote {out}")
    return 0 if img["cache_ok"] and txt["cache_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
