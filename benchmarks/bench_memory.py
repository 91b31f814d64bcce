"""Bounded memory on large collections: peak resident memory against the size of the data.

Each case runs in its own process and reports its peak resident set (``ru_maxrss``) next to the
size of the data it went through and the RSS right after its imports (Python, numpy, FAISS):

* ``fashion-mnist``: the 70,000 Fashion-MNIST images (train + test) embedded by the pretrained
  EfficientNet-Lite0 tower (1280-d, the default runtime), :data:`FASHION_BATCH` images at a
  time, each batch added to an on-disk ``IVF256,PQ160`` index as it is embedded
  (:func:`jointspace.index.ondisk.build_on_disk`; the exact vectors are kept on disk for
  re-ranking), so the 342 MB (2**20 bytes, as everywhere here) of float32 embeddings are never
  in memory together; the peak is also recorded after every batch (``trace``), so it can be
  seen to stop growing once the quantisers are trained on the first 20,000 vectors;
* ``synthetic``: ``n`` synthetic 512-d vectors (the collection of ``bench_scale.py``) streamed in
  batches of 50,000 into an on-disk ``IVF1024,PQ128`` index, at 100,000 and 1,000,000 vectors:
  the peak grows far more slowly than ``n`` (training sample, one batch, one shard of codes, the
  memory-mapped files during the merge);
* ``eval``: retrieval metrics (pair identity, 64-d, cosine) of ``n`` queries against ``n``
  items with :func:`jointspace.eval.retrieval.retrieval_scores`, at 20,000 and 100,000: scores
  are computed block by block (about 64 MB a block), never as the full ``n x n`` matrix.

``--quick`` runs smaller sizes (Fashion-MNIST limited to 2,000 images).  The machine has two
shared cores; times are indicative.

Usage::

    python benchmarks/bench_memory.py [--quick]

Writes ``benchmarks/results/memory.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from bench_scale import current_rss_mb, peak_rss_mb, run_child, stream  # noqa: E402

MB = 2**20
#: Fashion-MNIST images embedded (and added to the index) per batch: 10 MB of 1280-d vectors,
#: small beside the tower's own memory, so the trace shows the index's growth, not the batch's
FASHION_BATCH = 2_000


def child_fashion(limit, folder):
    from jointspace import load_dataset
    from jointspace.index.ondisk import build_on_disk
    from jointspace.towers import create_tower

    import faiss  # noqa: F401  (counted in the baseline, as in the other cases)

    base = peak_rss_mb()
    t0 = time.perf_counter()
    images = np.concatenate([load_dataset("fashion-mnist", s)["image"] for s in ("train", "test")])
    labels = np.concatenate([load_dataset("fashion-mnist", s).labels for s in ("train", "test")])
    if limit:
        images, labels = images[:limit], labels[:limit]
    n = len(images)
    tower = create_tower("efficientnet-lite0")

    trace = []   # (images embedded so far, peak RSS so far, RSS now): the peak must stop growing

    def batches():
        for s in range(0, n, FASHION_BATCH):
            emb = tower.embed(images[s:s + FASHION_BATCH], batch_size=32, progress=False)
            yield emb, {"label": labels[s:s + FASHION_BATCH].tolist()}
            trace.append((min(s + FASHION_BATCH, n), peak_rss_mb(), current_rss_mb()))

    # Settings of this memory measurement, not tuned for recall: PQ160 gives 8 of the 1280
    # dimensions a byte (bench_scale.py's PQ128 gives 4 of 512); 20,000 training vectors keep
    # FAISS's minimum of 39 a list for 256 lists (and the training sample at 98 MB); shards of
    # 25,000 make three shards, so the merge is exercised.
    spec = "IVF256,PQ160" if n >= 20_000 else "IVF16,PQ160"
    index = build_on_disk(batches(), folder, spec=spec, train_size=min(n, 20_000), shard_size=25_000)
    secs = time.perf_counter() - t0
    return {"n": n, "spec": spec, "tower": tower.name, "runtime": tower.runtime, "raw_image_bytes": int(images.nbytes),
            "embedding_bytes": n * index.dim * 4, "dim": index.dim,
            "index_bytes": sum(p.stat().st_size for p in Path(folder).iterdir()),
            "ntotal": index.ntotal, "seconds": secs, "rss_after_imports_mb": base, "peak_rss_mb": peak_rss_mb(),
            "train_size": min(n, 20_000),
            "trace": [{"images": i, "peak_rss_mb": pk, "rss_mb": now} for i, pk, now in trace]}


def child_synthetic(n, d, spec, folder):
    from jointspace.index.ondisk import build_on_disk

    import faiss  # noqa: F401

    base = peak_rss_mb()
    t0 = time.perf_counter()
    index = build_on_disk(stream(n, d), folder, spec=spec, train_size=50_000, shard_size=250_000)
    return {"n": n, "d": d, "raw_float32_bytes": 4 * n * d, "ntotal": index.ntotal,
            "index_bytes": sum(p.stat().st_size for p in Path(folder).iterdir()),
            "seconds": time.perf_counter() - t0, "rss_after_imports_mb": base, "peak_rss_mb": peak_rss_mb()}


def child_eval(n, d):
    from jointspace.eval.retrieval import retrieval_scores
    from jointspace.eval.similarity import BLOCK_BYTES

    rng = np.random.default_rng(0)
    q = rng.standard_normal((n, d)).astype(np.float32)
    g = (q + 1.5 * rng.standard_normal((n, d))).astype(np.float32)
    keys = np.arange(n)
    base = current_rss_mb()
    t0 = time.perf_counter()
    scores = retrieval_scores(q, g, keys, keys, metric="cosine")
    return {"n": n, "d": d, "data_bytes": int(q.nbytes + g.nbytes), "full_score_matrix_bytes": 4 * n * n,
            "block_budget_bytes": int(BLOCK_BYTES), "recall_at_10": float(scores["R@10"]) if "R@10" in scores else None,
            "seconds": time.perf_counter() - t0, "rss_before_eval_mb": base, "peak_rss_mb": peak_rss_mb()}


CHILDREN = {"fashion": child_fashion, "synthetic": child_synthetic, "eval": child_eval}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--args", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child](**json.loads(args.args))))
        return 0
    from _util import machine, save

    me = Path(__file__)
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    cases = []
    try:
        cases.append({"case": "fashion-mnist", **run_child(me, "fashion", limit=2_000 if args.quick else None,
                                                           folder=str(work / "fashion"))})
        synth = [(20_000, 128, "IVF64,PQ32"), (100_000, 128, "IVF64,PQ32")] if args.quick else \
            [(100_000, 512, "IVF1024,PQ128"), (1_000_000, 512, "IVF1024,PQ128")]
        for n, d, spec in synth:
            cases.append({"case": f"synthetic-{n}", "spec": spec,
                          **run_child(me, "synthetic", n=n, d=d, spec=spec, folder=str(work / f"s{n}"))})
            shutil.rmtree(work / f"s{n}", ignore_errors=True)
        for n in ([5_000, 20_000] if args.quick else [20_000, 100_000]):
            cases.append({"case": f"eval-{n}x{n}", **run_child(me, "eval", n=n, d=64)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    path = save("memory", {"cases": cases, "machine": machine(), "quick": args.quick})
    print(f"{'case':<22}{'data MB':>10}{'index MB':>10}{'baseline MB':>13}{'peak RSS MB':>13}{'seconds':>9}")
    for c in cases:
        data = c.get("raw_float32_bytes") or c.get("embedding_bytes") or c.get("data_bytes")
        base = c.get("rss_after_imports_mb", c.get("rss_before_eval_mb"))
        index = c.get("index_bytes", 0) / MB
        print(f"{c['case']:<22}{data / MB:>10.0f}{index:>10.0f}{base:>13.0f}{c['peak_rss_mb']:>13.0f}"
              f"{c['seconds']:>9.1f}")
    for c in cases:
        if c["case"] == "fashion-mnist":
            print(f"fashion-mnist: {c['n']:,} images ({c['raw_image_bytes'] / MB:.0f} MB of pixels) embedded by "
                  f"{c['tower']} ({c['runtime']}) into {c['dim']}-d vectors, {c['embedding_bytes'] / MB:.0f} MB "
                  f"as float32 (the data column)")
            marks = [t for t in c["trace"] if t["images"] in (c["train_size"], c["n"] // 2, c["n"])] or c["trace"][-1:]
            print("  peak RSS as the images go through: " + ", ".join(
                f"{t['images']:,} images {t['peak_rss_mb']:.0f} MB" for t in marks)
                + f"; at the end, with the quantisers trained on {c['train_size']:,} and the lists merged, "
                  f"{c['peak_rss_mb']:.0f} MB")
        if c["case"].startswith("eval"):
            print(f"{c['case']}: the full score matrix would be {c['full_score_matrix_bytes'] / MB:,.0f} MB; "
                  f"blocks of {c['block_budget_bytes'] / MB:.0f} MB")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
