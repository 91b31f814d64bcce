"""OpenClipart text<->image retrieval with CCA over frozen towers (EfficientNet-Lite0 + MiniLM).

Protocol: the dataset's title-disjoint splits; the text is title + keywords; on the test
split every gallery drawing whose normalised title equals the query's is relevant
(``relevance="title_key"``); pair-identity figures are reported too.  CCA settings (PCA size,
components, correlation weighting, and for regularised CCA the ridge) are chosen on the
validation split by :func:`jointspace.models.towered.fit_with_towers`.

Rows: random embeddings, the raw towers' cosine is impossible (different spaces), CCA and
regularised CCA.  Writes ``benchmarks/results/openclipart_cca.json``.

    python benchmarks/bench_openclipart_cca.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from jointspace.data.datasets import load_dataset  # noqa: E402
from jointspace.eval.retrieval import evaluate_embeddings  # noqa: E402
from jointspace.models.towered import fit_with_towers  # noqa: E402

TOWERS = {"image": "efficientnet-lite0", "text": "minilm"}
METRICS = ("R@1", "R@5", "R@10", "mAP", "medR")
DIRECTIONS = ("text->image", "image->text")


def scores(z_img, z_txt, pairs, relevance):
    keys = pairs.relevance_keys(relevance)
    res = evaluate_embeddings({"image": z_img, "text": z_txt}, keys, directions=list(DIRECTIONS))
    return {d: {m: float(res[f"{d}/{m}"]) for m in METRICS} for d in DIRECTIONS}


def run(quick: bool = False, cache=True, out: Path | None = None) -> dict:
    """Fit and evaluate every row; returns the result dict (also written as JSON)."""
    opts = {"text": "title+keywords"}
    if quick:
        opts["max_files"] = 1500
    t0 = time.perf_counter()
    train, val, test = (load_dataset("openclipart", s, **opts) for s in ("train", "val", "test"))
    t_load = time.perf_counter() - t0
    rows = {}
    rng = np.random.default_rng(0)
    d = 64
    rand_i, rand_t = rng.normal(size=(len(test), d)), rng.normal(size=(len(test), d))
    rows["random"] = {r: scores(rand_i, rand_t, test, r) for r in ("title_key", "id")}
    chosen = {}
    t_fit = {}
    for label, head in (("CCA", "cca"), ("regularised CCA", "rcca")):
        t1 = time.perf_counter()
        model, report = fit_with_towers(train, TOWERS, head=head, val_pairs=val, relevance="title_key",
                                        cache=cache)
        t_fit[label] = time.perf_counter() - t1
        z_img = model.project("image", model.embed("image", test["image"]))
        z_txt = model.project("text", model.embed("text", test["text"]))
        rows[label] = {r: scores(z_img, z_txt, test, r) for r in ("title_key", "id")}
        chosen[label] = {**report["best"], "n_trials": len(report["trials"])}
    result = {
        "dataset": "openclipart", "text_view": "title+keywords", "towers": TOWERS, "quick": quick,
        "n": {"train": len(train), "val": len(val), "test": len(test)},
        "relevance": {"title_key": "same normalised title", "id": "pair identity"},
        "rows": rows, "chosen_settings": chosen,
        "seconds": {"load": round(t_load, 1), **{f"fit {k}": round(v, 1) for k, v in t_fit.items()}},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average": list(os.getloadavg())},
    }
    out = out or Path(__file__).resolve().parent / "results" / "openclipart_cca.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return result


def print_table(result: dict) -> None:
    n = result["n"]
    print(f"openclipart, text = title + keywords; train {n['train']}, val {n['val']}, test {n['test']} pairs")
    for rel in ("title_key", "id"):
        print(f"\nrelevance: {result['relevance'][rel]}")
        print(f"{'row':<18}{'direction':<14}" + "".join(f"{m:>8}" for m in METRICS))
        for row, by_rel in result["rows"].items():
            for d in DIRECTIONS:
                vals = by_rel[rel][d]
                print(f"{row:<18}{d:<14}" + "".join(f"{vals[m]:>8.3f}" if m != "medR" else f"{vals[m]:>8.0f}"
                                                      for m in METRICS))
    for row, c in result["chosen_settings"].items():
        print(f"\n{row}: chosen on val ({c['metric']} mean of {', '.join(c['directions'])} = {c['score']:.3f}): "
              f"{json.dumps(c['head_params'])}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the first 1,500 SVG files")
    ap.add_argument("--no-cache", action="store_true", help="recompute the tower features")
    args = ap.parse_args(argv)
    print_table(run(quick=args.quick, cache=not args.no_cache))
    return 0


if __name__ == "__main__":
    sys.exit(main())
