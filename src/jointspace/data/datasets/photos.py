"""The photographs and pictures bundled with scikit-image, each with a short caption.

About twenty images (an astronaut, a cat, coffee, coins, the moon, a rocket launch ...),
for small demos and tests of image-text search.  The captions follow scikit-image's own
descriptions of the images.  Images are written once as PNG files into the cache.
"""

from __future__ import annotations

import io

import numpy as np

from ..._io import atomic_write_bytes
from ...errors import InputError
from ..cache import FileCache, content_key
from ..pairs import Pairs
from . import Dataset, register_dataset

CITATION = "S. van der Walt et al. scikit-image: image processing in Python. PeerJ 2:e453, 2014."
PIP_COMMAND = "pip install scikit-image"

# (loader name in skimage.data, caption, kind); every image ships inside the wheel
PHOTOS = (
    ("astronaut", "a portrait of an astronaut in a spacesuit", "photo"),
    ("brick", "a brick wall", "texture"),
    ("camera", "a black and white photo of a man with a camera on a tripod", "photo"),
    ("cell", "a cell floating in saline under a microscope", "microscopy"),
    ("checkerboard", "a black and white checkerboard", "synthetic"),
    ("chelsea", "a tabby cat", "photo"),
    ("clock", "a motion-blurred wall clock", "photo"),
    ("coffee", "a cup of coffee on a saucer", "photo"),
    ("coins", "old greek coins", "photo"),
    ("colorwheel", "a colour wheel", "synthetic"),
    ("grass", "a close-up of grass", "texture"),
    ("gravel", "a close-up of gravel", "texture"),
    ("horse", "the black silhouette of a horse", "synthetic"),
    ("hubble_deep_field", "galaxies in a deep field image of space", "photo"),
    ("immunohistochemistry", "a stained tissue sample under a microscope", "microscopy"),
    ("logo", "the scikit-image logo, a snake", "synthetic"),
    ("microaneurysms", "a close-up of a retina with microaneurysms", "medical"),
    ("moon", "the surface of the moon", "photo"),
    ("page", "a scanned page of printed text", "document"),
    ("retina", "a photo of a human retina", "medical"),
    ("rocket", "a rocket launching from a launch pad", "photo"),
    ("text", "a photo of printed text", "document"),
)


def _rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    elif img.dtype != np.uint8:
        lo, hi = float(img.min()), float(img.max())
        img = np.zeros(img.shape, np.uint8) if hi <= lo else ((img - lo) / (hi - lo) * 255).round().astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.shape[2] == 4:  # composite on white
        a = img[..., 3:4].astype(np.float32) / 255.0
        img = (img[..., :3] * a + 255 * (1 - a)).round().astype(np.uint8)
    return np.ascontiguousarray(img[..., :3])


@register_dataset
class Photos(Dataset):
    name = "photos"
    description = "scikit-image's 22 bundled photographs with captions, for small demos"
    splits = ("all",)
    modalities = ("image", "text")
    citation = CITATION

    def missing(self) -> str | None:
        try:
            import skimage.data  # noqa: F401
        except ImportError:
            return PIP_COMMAND
        return None

    def _load(self, split: str, cache_dir=None) -> Pairs:
        """All photos: ``image`` PNG file paths (RGB, original size), ``text`` captions.

        Labels are the image kind (photo, texture, synthetic, ...).
        """
        import skimage
        import skimage.data
        from PIL import Image

        cache = FileCache("photos", folder=cache_dir)
        paths, kinds = [], []
        for name, _caption, kind in PHOTOS:
            path = cache.path(content_key("skimage", skimage.__version__, name), ".png")
            if not cache.is_valid(path):
                loader = getattr(skimage.data, name, None)
                if loader is None:
                    raise InputError(f"scikit-image {skimage.__version__} has no bundled image {name!r}")
                buf = io.BytesIO()
                Image.fromarray(_rgb(loader()), "RGB").save(buf, format="PNG")
                atomic_write_bytes(path, buf.getvalue())
                cache.record(path)
            paths.append(str(path))
            kinds.append(kind)
        cache.flush()
        kind_names = sorted(set(kinds))
        return Pairs({"image": paths, "text": [c for _, c, _ in PHOTOS]},
                     labels=np.array([kind_names.index(k) for k in kinds]), ids=np.array([n for n, _, _ in PHOTOS]),
                     metadata={"source": [f"skimage.data.{n}" for n, _, _ in PHOTOS]},
                     label_names=kind_names, name=self.name)
