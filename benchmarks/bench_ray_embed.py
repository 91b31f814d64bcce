"""Ray embedding throughput: ``embed --ray`` with 1 and 2 workers against the single-process path.

The same tower (MiniLM, the ONNX runtime it ships with) over the same captions at the same
batch size, side by side in one run, interleaved round by round, medians of ``--repeats``
rounds:

* ``single``: :meth:`Tower.embed` in this process (its default threads);
* ``ray_1`` / ``ray_2``: :func:`jointspace.towers.ray_embed.embed_with_ray` on a local Ray
  instance (started once, ``num_cpus=2``) with 1 and 2 workers, each run writing its Parquet
  shards into a fresh folder.  A run's time includes what a real run pays: starting the
  actors, loading the tower in each, shipping the items and writing the shards.

The Ray vectors are checked equal to the single-process ones, bit for bit, once.  Items per
second and the ratio to ``single`` are reported.  On a 2-core machine two workers can at best
share the cores the single process already uses; the figures are what Ray costs and gains
here, not what a cluster gives.

Writes ``benchmarks/results/ray_embed.json``.

    python benchmarks/bench_ray_embed.py [--quick] [--repeats N] [--n N]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import RESULTS, machine, positive_int, save, side_by_side  # noqa: E402

WORDS = ("a red cat sleeps on the green sofa near an open window while two small dogs run across "
         "the wet garden under grey clouds and a bird sings from the old oak tree by the river").split()


def captions(n: int, seed: int = 0) -> list[str]:
    """``n`` captions of 4 to 24 words (varied lengths, as real captions)."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 25)))) for _ in range(n)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=positive_int, default=4096, help="captions")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--shard-size", type=positive_int, default=1024)
    p.add_argument("--repeats", type=positive_int, default=5, help="timed rounds (median)")
    p.add_argument("--quick", action="store_true", help="1,024 captions, 3 rounds")
    p.add_argument("--out", default=str(RESULTS / "ray_embed.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.repeats = 1024, 3

    import ray

    from jointspace.towers import create_tower
    from jointspace.towers.ray_embed import embed_with_ray, read_embeddings

    tower = create_tower("minilm")
    items = captions(args.n)
    ids = np.arange(args.n)
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    try:
        def ray_run(workers):
            def fn():
                out = work / f"w{workers}"
                shutil.rmtree(out, ignore_errors=True)
                embed_with_ray(tower, items, ids, out, batch_size=args.batch_size, shard_size=args.shard_size,
                               workers=workers, progress=False)
            return fn

        single = tower.embed(items, batch_size=args.batch_size, progress=False)
        ray_run(2)()
        same = bool(np.array_equal(read_embeddings(work / "w2")[1], single))
        timings = side_by_side({"single": lambda: tower.embed(items, batch_size=args.batch_size, progress=False),
                                "ray_1": ray_run(1), "ray_2": ray_run(2)}, repeats=args.repeats, warmup=0)
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    base = timings["single"]["median_s"]
    rows = {name: {**t, "items_per_s": args.n / t["median_s"], "speed_vs_single": base / t["median_s"]}
            for name, t in timings.items()}
    payload = {"tower": "minilm", "n": args.n, "batch_size": args.batch_size, "shard_size": args.shard_size,
               "repeats": args.repeats, "ray_vectors_equal_single": same, "runs": rows, "machine": machine(),
               "note": "local Ray with num_cpus=2 on the same 2 shared cores as the single process; "
                       "Ray times include actor start, tower load per actor and shard writes"}
    path = save(Path(args.out).stem, payload) if Path(args.out).parent == RESULTS else None
    if path is None:
        from jointspace._io import atomic_write_json

        atomic_write_json(args.out, payload)
    print(f"{'run':8} {'median s':>9} {'items/s':>9} {'x single':>9}")
    for name, r in rows.items():
        print(f"{name:8} {r['median_s']:9.2f} {r['items_per_s']:9.0f} {r['speed_vs_single']:9.2f}")
    print(f"ray vectors equal to single-process: {same}; wrote {args.out}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
