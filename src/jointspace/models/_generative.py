"""What the multimodal autoencoders and VAEs share: reading ``Pairs`` through codecs,
training with :func:`jointspace.train.generic.fit_module`, saving and loading; inference
from any subset of modalities and generation come from
:class:`~jointspace.models._generative_inference.GenerativeInference`.

A subclass says how the joint posterior is formed from the modalities present
(``_components``) and what loss trains the networks (``_loss``).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from .._validation import check_choice, check_float, check_int, check_lr, check_modality_names
from ..data.pairs import Pairs
from ..errors import InputError, NotFittedError
from ..objectives.elbo import LIKELIHOODS, log_likelihood
from ._codecs import codec_for, codec_from_dict
from ._generative_inference import GenerativeInference
from ._generative_nets import GenerativeNet
from .base import JointModel, fit_or_keep

#: the tower used for raw items of a modality (audio files -> MFCC statistics)
DEFAULT_TOWERS = {"audio": "mfcc"}
WEIGHTINGS = ("balanced", "none")
#: with ``epochs=None``, train for about this many optimiser steps (whole epochs, 5 to 300):
#: a small dataset then gets as many updates as a large one
AUTO_STEPS = 2000
#: floor of a Gaussian / Laplace decoder's learnt log-scale, log(1e-3) in standardised units: a
#: dimension that never varies in training would otherwise shrink its scale without end and
#: give an unbounded negative log-likelihood to the first test value that differs
LOG_SCALE_MIN = float(np.log(1e-3))


def auto_epochs(n_rows: int, batch_size: int) -> int:
    """The epochs that give about :data:`AUTO_STEPS` steps over ``n_rows`` pairs (5 to 300)."""
    steps = max(1, math.ceil(n_rows / batch_size))
    return int(min(300, max(5, math.ceil(AUTO_STEPS / steps))))


def nonempty_subsets(names) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``names``, smallest first, in the order of ``names``."""
    names = list(names)
    return [s for k in range(1, len(names) + 1) for s in itertools.combinations(names, k)]


class GenerativeModel(GenerativeInference, JointModel):
    """Base class of the multimodal (variational) autoencoders.

    Subclasses define ``variational`` (bool), ``_components(net, experts, names)`` and
    ``_loss(net, batch, epoch)``; the constructor arguments are documented on them.
    """

    variational = True
    adversarial = False

    def __init__(self, latent_dim: int = 32, hidden=(512, 512), likelihoods=None, likelihood_weights="balanced",
                 epochs: int | None = None, batch_size: int = 256, lr: float = 1e-3, weight_decay: float = 0.0,
                 patience: int | None = None, val_fraction: float = 0.1, towers=None, modalities=None,
                 seed: int = 0, run_dir=None, progress: bool = False, device: str = "cpu"):
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.likelihoods = likelihoods
        self.likelihood_weights = likelihood_weights
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.val_fraction = val_fraction
        self.towers = towers
        self.modalities = modalities
        self.seed = seed
        self.run_dir = run_dir
        self.progress = progress
        self.device = device

    def raw_kind(self, modality: str, *, match_dims: bool = True) -> str | None:
        """``"text"`` for a modality read as words, the tower's kind (e.g. ``"audio"``) for one
        read through a fixed tower, None for pixel arrays and feature vectors (see
        :meth:`JointModel.raw_kind`)."""
        codec = getattr(self, "codecs_", {}).get(modality)
        if codec is None or codec.kind == "pixels":
            return None
        if codec.kind == "tokens":
            return "text"
        if codec.tower is None:
            return None
        from ..towers.base import create_tower

        return create_tower(codec.tower).modality

    # -- settings ---------------------------------------------------------------------------
    def get_config(self) -> dict:
        from inspect import signature

        out = {}
        for name in signature(type(self).__init__).parameters:
            if name == "self":
                continue
            v = getattr(self, name)
            out[name] = list(v) if isinstance(v, tuple) else v
        # where and how this fit ran, not what the model is: a loaded model fitted again would
        # otherwise write over that run folder (resolved against another working folder)
        out["run_dir"], out["progress"] = None, False
        return out

    def _check_settings(self) -> None:
        check_int(self.latent_dim, "latent_dim", low=1, high=4096)
        if isinstance(self.hidden, (str, bytes)) or not hasattr(self.hidden, "__iter__"):
            raise InputError(f"hidden: expected a list of hidden-layer widths, e.g. [512, 512], got {self.hidden!r}")
        for h in self.hidden:
            check_int(h, "hidden", low=1, high=16384)
        if self.epochs is not None:
            check_int(self.epochs, "epochs", low=1)
        check_int(self.batch_size, "batch_size", low=1)
        check_lr(self.lr)
        check_float(self.weight_decay, "weight_decay", low=0.0)
        check_float(self.val_fraction, "val_fraction", low=0.0, high=0.9)
        if self.patience is not None:
            check_int(self.patience, "patience", low=1)
        if self.towers is not None and not isinstance(self.towers, dict):
            raise InputError(f"towers: expected a dict of modality -> tower name, got {self.towers!r}")
        mods = self.modalities
        if mods is not None:
            if not isinstance(mods, (list, tuple)):
                raise InputError(f"modalities: expected a list of modality names, e.g. ['image', 'text'], got {mods!r}")
            check_modality_names(mods)   # a repeat would leave fewer modalities than given
        if self.likelihoods is not None and not isinstance(self.likelihoods, dict):
            raise InputError(f"likelihoods: expected a dict of modality -> one of {', '.join(LIKELIHOODS)}, "
                             f"got {self.likelihoods!r}")
        w = self.likelihood_weights
        if not isinstance(w, dict):
            check_choice(w, "likelihood_weights", WEIGHTINGS)

    # -- reading data ------------------------------------------------------------------------
    def _fit_codecs(self, pairs: Pairs) -> None:
        names = check_modality_names(self.modalities) if self.modalities is not None else pairs.modalities
        unknown = [m for m in names if m not in pairs.modalities]
        if unknown:
            raise InputError(f"modalities: the pairs have {', '.join(pairs.modalities)}; no {', '.join(unknown)}")
        if len(names) < 2:
            raise InputError(f"modalities: a joint model needs at least two modalities, got {list(names)}")
        bad = [m for m in (self.towers or {}) if m not in names]
        if bad:   # a misspelt name would leave its modality to the default tower without a word
            raise InputError(f"towers: no modality {', '.join(map(repr, bad))}; the model has {', '.join(names)}")
        from ..towers.base import list_towers

        for m, t in (self.towers or {}).items():
            if not isinstance(t, str) or t not in list_towers():
                raise InputError(f"towers[{m!r}]: unknown tower {t!r}; known: {', '.join(list_towers())}")
        towers = {**DEFAULT_TOWERS, **(self.towers or {})}
        self.codecs_ = {}
        for m in names:
            codec = codec_for(pairs[m], m, towers.get(m) if not isinstance(pairs[m], np.ndarray) else None,
                              f"pairs[{m!r}]")
            self.codecs_[m] = codec.fit(pairs[m], f"pairs[{m!r}]")
        lik = dict(self.likelihoods or {})
        bad = [m for m in lik if m not in names]
        if bad:
            raise InputError(f"likelihoods: no modality {', '.join(map(repr, bad))}; the model has {', '.join(names)}")
        self.likelihoods_ = {}
        for m in names:
            kind = lik.get(m, self.codecs_[m].default_likelihood)
            check_choice(kind, f"likelihoods[{m!r}]", LIKELIHOODS)
            if (kind == "categorical") != (self.codecs_[m].kind == "tokens"):
                raise InputError(f"likelihoods[{m!r}]: {kind!r} does not fit {self.codecs_[m].kind}; texts are "
                                 "categorical, pixels bernoulli/gaussian/laplace, features gaussian/laplace")
            if kind == "bernoulli" and self.codecs_[m].kind != "pixels":
                raise InputError(f"likelihoods[{m!r}]: bernoulli needs values in [0, 1] (pixels); "
                                 f"{m} holds standardised features: use gaussian or laplace")
            self.likelihoods_[m] = kind
        self.weights_ = self._likelihood_weights(names)

    def _likelihood_weights(self, names) -> dict:
        w = self.likelihood_weights
        if isinstance(w, dict):
            bad = [m for m in w if m not in names]
            if bad:
                raise InputError(f"likelihood_weights: no modality {', '.join(map(repr, bad))}")
            return {m: check_float(w.get(m, 1.0), f"likelihood_weights[{m!r}]", low=0.0) for m in names}
        if w == "none":
            return {m: 1.0 for m in names}
        # every modality weighs as much as the largest one (Sutter et al. 2021's rescaling)
        largest = max(self.codecs_[m].dim for m in names)
        return {m: largest / self.codecs_[m].dim for m in names}

    def _to_tensors(self, items: dict, where: str = "items") -> dict:
        out = {}
        for m, v in items.items():
            if m not in self.codecs_:
                raise InputError(f"{where}: this model knows the modalities {', '.join(self.codecs_)}; got {m!r}")
            arr = self.codecs_[m].encode_items(v, f"{where}[{m!r}]")
            out[m] = torch.from_numpy(arr)
        return out

    def _specs(self) -> dict:
        return {m: {"dim": c.dim, "vocab": len(c.vocab) if c.kind == "tokens" else None,
                    "likelihood": self.likelihoods_[m]} for m, c in self.codecs_.items()}

    def _fitted_prior_components(self) -> int:
        """Components of the latent mixture fitted after training (0: none, sample N(0, I))."""
        return 0

    def _build_net(self) -> GenerativeNet:
        k = getattr(self, "prior_k_", self._fitted_prior_components())
        return GenerativeNet(self._specs(), int(self.latent_dim), [int(h) for h in self.hidden],
                             variational=self.variational, discriminator=self.adversarial, prior_components=k,
                             private_dim=self._private_dim(), regularizers=self._regularizer_specs())

    def _private_dim(self) -> int:
        """Size of each modality's private latent (0: none; see ``MultimodalVAE``)."""
        return 0

    def _regularizer_specs(self) -> list:
        return []

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, pairs: Pairs, val: Pairs | None = None, resume=None):
        """Train on ``pairs`` (every modality present in every row); returns self.

        Parameters
        ----------
        pairs : Pairs
            Aligned items of at least two modalities.
        val : Pairs, optional
            Held-out pairs whose loss picks the best epoch (and stops early with
            ``patience``); by default ``val_fraction`` of ``pairs`` is held out.
        resume : path, optional
            A run folder (``run_dir`` of an interrupted fit) to continue exactly.
        """
        return fit_or_keep(self, self._fit, pairs, val, resume)

    def _fit(self, pairs, val, resume):
        """What :meth:`fit` runs (restoring the model if it raises)."""
        from ..train.generic import FitConfig, fit_module

        if not isinstance(pairs, Pairs):
            raise InputError(f"pairs: expected a Pairs object, got {type(pairs).__name__}")
        if val is not None and not isinstance(val, Pairs):
            raise InputError(f"val: expected a Pairs object (or None), got {type(val).__name__}")
        if len(pairs) < 2:
            raise InputError(f"pairs: expected at least 2 pairs to learn from, got {len(pairs)}")
        self._check_settings()
        check_int(self.seed, "seed", low=0, high=2**32 - 1)
        self._check_objective_settings()
        train_pairs, val_pairs = pairs, val
        if val is None and self.val_fraction > 0 and len(pairs) >= 20:
            rng = np.random.default_rng(self.seed)
            order = rng.permutation(len(pairs))
            n_val = max(1, int(round(self.val_fraction * len(pairs))))
            val_pairs, train_pairs = pairs.subset(np.sort(order[:n_val])), pairs.subset(np.sort(order[n_val:]))
        self._fit_codecs(train_pairs)
        names = tuple(self.codecs_)
        train = self._to_tensors({m: train_pairs[m] for m in names}, "pairs")
        val_t = None
        if val_pairs is not None:
            missing = [m for m in names if m not in val_pairs.modalities]
            if missing:
                raise InputError(f"val: expected the modalities {', '.join(names)}; no {', '.join(missing)}")
            val_t = self._to_tensors({m: val_pairs[m] for m in names}, "val")
        torch.manual_seed(int(self.seed))
        self.__dict__.pop("prior_k_", None)       # a refit sizes its prior afresh
        self.net_ = self._build_net()
        n_rows = len(next(iter(train.values())))
        self.epochs_ = int(self.epochs) if self.epochs is not None else auto_epochs(n_rows, int(self.batch_size))
        config = FitConfig(epochs=self.epochs_, batch_size=int(self.batch_size), lr=float(self.lr),
                           weight_decay=float(self.weight_decay), seed=int(self.seed), patience=self.patience,
                           progress=bool(self.progress), device=self.device)
        model_config = {"model": self.model_name, **{k: v for k, v in self.get_config().items()
                                                      if k not in ("run_dir", "progress", "device")},
                        "codecs": {m: c.to_dict() for m, c in self.codecs_.items()}}
        result = fit_module(self.net_, self._loss, train, config, val=val_t,
                            val_fn=self._val_loss if val_t is not None else None, run_dir=self.run_dir,
                            resume=resume, model_config=model_config, phases=self._phases())
        self.net_.cpu().eval()
        self.train_result_ = result
        self.history_ = list(result.history)
        self.best_epoch_ = result.best_epoch
        self.modalities_ = names
        self._after_fit(train)
        return self

    def _check_objective_settings(self) -> None:
        """Subclasses check their own settings (β, weights) here."""

    def _phases(self) -> list:
        """Further optimiser steps per batch after the loss's (:class:`jointspace.train.phases.Phase`);
        none by default."""
        return []

    def _after_fit(self, train: dict) -> None:
        r"""Fit the latent mixture (when the model has one) to draws from the aggregate
        posterior :math:`\frac1N \sum_i q(z \mid X_i)`, one per training pair (at most
        20,000), by maximum likelihood (scikit-learn's EM, diagonal covariances), with at most
        one component per distinct draw."""
        k = self._fitted_prior_components()
        if not k:
            return
        from sklearn.mixture import GaussianMixture

        rng = np.random.default_rng(int(self.seed))
        n = len(next(iter(train.values())))
        rows = np.sort(rng.choice(n, min(n, 20000), replace=False))
        gen = torch.Generator().manual_seed(int(self.seed))
        z = torch.cat([self._sample_posterior({m: v[rows[s:s + 2048]] for m, v in train.items()}, 1, gen)
                       for s in range(0, len(rows), 2048)]).double().numpy()
        # no more components than distinct latents: an autoencoder's repeated pairs share one
        # code, and EM's extra components would fall on the same points (scikit-learn warns)
        k = min(k, len(np.unique(z, axis=0)))
        gmm = GaussianMixture(k, covariance_type="diag", reg_covar=1e-4, random_state=int(self.seed), max_iter=200)
        gmm.fit(z)
        self.prior_k_ = k
        net = self.net_
        net.prior_means = torch.tensor(gmm.means_, dtype=torch.float32)
        net.prior_logvars = torch.tensor(np.log(gmm.covariances_), dtype=torch.float32)
        net.prior_logweights = torch.tensor(np.log(gmm.weights_), dtype=torch.float32)

    @torch.no_grad()
    def _val_loss(self, net, val: dict) -> dict:
        total, n = 0.0, 0
        names = list(val)
        rows = len(val[names[0]])
        for s in range(0, rows, 1024):
            batch = {m: v[s:s + 1024] for m, v in val.items()}
            loss, _ = self._loss(net, batch, 0, None)
            total += float(loss) * len(batch[names[0]])
            n += len(batch[names[0]])
        return {"val_loss": total / max(n, 1)}

    # -- the loss's parts ---------------------------------------------------------------------
    def _log_px(self, net, modality: str, x: torch.Tensor, z: torch.Tensor, w: torch.Tensor | None = None
                ) -> torch.Tensor:
        r""":math:`\log p(x_m \mid z)` (:math:`\log p(x_m \mid z, w_m)` with private latents)
        per sample; shape z.shape[:-1]."""
        out = net.decode(modality, z, x if self.likelihoods_[modality] == "categorical" else None, w)
        dec = net.decoders[modality]
        scale = None if dec.log_scale is None else dec.log_scale.clamp(min=LOG_SCALE_MIN)
        return log_likelihood(self.likelihoods_[modality], x, out, scale)

    # -- saving ---------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "net_") or not hasattr(self, "modalities_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def _get_extra(self) -> dict:
        return {"codecs": {m: c.to_dict() for m, c in self.codecs_.items()}, "likelihoods": self.likelihoods_,
                "weights": self.weights_, "best_epoch": self.best_epoch_, "epochs": self.epochs_,
                "prior_components": getattr(self, "prior_k_", 0),
                "history": [{k: (float(v) if isinstance(v, (float, np.floating)) and math.isfinite(v) else v)
                             for k, v in row.items()} for row in self.history_]}

    def _set_extra(self, extra: dict) -> None:
        try:   # the sizes of an edited config.json, before the network is allocated
            self._check_settings()
        except InputError as exc:   # load_model names config.json for it
            raise ValueError(str(exc)) from None
        self.codecs_ = {m: codec_from_dict(d) for m, d in extra["codecs"].items()}
        self.likelihoods_ = dict(extra["likelihoods"])
        self.weights_ = {m: float(v) for m, v in extra["weights"].items()}
        self.best_epoch_ = extra.get("best_epoch")
        self.epochs_ = extra.get("epochs")
        self.prior_k_ = int(extra.get("prior_components", 0))
        self.history_ = list(extra.get("history", []))
        self.net_ = self._build_net().eval()

    def _get_state(self) -> dict:
        state = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}
        for m, c in self.codecs_.items():
            state.update({f"codec.{m}.{k}": np.asarray(v) for k, v in c.arrays().items()})
        return state

    def _set_state(self, state: dict) -> None:
        self.net_.load_state_dict({k[4:]: torch.from_numpy(np.array(v)) for k, v in state.items()
                                   if k.startswith("net.")})
        for m, c in self.codecs_.items():
            prefix = f"codec.{m}."
            c.set_arrays({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        self.net_.eval()
