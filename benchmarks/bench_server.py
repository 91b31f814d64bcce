"""Load test of ``jointspace serve`` on loopback: text and image queries against an OpenClipart index.

The server runs in its own process (uvicorn, one worker, bound to 127.0.0.1); the client is
this process, asyncio + httpx, with 1, 8 and 32 concurrent clients each sending a bounded
number of requests.  Text queries are all different (the query cache is not what is measured);
a cached-text row is reported too.  Image queries upload rendered OpenClipart PNGs.

For each level: throughput (requests/s, median over rounds), p50 / p99 latency, errors.
The time of one text query is split into the text tower (server's ``encode_ms``), the index
(``search_ms``), the rest of the handler, and the HTTP layer (client latency minus the
handler's ``took_ms``), at one client; beside it, the same query answered in-process
(``model.encode`` + ``index.search``, no HTTP) as the reference.

Index: a ToweredModel (EfficientNet-Lite0 + MiniLM, regularised CCA head) fitted on a few
hundred OpenClipart training drawings, indexing a few hundred test drawings (built once,
kept under ``benchmarks/results/server-index``).

    python benchmarks/bench_server.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import RESULTS, machine, save  # noqa: E402

WORK = RESULTS / "server-index"
WORDS = ("red", "blue", "green", "old", "small", "happy", "dark", "round", "flying", "wooden", "cartoon", "simple")
NOUNS = ("car", "cat", "house", "tree", "flower", "star", "bird", "dog", "boat", "man", "woman", "fish", "clock",
         "computer", "guitar", "apple", "sun", "map", "flag", "book")


def build_index(n_train: int, n_index: int) -> tuple[Path, Path, list]:
    """Fit the towered model and index OpenClipart test drawings (reused when already built)."""
    from jointspace.cli.commands.index import item_metadata
    from jointspace.data.datasets import load_dataset
    from jointspace.index.faiss_index import Index
    from jointspace.models.towered import ToweredModel

    model_dir, index_dir = WORK / f"model-{n_train}", WORK / f"index-{n_train}-{n_index}"
    test = load_dataset("openclipart", "test", limit=n_index)
    if not (index_dir / "index.json").is_file():
        train = load_dataset("openclipart", "train", limit=n_train)
        model = ToweredModel(towers={"image": "efficientnet-lite0", "text": "minilm"}, head="rcca",
                             head_params={"n_components": 64, "reg": 0.1,
                                          "preprocess": {"image": "pca:128", "text": "pca:128"}})
        print(f"fitting the towered model on {len(train)} OpenClipart drawings ...", flush=True)
        model.fit(train)
        model.save(model_dir)
        vectors = model.project("image", model.embed("image", test["image"]))
        index = Index.build(vectors, spec="Flat", metadata=item_metadata(test, "image"))
        index.info.update({"model": str(model_dir), "modality": "image", "dataset": "openclipart", "split": "test"})
        index.save(index_dir)
    return model_dir, index_dir, list(test["image"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(index_dir: Path, model_dir: Path, port: int) -> subprocess.Popen:
    code = ("import sys; from jointspace.server.app import serve; "
            f"serve({str(index_dir)!r}, {str(model_dir)!r}, host='127.0.0.1', port={port}, log_level='warning')")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.Popen([sys.executable, "-c", code], env=env)


async def wait_ready(url: str, proc, timeout: float = 300) -> None:
    import httpx

    t0 = time.time()
    async with httpx.AsyncClient() as c:
        while time.time() - t0 < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with code {proc.returncode}")
            try:
                if (await c.get(url + "/api/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError("the server did not start in time")


def text_queries(n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [f"{WORDS[rng.integers(len(WORDS))]} {NOUNS[rng.integers(len(NOUNS))]} {seed}-{i}" for i in range(n)]


async def load_round(url: str, make_request, n_requests: int, concurrency: int) -> dict:
    """``concurrency`` clients share ``n_requests`` requests; returns latencies, bodies, errors, wall time."""
    import httpx

    todo = list(range(n_requests))
    lat, bodies, errors = [], [], []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        async def worker():
            while todo:
                i = todo.pop()
                t0 = time.perf_counter()
                try:
                    r = await make_request(client, i)
                    ms = (time.perf_counter() - t0) * 1000
                    if r.status_code != 200:
                        errors.append(f"{r.status_code}: {r.text[:100]}")
                    else:
                        lat.append(ms)
                        bodies.append((ms, r.json()))
                except Exception as exc:   # any transport failure counts as an error
                    errors.append(repr(exc))

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        wall = time.perf_counter() - t0
    return {"lat": lat, "bodies": bodies, "errors": errors, "wall": wall, "n": n_requests}


async def run_level(url, make_request, concurrency, rounds, per_round) -> dict:
    await load_round(url, make_request, min(per_round, 2 * concurrency), concurrency)   # warm-up
    outs = [await load_round(url, make_request, per_round, concurrency) for _ in range(rounds)]
    lat = np.concatenate([o["lat"] for o in outs]) if any(o["lat"] for o in outs) else np.array([np.nan])
    return {"concurrency": concurrency, "requests": sum(o["n"] for o in outs),
            "errors": sum(len(o["errors"]) for o in outs), "error_examples": [e for o in outs for e in o["errors"]][:3],
            "throughput_rps": statistics.median(o["n"] / o["wall"] for o in outs),
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "bodies": [b for o in outs for b in o["bodies"]]}


def breakdown(bodies) -> dict:
    """Median split of a text query's client-side time: tower, index, rest of handler, HTTP."""
    rows = [(ms, b["took_ms"], b["timings"]["encode_ms"], b["timings"]["search_ms"]) for ms, b in bodies]
    a = np.array(rows)
    client, took, enc, srch = (np.median(a[:, i]) for i in range(4))
    parts = {"text tower (encode_ms)": enc, "index (search_ms)": srch, "handler rest": max(took - enc - srch, 0.0),
             "HTTP layer (client - took_ms)": max(client - took, 0.0)}
    total = sum(parts.values())
    return {"client_ms_median": float(client),
            "parts_ms": {k: float(v) for k, v in parts.items()},
            "shares": {k: float(v / total) for k, v in parts.items()}}


def in_process_reference(model_dir, index_dir, n: int) -> dict:
    """The same text queries answered in this process, no HTTP: ``model.encode`` + ``index.search``.

    Run in a worker thread, as the server runs its handlers (on an oversubscribed machine,
    PyTorch's main-thread OpenMP team can be many times slower than a worker thread's).
    """
    import threading

    from jointspace.index.faiss_index import Index
    from jointspace.models.base import load_model

    model, index = load_model(model_dir), Index.load(index_dir)
    qs = text_queries(n, seed=999)
    times = []

    def work():
        model.encode("text", ["warm up"])
        for q in qs:
            t0 = time.perf_counter()
            index.search(model.encode("text", [q]), k=10)
            times.append((time.perf_counter() - t0) * 1000)

    th = threading.Thread(target=work)
    th.start()
    th.join()
    return {"p50_ms": float(np.median(times)), "p99_ms": float(np.percentile(times, 99)),
            "throughput_rps": 1000 / float(np.mean(times))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer items and requests")
    args = ap.parse_args(argv)
    n_train, n_index = (200, 200) if args.quick else (400, 400)
    rounds = 2 if args.quick else 5
    levels = (1, 8, 32)
    model_dir, index_dir, images = build_index(n_train, n_index)
    pngs = [Path(p).read_bytes() for p in images[:64]]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(index_dir, model_dir, port)
    results = {"machine": machine(), "index_items": n_index, "train_items": n_train, "rounds": rounds,
               "text": [], "text_cached": None, "image": []}
    try:
        asyncio.run(wait_ready(url, proc))
        seed = [0]

        async def cached_req(client, i):
            return await client.get("/api/search", params={"text": "a red car", "k": 10})

        async def image_req(client, i):
            return await client.post("/api/search", files={"file": (f"q{i}.png", pngs[i % len(pngs)], "image/png")},
                                     data={"k": "10"})

        for c in levels:
            per_round = max(10 if args.quick else 16, 3 * c)
            seed[0] += 1
            queries = text_queries(per_round * 2, seed[0])   # unique per request: no cache hits
            lvl = {}

            async def fresh_text(client, i, lvl=lvl):
                lvl["k"] = lvl.get("k", 0) + 1
                return await client.get("/api/search", params={"text": f"{queries[i % len(queries)]} r{lvl['k']}",
                                                               "k": 10})

            res = asyncio.run(run_level(url, fresh_text, c, rounds, per_round))
            if c == 1:
                results["text_breakdown_1_client"] = breakdown(res["bodies"])
            res.pop("bodies")
            results["text"].append(res)
            print(f"text   c={c:>2}: {res['throughput_rps']:7.1f} req/s  p50 {res['p50_ms']:7.1f} ms  "
                  f"p99 {res['p99_ms']:7.1f} ms  errors {res['errors']}", flush=True)
        res = asyncio.run(run_level(url, cached_req, 8, rounds, 48))
        res.pop("bodies")
        results["text_cached"] = res
        print(f"cached c= 8: {res['throughput_rps']:7.1f} req/s  p50 {res['p50_ms']:7.1f} ms  "
              f"p99 {res['p99_ms']:7.1f} ms  errors {res['errors']}", flush=True)
        for c in levels:
            per_round = max(10 if args.quick else 16, 3 * c)
            res = asyncio.run(run_level(url, image_req, c, rounds, per_round))
            res.pop("bodies")
            results["image"].append(res)
            print(f"image  c={c:>2}: {res['throughput_rps']:7.1f} req/s  p50 {res['p50_ms']:7.1f} ms  "
                  f"p99 {res['p99_ms']:7.1f} ms  errors {res['errors']}", flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    results["in_process_text"] = in_process_reference(model_dir, index_dir, 20 if args.quick else 50)

    print("\n| query | clients | req/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|")
    for kind in ("text", "image"):
        for r in results[kind]:
            print(f"| {kind} | {r['concurrency']} | {r['throughput_rps']:.1f} | {r['p50_ms']:.1f} | "
                  f"{r['p99_ms']:.1f} | {r['errors']} |")
    r = results["text_cached"]
    print(f"| text (cached) | 8 | {r['throughput_rps']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |")
    ref = results["in_process_text"]
    print(f"| text, in-process reference (no HTTP) | 1 | {ref['throughput_rps']:.1f} | {ref['p50_ms']:.1f} | "
          f"{ref['p99_ms']:.1f} | - |")
    b = results["text_breakdown_1_client"]
    print(f"\none text query at 1 client, median {b['client_ms_median']:.1f} ms:")
    for k, v in b["parts_ms"].items():
        print(f"  {k:32s} {v:8.2f} ms  {100 * b['shares'][k]:5.1f} %")
    errors = sum(r["errors"] for kind in ("text", "image") for r in results[kind]) + results["text_cached"]["errors"]
    results["total_errors"] = errors
    print(f"\nresults: {save('server', results)}")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
