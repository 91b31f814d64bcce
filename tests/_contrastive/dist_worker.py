"""Worker of the two-process test: one gradient step and a short training run under gloo."""

import numpy as np
import torch


def batch():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 6)).astype(np.float32)
    y = (x @ rng.normal(size=(6, 5)) + 0.5 * rng.normal(size=(32, 5))).astype(np.float32)
    return {"a": x, "b": y}


def make_net():
    from jointspace.models.dual_encoder import DualEncoderNet

    torch.manual_seed(0)
    return DualEncoderNet({"a": 6, "b": 5}, dim=4, head="mlp", hidden=8)


def other_losses(rank, size):
    """Loss and gradients of one step with the label-aware loss, and with three modalities
    where some samples lack one (masks), over the global batch of 32."""
    from jointspace.models.dual_encoder import DualEncoderNet
    from jointspace.train import TrainConfig
    from jointspace.train.step import train_step

    data = batch()
    rng = np.random.default_rng(2)
    data["c"] = (data["a"][:, :4] + 0.3 * rng.normal(size=(32, 4))).astype(np.float32)
    labels = np.array([f"title {i % 5}" for i in range(32)], dtype=object)  # duplicates across ranks
    masks = {"a": np.ones(32, bool), "b": np.arange(32) % 3 != 0, "c": np.arange(32) % 4 != 1}
    n_local = 32 // size
    sl = slice(rank * n_local, (rank + 1) * n_local)
    out = {}
    local_masks = {m: torch.from_numpy(v[sl]) for m, v in masks.items()}
    for name, cfg, mods, lab, msk in (
            ("supervised", TrainConfig(batch_size=32, loss="supervised"), ("a", "b"), labels[sl], None),
            ("masked", TrainConfig(batch_size=32), ("a", "b", "c"), None, local_masks),
            # accumulation across processes: 2 micro-batches per rank, still the global batch's negatives
            ("accum.clip", TrainConfig(batch_size=32, accum_steps=2), ("a", "b"), None, None),
            ("accum.supervised", TrainConfig(batch_size=32, loss="supervised", accum_steps=2), ("a", "b"),
             labels[sl], None),
            ("accum.masked", TrainConfig(batch_size=32, accum_steps=2), ("a", "b", "c"), None, local_masks)):
        torch.manual_seed(0)
        net = DualEncoderNet({m: data[m].shape[1] for m in mods}, dim=4, head="mlp", hidden=8)
        local = {m: torch.from_numpy(data[m][sl]) for m in mods}
        loss = train_step(cfg, net, local, lab, msk, False)
        out[f"{name}.loss"] = torch.tensor([loss])
        out.update({f"{name}.grad.{k}": p.grad.detach().clone() for k, p in net.named_parameters()
                    if p.grad is not None})
    return out


def step_and_fit(out_dir):
    """Loss and gradients of one step over the whole batch, then weights after a short fit."""
    from safetensors.torch import save_file

    from jointspace.train import TrainConfig, fit_dual_encoder
    from jointspace.train import distributed as dist
    from jointspace.train.step import train_step

    rank, size = dist.world()
    data = batch()
    n_local = 32 // size
    local = {m: torch.from_numpy(v[rank * n_local:(rank + 1) * n_local]) for m, v in data.items()}
    net = make_net()
    cfg = TrainConfig(batch_size=32)
    loss = train_step(cfg, net, local, None, None, False)
    grads = {f"grad.{k}": p.grad.detach().clone() for k, p in net.named_parameters() if p.grad is not None}
    net = make_net()
    cfg = TrainConfig(epochs=3, batch_size=16, lr=1e-2, warmup=1, seed=0)
    fit_dual_encoder(net, data, cfg)
    weights = {f"final.{k}": v.contiguous() for k, v in net.state_dict().items()}
    others = other_losses(rank, size)
    if rank == 0:
        save_file({"loss": torch.tensor([loss]), **grads, **weights, **others},
                  f"{out_dir}/rank0_of_{size}.safetensors")


def worker(rank, size, init_file, out_dir):
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=size)
    from jointspace.train import distributed as dist

    try:
        step_and_fit(out_dir)
    except BaseException:
        dist.leave()
        raise
    dist.finish()


if __name__ == "__main__":
    import sys

    worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
