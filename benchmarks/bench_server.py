"""Load test of ``jointspace serve`` on loopback: text and image queries against an OpenClipart index.

The server runs in its own process (uvicorn, one worker, bound to 127.0.0.1); the client is
this process, asyncio + httpx, with 1, 8 and 32 concurrent clients each sending a bounded
number of requests.  Text queries are all different (the query cache is not what is measured);
a cached-text row is reported too.  Image queries upload rendered OpenClipart PNGs.

For each level: throughput (requests/s, median over rounds), p50 / p99 latency, errors.
The time of one text query is split into the text tower (server's ``encode_ms``), the index
(``search_ms``), the rest of the handler, and the HTTP layer (client latency minus the
handler's ``took_ms``), at one client; beside it, the same query answered in-process
(the server's engine called directly, no HTTP) as the reference.

Index: a ToweredModel (EfficientNet-Lite0 + MiniLM, regularised CCA head) fitted on a few
hundred OpenClipart training drawings, indexing a few hundred test drawings (built once,
kept under ``benchmarks/results/server-index``).

Each tower runtime (``--runtimes torch,onnx``) gets its own server on a copy of the saved
model whose tower settings name that runtime; the servers run side by side and every load
level is measured on each in turn, so the ratios share the machine's load.  The cold start of
each (process start to the first answered text query, the ONNX export already cached) is
reported too.

``--baseline REV`` adds one more server, side by side with the others: the package as it was at
git revision ``REV`` (its ``src`` exported from this checkout's history, kept under
``benchmarks/results/server-index``), on the same saved model (its tower settings cut to those
that revision takes) and the same index, so a ratio against an earlier release is measured
under the same load rather than against a figure from another day.

    python benchmarks/bench_server.py [--quick] [--runtimes torch,onnx] [--baseline REV]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
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


def runtime_model(model_dir: Path, runtime: str) -> Path:
    """A copy of the saved model whose towers run on ``runtime`` (only its config differs); with
    ``torch-bf16``, which only the text tower has, the image tower runs ``torch``."""
    dst = model_dir.parent / f"{model_dir.name}-{runtime}"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(model_dir, dst)
    cfg = json.loads((dst / "config.json").read_text())
    for modality, params in cfg["params"]["tower_params"].items():
        params["runtime"] = "torch" if runtime == "torch-bf16" and modality == "image" else runtime
    (dst / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
    return dst


def baseline_source(rev: str) -> tuple[str, Path]:
    """The ``src`` folder of git revision ``rev`` of this checkout, exported once; returns the
    full commit id and the folder to put on ``PYTHONPATH``."""
    try:
        sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"], check=True,
                             capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"--baseline: {rev!r} is not a commit of this git checkout ({exc})") from None
    dst = WORK / f"baseline-{sha[:12]}"
    if not (dst / "src" / "jointspace" / "__init__.py").is_file():
        WORK.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=WORK, prefix=".baseline-"))
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", sha, "src"], check=True,
                                 capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        shutil.rmtree(dst, ignore_errors=True)
        tmp.rename(dst)
    return sha, dst / "src"


def baseline_model(model_dir: Path, src: Path) -> Path:
    """A copy of the saved model whose tower settings keep only the parameters the package at
    ``src`` takes (settings added since, such as ``runtime``, are dropped: that package's
    defaults apply)."""
    code = ("import inspect, json, sys; from jointspace.towers import TOWERS, list_towers; list_towers(); "
            "print(json.dumps({n: list(inspect.signature(TOWERS.get(n).__init__).parameters)[1:] "
            "for n in sys.argv[1:]}))")
    cfg = json.loads((model_dir / "config.json").read_text())
    names = cfg["params"]["towers"]
    taken = json.loads(subprocess.run([sys.executable, "-c", code, *names.values()], check=True, capture_output=True,
                                      text=True, env=dict(os.environ, PYTHONPATH=str(src))).stdout)
    for modality, params in cfg["params"]["tower_params"].items():
        for key in [k for k in params if k not in taken[names[modality]]]:
            del params[key]
    dst = model_dir.parent / f"{model_dir.name}-baseline"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(model_dir, dst)
    (dst / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
    return dst


def retrieval_by_runtime(models: dict, n_index: int) -> dict:
    """Text -> image retrieval on the indexed test drawings, embedded through each runtime's model:
    recall@10 and mAP with every drawing of the query's normalised title relevant (must agree to
    +-0.005 across runtimes), and the worst cosine between the runtimes' joint vectors."""
    from jointspace.data.datasets import load_dataset
    from jointspace.models.base import load_model

    test = load_dataset("openclipart", "test", limit=n_index)
    keys = np.asarray(test.metadata["title_key"])
    out, first = {}, None
    for rt, folder in models.items():
        model = load_model(folder)
        zi = model.encode("image", test["image"])
        zt = model.encode("text", test["text"])
        sims = zt @ zi.T
        rel = keys[:, None] == keys[None, :]
        order = np.argsort(-sims, axis=1, kind="stable")
        hits = np.take_along_axis(rel, order, axis=1)
        precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
        ap = (precision * hits).sum(1) / np.maximum(hits.sum(1), 1)
        out[rt] = {"recall_at_10": float(hits[:, :10].any(1).mean()), "map": float(ap.mean())}
        if first is None:
            first = (zi, zt)
        else:
            out[rt]["cosine_min_to_first"] = float(min((zi * first[0]).sum(1).min(), (zt * first[1]).sum(1).min()))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(index_dir: Path, model_dir: Path, port: int, max_batch: int = 32, src: Path = ROOT / "src"
                 ) -> subprocess.Popen:
    code = ("from jointspace.server.app import serve; "
            f"serve({str(index_dir)!r}, {str(model_dir)!r}, host='127.0.0.1', port={port}, log_level='warning', "
            f"max_batch={max_batch})")
    env = dict(os.environ, PYTHONPATH=str(src))
    return subprocess.Popen([sys.executable, "-c", code], env=env)


async def wait_ready(url: str, proc, timeout: float = 300) -> None:
    """Wait until the server answers a text query (polled every 50 ms)."""
    import httpx

    t0 = time.time()
    async with httpx.AsyncClient() as c:
        while time.time() - t0 < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with code {proc.returncode}")
            try:
                if (await c.get(url + "/api/search", params={"text": "first query", "k": 1})).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
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
    """The same text queries answered in this process without HTTP, by the server's own engine.

    :class:`~jointspace.server.engine.SearchEngine` is loaded as the server loads it, and
    queried from a worker thread, as the server's handlers run (after a warm-up).
    """
    import threading

    from jointspace.server.engine import SearchEngine

    engine = SearchEngine(index_dir, model_dir)
    qs = text_queries(n + 10, seed=999)
    times = []

    def work():
        for i, q in enumerate(qs):
            t0 = time.perf_counter()
            vec, _ = engine.encode("text", q, use_cache=False)
            engine.search(vec, k=10)
            if i >= 10:
                times.append((time.perf_counter() - t0) * 1000)

    th = threading.Thread(target=work)
    th.start()
    th.join()
    return {"p50_ms": float(np.median(times)), "p99_ms": float(np.percentile(times, 99)),
            "throughput_rps": 1000 / float(np.mean(times))}


class running_server:
    """Start ``serve`` in a subprocess on a free loopback port; stop it on exit."""

    def __init__(self, index_dir, model_dir, max_batch: int, src: Path = ROOT / "src"):
        self.args = (index_dir, model_dir, max_batch, src)

    def __enter__(self) -> str:
        port = free_port()
        t0 = time.perf_counter()
        self.proc = start_server(*self.args[:2], port, max_batch=self.args[2], src=self.args[3])
        url = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(wait_ready(url, self.proc))
        except BaseException:
            self.__exit__()
            raise
        self.cold_start_s = time.perf_counter() - t0   # process start to the first answered query
        return url

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


_SEQ = [0]


def measure(url, kind, concurrency, rounds, quick, pngs) -> dict:
    """One load level: ``kind`` is "text" (all different), "cached" (one text) or "image"."""
    per_round = 48 if kind == "cached" else max(10 if quick else 16, 3 * concurrency)
    _SEQ[0] += 1
    tag = _SEQ[0]
    queries = text_queries(per_round * (rounds + 1), tag)
    counter = [0]

    async def request(client, i):
        counter[0] += 1
        n = counter[0]
        if kind == "image":
            return await client.post("/api/search", files={"file": (f"q{n}.png", pngs[n % len(pngs)], "image/png")},
                                     data={"k": "10"})
        text = "a red car" if kind == "cached" else f"{queries[n % len(queries)]} r{n}"   # unique: no cache hits
        return await client.get("/api/search", params={"text": text, "k": 10})

    return asyncio.run(run_level(url, request, concurrency, rounds, per_round))


def report(name: str, res: dict) -> dict:
    res = {k: v for k, v in res.items() if k != "bodies"}
    print(f"{name:16s} c={res['concurrency']:>2}: {res['throughput_rps']:7.1f} req/s  p50 {res['p50_ms']:7.1f} ms  "
          f"p99 {res['p99_ms']:7.1f} ms  errors {res['errors']}", flush=True)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer items and requests")
    ap.add_argument("--runtimes", default="torch,onnx",
                    help="tower runtimes served side by side, comma-separated (the last is the one of the "
                         "image, cached and unbatched rows)")
    ap.add_argument("--baseline", metavar="REV",
                    help="also serve the package as it was at this git revision, side by side (e.g. the "
                         "release a speed target is measured against)")
    args = ap.parse_args(argv)
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    from jointspace.towers.runtime import RUNTIMES

    if not runtimes or any(r not in RUNTIMES for r in runtimes) or len(set(runtimes)) < len(runtimes):
        ap.error(f"--runtimes: expected a comma-separated list of distinct runtimes among {', '.join(RUNTIMES)}, "
                 f"got {args.runtimes!r}")
    n_train, n_index = (200, 200) if args.quick else (400, 400)
    rounds = 2 if args.quick else 5
    levels = (1, 8, 32)
    sources = {rt: ROOT / "src" for rt in runtimes}
    baseline_rev = None
    if args.baseline:   # a revision that is not there is refused before the model is fitted
        baseline_rev, sources["baseline"] = baseline_source(args.baseline)
    model_dir, index_dir, images = build_index(n_train, n_index)
    models = {rt: runtime_model(model_dir, rt) for rt in runtimes}
    new = runtimes[-1]
    if args.baseline:
        models = {"baseline": baseline_model(model_dir, sources["baseline"]), **models}
    served = list(models)   # the baseline first, then the runtimes
    pngs = [Path(p).read_bytes() for p in images[:64]]
    results = {"machine": machine(), "index_items": n_index, "train_items": n_train, "rounds": rounds,
               "runtimes": runtimes, "baseline_rev": baseline_rev, "load_average_before": os.getloadavg()[0],
               "cold_start_s": {}, "text": {rt: [] for rt in served}, "text_cached": None,
               "image": {rt: [] for rt in served},
               "unbatched": {"text": [], "image": []}, "text_breakdown_1_client": {}, "in_process_text": {}}
    with contextlib.ExitStack() as stack:
        urls = {}
        for rt in served:   # started one after another, so each cold start has the machine to itself
            server = running_server(index_dir, models[rt], max_batch=32, src=sources[rt])
            urls[rt] = stack.enter_context(server)
            results["cold_start_s"][rt] = server.cold_start_s
            print(f"serve ({rt}): process start to first answered query {server.cold_start_s:.2f} s", flush=True)
        for c in levels:
            for rt in served:
                res = measure(urls[rt], "text", c, rounds, args.quick, pngs)
                if c == 1:
                    results["text_breakdown_1_client"][rt] = breakdown(res["bodies"])
                results["text"][rt].append(report(f"text {rt}", res))
        results["text_cached"] = report(f"cached {new}", measure(urls[new], "cached", 8, rounds, args.quick, pngs))
        for c in levels[:2]:
            for rt in served:
                results["image"][rt].append(report(f"image {rt}", measure(urls[rt], "image", c, rounds, args.quick,
                                                                          pngs)))
    with running_server(index_dir, models[new], max_batch=1) as url:   # the same server, one query per pass
        for kind in ("text", "image"):
            results["unbatched"][kind].append(report(f"{kind} unbatched", measure(url, kind, 32, rounds, args.quick,
                                                                                  pngs)))
    for rt in runtimes:
        results["in_process_text"][rt] = in_process_reference(models[rt], index_dir, 20 if args.quick else 50)
    results["retrieval"] = retrieval_by_runtime({rt: models[rt] for rt in runtimes}, n_index)
    results["load_average_after"] = os.getloadavg()[0]

    print("\n| query | runtime | clients | req/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|---|")
    for kind in ("text", "image"):
        for rt in served:
            for r in results[kind][rt]:
                print(f"| {kind} | {rt} | {r['concurrency']} | {r['throughput_rps']:.1f} | {r['p50_ms']:.1f} | "
                      f"{r['p99_ms']:.1f} | {r['errors']} |")
    for kind in ("text", "image"):
        for r in results["unbatched"][kind]:
            print(f"| {kind}, --max-batch 1 | {new} | {r['concurrency']} | {r['throughput_rps']:.1f} | "
                  f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |")
    r = results["text_cached"]
    print(f"| text (cached) | {new} | 8 | {r['throughput_rps']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
          f"{r['errors']} |")
    for rt in runtimes:
        ref = results["in_process_text"][rt]
        print(f"| text, in-process engine (no HTTP) | {rt} | 1 | {ref['throughput_rps']:.1f} | {ref['p50_ms']:.1f} | "
              f"{ref['p99_ms']:.1f} | - |")
    for rt in served:
        b = results["text_breakdown_1_client"][rt]
        print(f"\none text query at 1 client ({rt}), median {b['client_ms_median']:.1f} ms:")
        for k, v in b["parts_ms"].items():
            print(f"  {k:32s} {v:8.2f} ms  {100 * b['shares'][k]:5.1f} %")
    print("\ntext -> image retrieval on the indexed test drawings (title relevance), per runtime: "
          + "; ".join(f"{rt} R@10 {v['recall_at_10']:.4f} mAP {v['map']:.4f}"
                      + (f" (cosine to {runtimes[0]} >= {v['cosine_min_to_first']:.5f})" if "cosine_min_to_first" in v
                         else "") for rt, v in results["retrieval"].items()))
    print("cold start of serve (process start to first answered text query): "
          + ", ".join(f"{rt} {v:.2f} s" for rt, v in results["cold_start_s"].items()))
    at8 = {rt: next(r for r in results["text"][rt] if r["concurrency"] == 8) for rt in served}
    if "torch" in runtimes and new != "torch":
        ratio = at8[new]["throughput_rps"] / at8["torch"]["throughput_rps"]
        results["text_8_clients"] = {"ratio": ratio, "p99_ms": at8[new]["p99_ms"], "errors": at8[new]["errors"],
                                     "met": ratio >= 3 and at8[new]["p99_ms"] <= 100 and at8[new]["errors"] == 0}
        print(f"text queries at 8 clients: {new} / torch {ratio:.2f}x req/s (target >= 3x), p99 "
              f"{at8[new]['p99_ms']:.1f} ms (target <= 100), errors {at8[new]['errors']}")
    if baseline_rev:
        ratios = {rt: at8[rt]["throughput_rps"] / at8["baseline"]["throughput_rps"] for rt in runtimes}
        results["text_8_clients_vs_baseline"] = {"rev": baseline_rev, "ratios": ratios}
        print(f"text queries at 8 clients against the package at {baseline_rev[:12]}: "
              + ", ".join(f"{rt} {v:.2f}x" for rt, v in ratios.items()) + " req/s")
    print(f"(load average {results['load_average_before']:.1f} before, {results['load_average_after']:.1f} after, "
          f"on {os.cpu_count()} CPUs shared with other work)")
    errors = (sum(r["errors"] for kind in ("text", "image") for rt in served for r in results[kind][rt])
              + sum(r["errors"] for kind in ("text", "image") for r in results["unbatched"][kind])
              + results["text_cached"]["errors"])
    results["total_errors"] = errors
    print(f"\nresults: {save('server', results)}")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
