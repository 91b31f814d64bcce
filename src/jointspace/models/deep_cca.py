r"""Deep CCA and DCCAE: a network per view trained for total canonical correlation.

Deep CCA (Andrew et al., ICML 2013) learns nonlinear maps :math:`f_1, f_2` (here MLPs)
whose outputs on a batch maximise the sum of their canonical correlations
(:func:`jointspace.objectives.cca_loss.cca_loss`, the chapter's CCA objective applied to the
network outputs); linear CCA on the outputs of the whole training set then gives the joint
space. DCCAE (Wang, Arora, Livescu and Bilmes, ICML 2015) adds a decoder per view and the
reconstruction errors :math:`\lambda (\lVert x - g_1(f_1(x))\rVert^2 / d_x + \lVert y - g_2(f_2(y))\rVert^2 / d_y)`,
averaged over the batch, to the loss, so the outputs also keep what is needed to rebuild each
input.  Each view's squared error is divided by its width (a mean over its elements, see
:func:`reconstruction_error`): the paper's plain squared norms would weigh a 1,280-d image
view 128 times more than a 10-d text view at the same ``recon_weight``.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from .._validation import check_bool, check_float, check_int, check_lr, check_matrix
from ..data.pairs import Pairs
from ..errors import InputError, MissingDependencyError, TrainingDiverged
from ._standardise import feature_scale
from .base import JointModel, register_model
from .cca import CanonicalCorrelation, check_weight, fit_or_keep


def reconstruction_error(rebuilt, x):
    r"""DCCAE's reconstruction term of one view: :math:`\frac{1}{m} \sum_i \lVert x_i - \hat x_i\rVert^2 / d`.

    Parameters
    ----------
    rebuilt, x : torch.Tensor, shape (m, d)
        Decoder outputs and the inputs they rebuild.

    Returns
    -------
    torch.Tensor, shape ()
        The squared error per element, averaged over the batch and the d features.
    """
    return ((rebuilt - x) ** 2).mean()


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a declared dependency of this model
        raise MissingDependencyError("deep CCA needs PyTorch: pip install 'torch==2.13.0'") from None
    return torch


def _mlp(torch, sizes):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


@register_model("dcca", "deep CCA: an MLP per view trained for total canonical correlation, then linear CCA")
class DeepCCA(BaseEstimator, JointModel):
    """Deep CCA with MLP towers on feature vectors.

    Parameters
    ----------
    n_components : int
        Canonical pairs kept by the final linear CCA (at most ``out_dim``).
    out_dim : int, optional
        Output dimension of each network (default: ``n_components``).
    hidden : sequence of int
        Hidden layer widths of each MLP.
    epochs : int
    batch_size : int
        Must be at least ``out_dim`` (``out_dim + 1`` with ``ridge=0``): smaller batches cannot
        estimate the covariances.
    lr, weight_decay : float
        AdamW settings (the trainer's optimiser; weight decay skips biases), at a constant
        rate.
    ridge : float
        Ridge on the batch auto-covariances in the loss, and canonical ridge of the final CCA.
    recon_weight : float
        Weight of the reconstruction error (0 for deep CCA; used by ``dccae``).
    weight : float
        Correlation weighting of the final CCA components (as in ``CanonicalCorrelation``),
        read at each encode: ``set_params(weight=...)`` on a fitted model acts at once.
    modalities : (str, str), optional
        The two modalities of the pairs to use; needed when the pairs have more than two.
    random_state : int
    run_dir : path, optional
        Where checkpoints and ``metrics.csv`` go (:func:`~jointspace.train.generic.fit_module`);
        ``fit(..., resume=run_dir)`` continues an interrupted fit exactly.
    progress : bool
        Show a progress bar while training.
    """

    _default_recon = 0.0

    def __init__(self, n_components: int = 10, out_dim: int | None = None, hidden=(256, 256), epochs: int = 50,
                 batch_size: int = 256, lr: float = 1e-3, weight_decay: float = 1e-5, ridge: float = 1e-3,
                 recon_weight: float | None = None, weight: float = 0.0, modalities=None, random_state: int = 0,
                 run_dir=None, progress: bool = False):
        self.n_components = n_components
        self.out_dim = out_dim
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.ridge = ridge
        self.recon_weight = recon_weight
        self.weight = weight
        self.modalities = modalities
        self.random_state = random_state
        self.run_dir = run_dir
        self.progress = progress

    # -- fitting ---------------------------------------------------------------------------
    def _read(self, X, y):
        if isinstance(X, Pairs):
            names = CanonicalCorrelation._pair_names(self, X)   # as linear CCA: three or more must be named
            x, yv = X[names[0]], X[names[1]]
        else:
            if y is None:
                raise InputError("y: deep CCA needs the second view y; call fit(X, y) or fit(pairs)")
            names, x, yv = ("x", "y"), X, y
        # float64 until centred: float32 keeps 7 digits, so features sharing an offset (1e7)
        # would lose their spread before the mean is taken off
        x = check_matrix(x, f"view {names[0]!r}", min_rows=2, dtype=np.float64)
        yv = check_matrix(yv, f"view {names[1]!r}", min_rows=2, dtype=np.float64, allow_1d=True)
        if x.shape[0] != yv.shape[0]:
            raise InputError(f"views: expected the same number of samples, got {names[0]}={x.shape[0]}, "
                             f"{names[1]}={yv.shape[0]}")
        return names, x, yv

    def _build(self, torch, dims):
        if isinstance(self.hidden, (str, bytes)) or not hasattr(self.hidden, "__iter__"):
            raise InputError(f"hidden: expected a list of hidden-layer widths, e.g. [256, 256], got {self.hidden!r}")
        hidden = [check_int(h, "hidden", low=1, high=16384) for h in self.hidden]
        out = self.out_dim_
        self.nets_ = [_mlp(torch, [d, *hidden, out]) for d in dims]
        self.decoders_ = [_mlp(torch, [out, *hidden[::-1], d]) for d in dims] if self._recon() > 0 else []

    def _recon(self) -> float:
        r = self._default_recon if self.recon_weight is None else self.recon_weight
        return check_float(r, "recon_weight", low=0.0)

    def fit(self, X, y=None, resume=None):
        """Train the two networks, then linear CCA on their outputs; returns self.

        A fit that fails (refused settings, diverged training) leaves the model as it was.

        Parameters
        ----------
        X : Pairs, or ndarray of shape (n, d1)
        y : ndarray of shape (n, d2), optional
            The second view, when ``X`` is an array.
        resume : path, optional
            A run folder (``run_dir`` of an interrupted fit) or one of its checkpoints, to
            continue exactly.
        """
        return fit_or_keep(self, self._fit, X, y, resume)

    def _fit(self, X, y=None, resume=None):
        torch = _torch()

        names, x, yv = self._read(X, y)
        k = check_int(self.n_components, "n_components", low=1)
        self.out_dim_ = check_int(self.out_dim if self.out_dim is not None else k, "out_dim", low=1)
        if k > self.out_dim_:
            raise InputError(f"n_components: expected at most out_dim = {self.out_dim_}, got {k}")
        bs = check_int(self.batch_size, "batch_size", low=1)
        ridge = check_float(self.ridge, "ridge", low=0.0)
        # the smallest batch whose covariances can be inverted (one more without a ridge)
        min_batch = max(2, self.out_dim_ + (ridge == 0))
        # the output size is n_components unless out_dim is given: name the one the user set
        size = "out_dim" if self.out_dim is not None else "n_components"
        if bs < min_batch:
            if size == "n_components":
                raise InputError(f"n_components: a batch of {bs} (batch_size) cannot estimate the covariances of "
                                 f"{k}-dimensional outputs with ridge {ridge}; expected n_components <= "
                                 f"{bs - (ridge == 0)} or batch_size >= {min_batch}, got {k}")
            raise InputError(f"batch_size: a batch of {bs} cannot estimate the covariances of "
                             f"{self.out_dim_}-dimensional outputs with ridge {ridge}; expected batch_size >= "
                             f"{min_batch}")
        n = x.shape[0]
        if n < self.out_dim_ + 1:
            raise InputError(f"{size}: expected fewer output dimensions than the {n} samples (the covariances "
                             f"need more samples than dimensions), got {self.out_dim_}")
        epochs = check_int(self.epochs, "epochs", low=0)   # 0: CCA of the untrained networks (a baseline)
        check_int(self.random_state, "random_state", low=0, high=2**32 - 1)
        check_weight(self.weight)   # refused before training, not by the final CCA after it
        recon = self._recon()
        self.x_mean_, self.x_scale_ = x.mean(0), feature_scale(x)
        self.y_mean_, self.y_scale_ = yv.mean(0), feature_scale(yv)
        xs = torch.from_numpy(np.ascontiguousarray((x - self.x_mean_) / self.x_scale_, dtype=np.float32))
        ys = torch.from_numpy(np.ascontiguousarray((yv - self.y_mean_) / self.y_scale_, dtype=np.float32))
        torch.manual_seed(self.random_state)
        self._build(torch, (x.shape[1], yv.shape[1]))
        lr = check_lr(self.lr)
        check_bool(self.progress, "progress")
        self.loss_curve_, self.train_result_ = [], None
        if epochs > 0:
            self.train_result_ = self._train(torch, xs, ys, ridge, recon, min_batch, lr, epochs, bs, resume)
            self.loss_curve_ = [row["loss"] for row in self.train_result_.history]
        hx, hy = self._outputs(0, x), self._outputs(1, yv)
        if not (np.isfinite(hx).all() and np.isfinite(hy).all()):
            raise TrainingDiverged(f"training diverged: the networks' outputs are not finite; lower lr (now {self.lr})")
        # The ridge c = r / (1 + r) of the canonical ridge matches the loss's S + r I.
        self.cca_ = CanonicalCorrelation(n_components=k, reg=ridge / (1 + ridge), weight=self.weight).fit(hx, hy)
        self.n_features_ = (x.shape[1], yv.shape[1])
        self.modalities_ = names
        return self

    def _train(self, torch, xs, ys, ridge: float, recon: float, min_batch: int, lr: float, epochs: int,
               batch_size: int, resume):
        """The networks (and decoders) trained by :func:`~jointspace.train.generic.fit_module`
        at the constant rate ``lr``, with checkpoints in ``run_dir``; a batch too small to
        estimate the covariances (an epoch's tail under ``min_batch`` rows) is never drawn."""
        from ..objectives.cca_loss import cca_loss
        from ..train.generic import FitConfig, fit_module

        def loss_fn(net, batch, step, epoch):
            hx, hy = net[0](batch["x"]), net[1](batch["y"])
            try:
                corr = cca_loss(hx, hy, ridge=ridge)
            except InputError:
                if bool(torch.isfinite(hx).all()) and bool(torch.isfinite(hy).all()):
                    raise
                raise TrainingDiverged(f"training diverged: the networks' outputs became NaN or inf in epoch "
                                       f"{epoch + 1}; lower lr (now {self.lr}) or raise ridge") from None
            logs = {"correlation": -float(corr.detach())}
            if recon == 0:
                return corr, logs
            rec = reconstruction_error(net[2](hx), batch["x"]) + reconstruction_error(net[3](hy), batch["y"])
            logs["reconstruction"] = float(rec.detach())
            return corr + recon * rec.to(corr.dtype), logs

        net = torch.nn.ModuleList([*self.nets_, *self.decoders_])
        config = FitConfig(epochs=epochs, batch_size=batch_size, min_batch=min_batch, lr=lr, min_lr=lr,
                           weight_decay=check_float(self.weight_decay, "weight_decay", low=0.0),
                           seed=int(self.random_state), progress=bool(self.progress))
        # get_config leaves out where and how the fit runs (run_dir, progress), as a checkpoint must
        return fit_module(net, loss_fn, {"x": xs, "y": ys}, config, run_dir=self.run_dir, resume=resume,
                          model_config={"model": type(self).__name__, **self.get_config()})

    def _outputs(self, which: int, arr: np.ndarray) -> np.ndarray:
        torch = _torch()
        mean, scale = (self.x_mean_, self.x_scale_) if which == 0 else (self.y_mean_, self.y_scale_)
        with torch.no_grad():
            z = torch.from_numpy(np.ascontiguousarray((arr - mean) / scale, dtype=np.float32))
            return self.nets_[which](z).double().numpy()

    def transform(self, X, y=None):
        """Canonical variables of the network outputs: u (n, k), or (u, v) when y is given."""
        self._check_fitted()
        u = self._encode(self.modalities_[0], X)
        return u if y is None else (u, self._encode(self.modalities_[1], y))

    def _encode(self, modality, items):
        which = self.modalities_.index(modality)
        arr = check_matrix(items, f"items ({modality})", dtype=np.float64, allow_1d=(which == 1))
        if arr.shape[1] != self.n_features_[which]:
            raise InputError(f"items ({modality}): expected {self.n_features_[which]} features, got {arr.shape[1]}")
        h = self._outputs(which, arr)
        # the current ``weight``, so that set_params(weight=...) after fit acts as in a saved copy
        return self.cca_.derive(weight=self.weight)._project(which, h, f"items ({modality})")

    # -- JointModel ------------------------------------------------------------------------
    def get_config(self) -> dict:
        params = self.get_params()
        params["hidden"] = list(params["hidden"])
        if isinstance(params["modalities"], tuple):
            params["modalities"] = list(params["modalities"])
        # where and how this fit ran, not what the model is: a loaded model fitted again would
        # otherwise write over that run folder
        params["run_dir"], params["progress"] = None, False
        return params

    def _get_extra(self) -> dict:
        return {"n_features": list(self.n_features_), "out_dim": self.out_dim_, "cca": self.cca_._get_extra(),
                "cca_params": self.cca_.get_config()}

    def _set_extra(self, extra: dict) -> None:
        torch = _torch()
        dims = extra["n_features"]
        if not (isinstance(dims, list) and len(dims) == 2
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims)):
            raise ValueError(f"n_features: expected the feature counts of the two views, got {dims!r}")
        self.n_features_ = tuple(dims)
        self.out_dim_ = extra["out_dim"]
        self._build(torch, self.n_features_)
        self.cca_ = CanonicalCorrelation(**extra["cca_params"])
        self.cca_._set_extra(extra["cca"])
        self.cca_.modalities_ = ("x", "y")

    def _get_state(self) -> dict:
        state = {"x_mean": self.x_mean_, "x_scale": self.x_scale_, "y_mean": self.y_mean_, "y_scale": self.y_scale_}
        for i, net in enumerate((*self.nets_, *self.decoders_)):
            state.update({f"net{i}.{k}": v.detach().cpu().numpy() for k, v in net.state_dict().items()})
        state.update({f"cca.{k}": v for k, v in self.cca_._get_state().items()})
        return state

    def _set_state(self, state) -> None:
        torch = _torch()
        self.x_mean_, self.x_scale_ = state["x_mean"], state["x_scale"]
        self.y_mean_, self.y_scale_ = state["y_mean"], state["y_scale"]
        for i, net in enumerate((*self.nets_, *self.decoders_)):
            net.load_state_dict({k.split(".", 1)[1]: torch.from_numpy(v) for k, v in state.items()
                                 if k.startswith(f"net{i}.")})
        self.cca_._set_state({k[4:]: v for k, v in state.items() if k.startswith("cca.")})


@register_model("dccae", "deep CCA with autoencoder reconstruction (DCCAE)")
class DCCAE(DeepCCA):
    """Deep canonically correlated autoencoders: :class:`DeepCCA` with ``recon_weight`` 1 by default."""

    _default_recon = 1.0
