"""A tiny training run used by the resume test (run as a script or through runpy)."""

import sys
import time

import numpy as np
import torch


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6)).astype(np.float32)
    y = (x @ rng.normal(size=(6, 5)) + 0.3 * rng.normal(size=(80, 5))).astype(np.float32)
    return {"a": x[:64], "b": y[:64]}, {"a": x[64:], "b": y[64:]}


def main(run_dir, resume=None, sleep=0.0, epochs=6):
    torch.set_num_threads(1)
    from safetensors.torch import save_file

    from jointspace.models.dual_encoder import DualEncoderNet
    from jointspace.train import TrainConfig, fit_dual_encoder

    train, val = data()
    torch.manual_seed(0)
    net = DualEncoderNet({"a": 6, "b": 5}, dim=4, head="mlp", hidden=8, dropout=0.2)
    cfg = TrainConfig(epochs=epochs, batch_size=16, lr=2e-2, warmup=2, checkpoint_every=3, seed=0)
    cb = (lambda step, loss: time.sleep(sleep)) if sleep else None
    fit_dual_encoder(net, train, cfg, val=val, run_dir=run_dir, resume=resume, model_config={"net": "tiny"},
                     step_callback=cb)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, f"{run_dir}/final.safetensors")
    return net


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] or None, float(sys.argv[3]))
