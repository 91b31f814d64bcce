"""Contrastive training speed and memory: our CLIP loss against an independent reference,
head-only training throughput over cached features, and its peak resident memory.

* loss forward + backward at batch 1,024 and 4,096, d = 512: ``jointspace`` (fused closed-form
  backward) vs the formulation open_clip uses (``F.cross_entropy`` on the logits and on their
  transpose, autograd backward), timed in alternating rounds after a warm-up; medians of the
  repeats and the ratio ours / reference.
* head-only training throughput (pairs/s): linear heads 1280 -> d and 384 -> d (the shapes of
  EfficientNet-Lite0 and MiniLM features) trained by ``fit_dual_encoder`` at batch 4,096.
  Every throughput counts the steps after the first (see :func:`steady_rate`).
* peak resident memory (RSS) of that training, measured in a fresh child process.
* full-tower training throughput at batch 64: a trainable CNN over 64 x 64 RGB images and a
  bag-of-word-pieces text tower, trained end to end (fp32 and bf16 autocast); and the
  pretrained towers with their top blocks unfrozen (EfficientNet-Lite0 at 224 x 224, last two
  blocks; MiniLM, last layer).

With ``--openclipart`` it instead trains the contrastive heads over the frozen towers on
OpenClipart (features from the embedding cache; the first run embeds every drawing) and prints
the test-split retrieval rows and the Fashion-MNIST zero-shot rows
(``benchmarks/results/contrastive_openclipart.json``).

    python benchmarks/bench_contrastive.py [--quick] [--repeats 5] [--threads 1] [--openclipart]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(SRC))


sys.path.insert(0, str(HERE))
from _util import machine, positive_int, run_json_child, save, side_by_side  # noqa: E402


def steady_rate(t0: float, stamps: list, batch: int) -> dict:
    """Training throughput without the first step: ``stamps`` are the times at the end of each
    optimiser step of one run started at ``t0``, every step a batch of ``batch`` pairs.  The
    first step pays the one-time costs (kernel selection, allocator, lazy modules: about four
    steps' time for the small CNN), so pairs/s counts the steps after it; the first step's own
    seconds are kept beside it."""
    timed = len(stamps) - 1
    return {"pairs_per_s": timed * batch / (stamps[-1] - stamps[0]) if timed > 0 else float("nan"),
            "timed_steps": timed, "first_step_s": stamps[0] - t0 if stamps else float("nan")}


def bench_loss(batch: int, dim: int, repeats: int) -> dict:
    import torch
    import torch.nn.functional as F

    from jointspace.objectives.contrastive import clip_loss, logit_scale

    g = torch.Generator().manual_seed(0)
    t = F.normalize(torch.randn(batch, dim, generator=g), dim=1).requires_grad_()
    a = F.normalize(torch.randn(batch, dim, generator=g), dim=1).requires_grad_()
    log_scale = torch.tensor(2.659, requires_grad=True)
    labels = torch.arange(batch)

    def reference():  # open_clip's ClipLoss, single process
        scale = log_scale.exp()
        logits_per_text = scale * t @ a.T
        logits_per_image = logits_per_text.T
        loss = 0.5 * (F.cross_entropy(logits_per_text, labels) + F.cross_entropy(logits_per_image, labels))
        loss.backward()
        return loss

    def ours():
        loss = clip_loss(t, a, logit_scale(log_scale))
        loss.backward()
        return loss

    for p in (t, a, log_scale):
        p.grad = None
    ref_val = float(reference().detach())
    ref_grad = t.grad.clone()
    for p in (t, a, log_scale):
        p.grad = None
    our_val = float(ours().detach())
    agree = abs(ref_val - our_val) <= 1e-4 * abs(ref_val) and torch.allclose(t.grad, ref_grad, rtol=1e-3, atol=1e-7)
    timed = side_by_side({"reference": reference, "ours": ours}, repeats=repeats)   # alternating rounds
    r, o = timed["reference"], timed["ours"]
    return {"batch": batch, "dim": dim, "reference_median_s": r["median_s"], "ours_median_s": o["median_s"],
            "ratio_ours_over_reference": o["median_s"] / r["median_s"], "values_agree": bool(agree),
            "reference_times_s": r["times_s"], "ours_times_s": o["times_s"]}


HEAD_ONLY = r"""
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads({threads})
sys.path.insert(0, {src!r})
sys.path.insert(0, {here!r})
from bench_contrastive import steady_rate
from jointspace.models.dual_encoder import DualEncoderNet
from jointspace.train import TrainConfig, fit_dual_encoder
n, batch, dim, epochs = {n}, {batch}, {dim}, {epochs}
rng = np.random.default_rng(0)
z = rng.normal(size=(n, 32)).astype(np.float32)
image = z @ rng.normal(size=(32, 1280)).astype(np.float32) + rng.normal(size=(n, 1280)).astype(np.float32)
text = z @ rng.normal(size=(32, 384)).astype(np.float32) + rng.normal(size=(n, 384)).astype(np.float32)
torch.manual_seed(0)
net = DualEncoderNet({{"image": 1280, "text": 384}}, dim=dim)
cfg = TrainConfig(epochs=epochs, batch_size=batch, lr=1e-3, precision={precision!r})
stamps = []
t0 = time.perf_counter()
res = fit_dual_encoder(net, {{"image": image, "text": text}}, cfg,
                       step_callback=lambda step, loss: stamps.append(time.perf_counter()))
wall = time.perf_counter() - t0
print(json.dumps({{**steady_rate(t0, stamps, batch), "steps": res.steps, "wall_s": wall,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def bench_head_only(n: int, batch: int, dim: int, epochs: int, threads: int, precision: str) -> dict:
    code = HEAD_ONLY.format(threads=threads, src=str(SRC), here=str(HERE), n=n, batch=batch, dim=dim,
                            epochs=epochs, precision=precision)
    res = run_json_child([sys.executable, "-c", code])
    res.update({"n": n, "batch": batch, "dim": dim, "precision": precision, "threads": threads})
    return res


FULL_TOWER = r"""
import json, sys, time
import numpy as np, torch
torch.set_num_threads({threads})
sys.path.insert(0, {src!r})
sys.path.insert(0, {here!r})
from bench_contrastive import steady_rate
from jointspace.models.dual_encoder import DualEncoderNet
from jointspace.train import TrainConfig, fit_dual_encoder
n, batch, size = {n}, 64, {size}
rng = np.random.default_rng(0)
images = rng.integers(0, 256, size=(n, size, size, 3)).astype(np.uint8)
words = ["red", "bird", "tree", "house", "car", "star", "flower", "cat", "dog", "sun", "boat", "music"]
texts = [" ".join(rng.choice(words, size=6)) for _ in range(n)]
towers = {towers}
torch.manual_seed(0)
net = DualEncoderNet({in_dims}, dim=256, towers=towers)
net({{"image": images[:2], "text": texts[:2]}})  # tokenizer and modules loaded before timing
cfg = TrainConfig(epochs=1, batch_size=batch, lr=1e-3, precision={precision!r})
stamps = []
t0 = time.perf_counter()
res = fit_dual_encoder(net, {{"image": images, "text": texts}}, cfg,
                       step_callback=lambda step, loss: stamps.append(time.perf_counter()))
wall = time.perf_counter() - t0
print(json.dumps({{**steady_rate(t0, stamps, batch), "steps": res.steps, "wall_s": wall}}))
"""


#: the two end-to-end set-ups: small towers from scratch, and the pretrained towers with their
#: top blocks unfrozen (EfficientNet-Lite0's last 2 MBConv blocks at 224 x 224, MiniLM's last layer)
FULL_TOWERS = {
    "scratch": ({"image": {"name": "cnn", "config": {"image_size": 64, "out_dim": 256}},
                 "text": {"name": "bow", "config": {"out_dim": 256}}}, {"image": 256, "text": 256}, 64),
    "pretrained-top": ({"image": {"name": "efficientnet-lite0-tunable", "config": {"trainable_blocks": 2}},
                        "text": {"name": "minilm-tunable", "config": {"trainable_layers": 1}}},
                       {"image": 1280, "text": 384}, 224),
}


def bench_full_tower(n: int, threads: int, precision: str, setup: str = "scratch") -> dict:
    towers, in_dims, size = FULL_TOWERS[setup]
    code = FULL_TOWER.format(threads=threads, src=str(SRC), here=str(HERE), n=n, precision=precision,
                             towers=repr(towers), in_dims=repr(in_dims), size=size)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    res = run_json_child([sys.executable, "-c", code], env=env)
    res.update({"n": n, "batch": 64, "precision": precision, "threads": threads, "setup": setup})
    return res


def run_openclipart(threads: int, zeroshot_limit: int) -> int:
    import torch

    from jointspace.bench._contrastive import fit_openclipart, openclipart_contrastive_rows
    from jointspace.bench._contrastive import openclipart_features
    from jointspace.bench.zeroshot import bench_zeroshot

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    data = openclipart_features()
    print(f"OpenClipart features: train {len(data['train'])}, val {len(data['val'])}, test {len(data['test'])} "
          f"pairs ({time.perf_counter() - t0:.0f} s)")
    seeds = (0, 1, 2, 3, 4)
    rows = openclipart_contrastive_rows(data=data, seeds=seeds)
    cols = ["text->image/R@10", "text->image/mAP", "image->text/R@10", "image->text/mAP"]
    print(f"\n{'method':<42}" + "".join(f"{c:>18}" for c in cols) + f"{'fit s':>8}")
    for r in rows:
        print(f"{r['method']:<42}" + "".join(f"{r[c]:>18.3f}" for c in cols) + f"{r['fit_s']:>8.0f}")
    variant = "clip (MLP heads)"
    model = fit_openclipart(variant, data=data)
    zs = bench_zeroshot(limit=zeroshot_limit, model=model)
    print(f"\nFashion-MNIST zero-shot (n = {zs[0]['n']}), joint space trained on OpenClipart only ({variant})")
    for r in zs:
        print(f"{r['method']:<60}{r['top1']:>8.3f}{r['top5']:>8.3f}")
    path = HERE / "results" / "contrastive_openclipart.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"openclipart": rows, "zeroshot": zs, "load_average": list(os.getloadavg()),
                                "machine": machine(), "threads": threads, "zeroshot_limit": zeroshot_limit,
                                "seeds": list(seeds), "zeroshot_variant": variant}, indent=2, default=float))
    print(f"\nwrote {path}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=positive_int, default=5)
    ap.add_argument("--threads", type=positive_int, default=1,
                    help="torch threads (default 1: stable timings on a shared machine)")
    ap.add_argument("--quick", action="store_true", help="batch 1,024 only, fewer pairs")
    ap.add_argument("--openclipart", action="store_true",
                    help="OpenClipart retrieval rows and Fashion-MNIST zero-shot instead of the speed runs")
    ap.add_argument("--zeroshot-limit", type=positive_int, default=2000,
                    help="Fashion-MNIST test images (default 2000)")
    args = ap.parse_args(argv)
    if args.openclipart:
        return run_openclipart(args.threads, args.zeroshot_limit)
    import torch

    torch.set_num_threads(args.threads)
    batches = (1024,) if args.quick else (1024, 4096)
    results = {"threads": args.threads, "cpus": os.cpu_count(), "quick": args.quick, "repeats": args.repeats,
               "machine": machine(), "loss": [], "head_only": [], "full_tower": []}
    print(f"CLIP loss forward + backward, d = 512, {args.threads} thread(s), medians of {args.repeats}")
    print(f"{'batch':>6} {'reference s':>12} {'ours s':>8} {'ours/ref':>9} {'agree':>6}")
    for b in batches:
        r = bench_loss(b, 512, args.repeats)
        results["loss"].append(r)
        print(f"{b:>6} {r['reference_median_s']:>12.4f} {r['ours_median_s']:>8.4f} "
              f"{r['ratio_ours_over_reference']:>9.2f} {str(r['values_agree']):>6}")
    n = 16384 if args.quick else 32768
    print(f"\nhead-only training over cached features (1280-d + 384-d -> 256), n = {n}, batch 4,096")
    print(f"{'precision':>9} {'pairs/s':>10} {'steps':>6} {'first step s':>13} {'peak RSS MiB':>13}")
    for precision in ("fp32", "bf16"):
        h = bench_head_only(n, 4096, 256, 2 if args.quick else 3, args.threads, precision)
        results["head_only"].append(h)
        print(f"{precision:>9} {h['pairs_per_s']:>10,.0f} {h['steps']:>6} {h['first_step_s']:>13.2f} "
              f"{h['peak_rss_mib']:>13,.0f}")
    for setup, title, n_full in (
            ("scratch", "CNN 64x64 images + bag-of-word-pieces texts", 640 if args.quick else 1280),
            ("pretrained-top", "EfficientNet-Lite0 224x224, top 2 blocks + MiniLM top layer unfrozen",
             128 if args.quick else 256)):
        print(f"\nfull-tower training ({title}), n = {n_full}, batch 64")
        print(f"{'precision':>9} {'pairs/s':>10} {'steps':>6} {'first step s':>13}")
        for precision in ("fp32", "bf16"):
            f = bench_full_tower(n_full, args.threads, precision, setup)
            results["full_tower"].append(f)
            print(f"{precision:>9} {f['pairs_per_s']:>10,.0f} {f['steps']:>6} {f['first_step_s']:>13.2f}")
    results["load_average"] = list(os.getloadavg())
    print(f"\nwrote {save('contrastive', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
