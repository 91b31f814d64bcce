"""A tiny towered model and image index shared by the server tests (built once per process).

Coloured squares and discs drawn as PNG files, captioned "a red square", ...; a ToweredModel
(EfficientNet-Lite0 at 64 px + MiniLM, regularised CCA head) fitted on them; an index of
the images with their colour as label, caption as text and file as path.  Also a
Wikipedia-features CCA model and index, for routes that need no media.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

COLOURS = {"red": (220, 20, 20), "green": (20, 180, 40), "blue": (30, 40, 220), "yellow": (240, 230, 30),
           "black": (0, 0, 0), "orange": (250, 140, 0), "purple": (130, 30, 160), "grey": (128, 128, 128),
           "pink": (250, 160, 200), "cyan": (30, 220, 230)}
SHAPES = ("square", "disc")


def draw(rgb, shape: str, size: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 255, np.uint8)
    colour = np.clip(np.array(rgb) + rng.integers(-8, 8, 3), 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:size, :size]
    c = size / 2
    mask = (np.abs(yy - c) < size * 0.35) & (np.abs(xx - c) < size * 0.35) if shape == "square" \
        else (yy - c) ** 2 + (xx - c) ** 2 < (size * 0.38) ** 2
    img[mask] = colour
    return img


@functools.lru_cache(maxsize=None)
def workspace() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="jointspace-server-test-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@functools.lru_cache(maxsize=None)
def towered_setup() -> dict:
    """Build (once) the colour-shape PNGs, a towered model and an image index; return their folders."""
    from PIL import Image

    from jointspace.cli.commands.index import item_metadata
    from jointspace.data.pairs import Pairs
    from jointspace.index.faiss_index import Index
    from jointspace.models.towered import ToweredModel

    root = workspace() / "colours"
    (root / "png").mkdir(parents=True)
    paths, texts, labels = [], [], []
    for ci, (name, rgb) in enumerate(COLOURS.items()):
        for si, shape in enumerate(SHAPES):
            for rep in range(2):
                p = root / "png" / f"{name}_{shape}_{rep}.png"
                Image.fromarray(draw(rgb, shape, seed=ci * 10 + si * 3 + rep)).save(p)
                paths.append(str(p))
                texts.append(f"a {name} {shape}")
                labels.append(ci)
    pairs = Pairs({"image": paths, "text": texts}, labels=np.array(labels), label_names=list(COLOURS),
                  ids=np.array([Path(p).stem for p in paths]))
    model = ToweredModel(towers={"image": "efficientnet-lite0", "text": "minilm"}, head="rcca",
                         head_params={"n_components": 12, "reg": 0.1, "preprocess": {"image": "pca:24"}},
                         tower_params={"image": {"image_size": 64}}, cache=False)
    model.fit(pairs, progress=False)
    model.save(root / "model")
    vectors = model.encode("image", paths)
    index = Index.build(vectors, spec="Flat", metadata=item_metadata(pairs, "image"))
    index.info.update({"model": str(root / "model"), "modality": "image", "dataset": "colours", "split": "all"})
    index.save(root / "index")
    tindex = Index.build(model.encode("text", texts), spec="HNSW16", metadata=item_metadata(pairs, "text"))
    tindex.info.update({"model": str(root / "model"), "modality": "text", "dataset": "colours", "split": "all"})
    tindex.save(root / "text-index")
    return {"root": root, "model": root / "model", "index": root / "index", "text_index": root / "text-index",
            "paths": paths, "texts": texts, "labels": [list(COLOURS)[i] for i in labels]}


@functools.lru_cache(maxsize=None)
def engine():
    """One loaded SearchEngine over the colour model with its image and text indexes."""
    from jointspace.server.engine import SearchEngine

    s = towered_setup()
    return SearchEngine([s["index"], s["text_index"]], s["model"])


def make_app(**options):
    from jointspace.server.app import create_app

    return create_app(None, engine=engine(), **options)


def feature_model_index(folder: Path, spec: str = "Flat", n_components: int = 8) -> tuple:
    """A CCA model of Wikipedia's image and text feature vectors (no towers: nothing is embedded
    from files) saved in ``folder/m``, and an index of its test images' vectors with ``spec``
    saved in ``folder/idx``; returns the test pairs and the model."""
    from jointspace.data.datasets import load_dataset
    from jointspace.index.faiss_index import Index
    from jointspace.models.base import create_model

    pairs = load_dataset("wikipedia", "test")
    model = create_model("cca", n_components=n_components).fit(pairs)
    model.save(folder / "m")
    index = Index.build(model.encode("image", pairs["image"]), spec=spec)
    index.info.update({"model": str(folder / "m"), "modality": "image"})
    index.save(folder / "idx")
    return pairs, model


def png_bytes(img: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


PITCHES = {"very low": 110.0, "low": 220.0, "middle": 440.0, "high": 880.0, "very high": 1760.0}


def tone(freq: float, seed: int = 0, seconds: float = 0.5, sr: int = 16000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.normal(size=t.size)).astype(np.float32)


def wav_bytes(y: np.ndarray, sr: int = 16000) -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV")
    return buf.getvalue()


@functools.lru_cache(maxsize=None)
def audio_setup() -> dict:
    """Tones of five pitches as WAV files, a log-mel + MiniLM towered model, an index of the sounds."""
    from jointspace.cli.commands.index import item_metadata
    from jointspace.data.pairs import Pairs
    from jointspace.index.faiss_index import Index
    from jointspace.models.towered import ToweredModel

    root = workspace() / "tones"
    (root / "wav").mkdir(parents=True)
    paths, texts, labels = [], [], []
    for pi, (name, freq) in enumerate(PITCHES.items()):
        for rep in range(6):
            p = root / "wav" / f"{name.replace(' ', '-')}_{rep}.wav"
            p.write_bytes(wav_bytes(tone(freq * (1 + 0.01 * rep), seed=pi * 10 + rep)))
            paths.append(str(p))
            texts.append(f"a {name} tone")
            labels.append(pi)
    pairs = Pairs({"audio": paths, "text": texts}, labels=np.array(labels), label_names=list(PITCHES))
    model = ToweredModel(towers={"audio": "logmel", "text": "minilm"}, head="rcca",
                         head_params={"n_components": 4, "reg": 0.1, "preprocess": {"audio": "pca:8",
                                                                                     "text": "pca:8"}},
                         cache=False)
    model.fit(pairs, progress=False)
    model.save(root / "model")
    index = Index.build(model.encode("audio", paths), spec="Flat", metadata=item_metadata(pairs, "audio"))
    index.info.update({"model": str(root / "model"), "modality": "audio"})
    index.save(root / "index")
    return {"model": root / "model", "index": root / "index", "paths": paths}


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(app, log_level: str = "warning"):
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
