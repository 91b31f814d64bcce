"""Spoken words: audio->text retrieval with CCA over MFCC statistics and MiniLM, unseen accents.

The dataset's splits hold out accents: test voices are never heard in training.  Relevance
is the word (label): an audio clip's query succeeds at rank 1 when the nearest text is its
word.  CCA settings are chosen on the validation accent by
:func:`jointspace.models.towered.fit_with_towers`.  Writes
``benchmarks/results/spoken_words_cca.json``.

    python benchmarks/bench_spoken_words_cca.py
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

TOWERS = {"audio": "mfcc", "text": "minilm"}
METRICS = ("R@1", "R@5", "R@10", "mAP", "medR")
DIRECTIONS = ("audio->text", "text->audio")


def run(cache=True) -> dict:
    t0 = time.perf_counter()
    train, val, test = (load_dataset("spoken-words", s) for s in ("train", "val", "test"))
    t_load = time.perf_counter() - t0
    keys = test.relevance_keys("label")
    rng = np.random.default_rng(0)
    rows = {"random": evaluate_embeddings({"audio": rng.normal(size=(len(test), 16)),
                                           "text": rng.normal(size=(len(test), 16))}, keys,
                                          directions=list(DIRECTIONS))}
    chosen = {}
    grid = {"pca": [None, 32, 64], "n_components": [4, 8, 12, 16, 19], "reg": [1e-3, 1e-2, 0.1, 0.3]}
    for label, head in (("CCA", "cca"), ("regularised CCA", "rcca")):
        model, report = fit_with_towers(train, TOWERS, head=head, val_pairs=val, relevance="label", cache=cache,
                                        directions=[("audio", "text")], grid=grid, k=1)
        z = {m: model.project(m, model.embed(m, test[m])) for m in ("audio", "text")}
        rows[label] = evaluate_embeddings(z, keys, directions=list(DIRECTIONS))
        chosen[label] = report["best"]
    result = {"dataset": "spoken-words", "towers": TOWERS,
              "n": {"train": len(train), "val": len(val), "test": len(test)},
              "test_accents": sorted(set(test.metadata["accent"])),
              "rows": {r: {d: {m: float(v[f"{d}/{m}"]) for m in METRICS} for d in DIRECTIONS}
                       for r, v in rows.items()},
              "chosen_settings": chosen, "seconds_load": round(t_load, 1),
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "load_average": list(os.getloadavg())}}
    out = Path(__file__).resolve().parent / "results" / "spoken_words_cca.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-cache", action="store_true")
    args = ap.parse_args(argv)
    r = run(cache=not args.no_cache)
    n = r["n"]
    print(f"spoken-words, unseen accents {', '.join(r['test_accents'])}; train {n['train']}, val {n['val']}, "
          f"test {n['test']}")
    print(f"{'row':<18}{'direction':<14}" + "".join(f"{m:>8}" for m in METRICS))
    for row, by_dir in r["rows"].items():
        for d in DIRECTIONS:
            print(f"{row:<18}{d:<14}" + "".join(f"{by_dir[d][m]:>8.3f}" for m in METRICS))
    for row, c in r["chosen_settings"].items():
        print(f"{row}: {json.dumps(c['head_params'])} (val {c['metric']} {c['score']:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
