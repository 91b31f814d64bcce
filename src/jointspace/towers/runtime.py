"""Where a frozen tower's network runs: PyTorch, or ONNX Runtime on an export made at first use.

The pretrained towers (``efficientnet-lite0``, ``minilm``) take ``runtime="torch"`` or
``runtime="onnx"``.  Both give the same vectors (cosine >= 0.999, pinned by the tests; in
practice they agree to about 1e-5).  The text tower also takes ``runtime="torch-bf16"``: its
transformer in bfloat16 through PyTorch, on a CPU with native bfloat16 arithmetic
(AVX512-BF16 or AMX).  The bare network ran a batch of 64 sentences 2.5x faster than float32
(either runtime) at cosine 0.99994 to the float32 vectors (bfloat16 autocast, which keeps
float32 weights: 1.9x); one sentence at a time it is no faster than float32 PyTorch, so
ONNX Runtime stays the runtime for answering queries.  The image
tower refuses it: bfloat16 moved EfficientNet-Lite0's vectors to cosine 0.997, below the
0.999 the runtimes promise (and ONNX Runtime float32 was faster still).  On a CPU, ONNX Runtime runs the image tower several
times faster (its depthwise convolutions carry far less overhead), answers one sentence about
twice as fast, and matches PyTorch on batches of sentences (``benchmarks/bench_towers.py``);
it also starts without importing PyTorch.

The ONNX file is exported from the PyTorch module the first time it is needed and kept in
``$JOINTSPACE_CACHE/onnx`` (default ``~/.cache/jointspace/onnx``), named by a digest of the
packaged weights, the export's inputs and outputs, and the torch version, so a new package
version exports anew.  The export is written atomically; when the folder cannot be written it
goes to a temporary folder for this process, with a warning.  Beside each export, ``<file>.crc32``
records the CRC-32 of its bytes; a cached export that cannot be read or whose bytes no longer
match that record (damaged on disk: truncated, overwritten, flipped bits in its weights, which
ONNX Runtime runs without complaint) is exported again, with a warning.

The default runtime is ``$JOINTSPACE_RUNTIME`` when set, else ``"onnx"`` when ONNX Runtime is
installed, else ``"torch"``; a tower without the runtime the variable names (the image tower
with ``torch-bf16``) runs its nearest one (``torch``) and records that.  A tower records its runtime in its settings (``config()``), so a
saved model, and an index built with it, is searched with the runtime that built it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import tempfile
import threading
import warnings
import zlib
from pathlib import Path

from ..errors import InputError, MissingDependencyError

RUNTIMES = ("torch", "onnx", "torch-bf16")
#: the runtime a tower runs when $JOINTSPACE_RUNTIME names one it does not have
NEAREST = {"torch-bf16": "torch"}
ENV_VAR = "JOINTSPACE_RUNTIME"
_INSTALL = "pip install onnxruntime onnx"
#: bump when the exported graphs change (their inputs, outputs or export settings)
EXPORT_VERSION = 1


def onnx_available() -> bool:
    """Whether ONNX Runtime and the ONNX package (needed to export) are importable."""
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def bf16_supported() -> bool:
    """Whether this CPU runs bfloat16 natively (AVX512-BF16 or AMX), as oneDNN sees it."""
    try:
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (ImportError, AttributeError, RuntimeError):
        return False


def default_runtime(supported=RUNTIMES) -> str:
    """``$JOINTSPACE_RUNTIME`` when set, else ``"onnx"`` when ONNX Runtime is installed, else ``"torch"``.

    Parameters
    ----------
    supported : sequence of str
        The runtimes of the tower asking; where the variable names another, its
        :data:`NEAREST` one.
    """
    env = os.environ.get(ENV_VAR, "").strip().lower()
    if env:
        if env not in RUNTIMES:
            raise InputError(f"{ENV_VAR}: expected one of {', '.join(RUNTIMES)}, got {env!r}")
        return env if env in supported else NEAREST.get(env, env)
    return "onnx" if onnx_available() else "torch"


def resolve_runtime(runtime, supported=RUNTIMES, why_not: str = "") -> str:
    """Check a tower's ``runtime`` argument; None means :func:`default_runtime`.

    Parameters
    ----------
    runtime : str or None
    supported : sequence of str
        The runtimes this tower has.
    why_not : str
        Said when a runtime of :data:`RUNTIMES` the tower lacks is asked for.

    Raises
    ------
    InputError
        When ``runtime`` is not one of ``supported``, or is ``"torch-bf16"`` on a CPU without
        native bfloat16.
    MissingDependencyError
        When ``"onnx"`` is asked for and ONNX Runtime is not installed.
    """
    if runtime is None:
        runtime = default_runtime(supported)
    if not isinstance(runtime, str) or runtime.strip().lower() not in RUNTIMES:
        raise InputError(f"runtime: expected one of {', '.join(supported)}, got {runtime!r}")
    runtime = runtime.strip().lower()
    if runtime not in supported:
        raise InputError(f"runtime: expected one of {', '.join(supported)}, got {runtime!r}"
                         + (f" ({why_not})" if why_not else ""))
    if runtime == "onnx" and not onnx_available():
        raise MissingDependencyError(f"runtime 'onnx' needs ONNX Runtime: {_INSTALL} (or use runtime 'torch')")
    if runtime == "torch-bf16" and not bf16_supported():
        raise InputError("runtime: 'torch-bf16' needs a CPU with native bfloat16 arithmetic (AVX512-BF16 or AMX), "
                         "which this one lacks; use 'onnx' or 'torch' (the same vectors to cosine 0.9999)")
    return runtime


def onnx_cache_dir() -> Path:
    """``$JOINTSPACE_CACHE/onnx``, default ``~/.cache/jointspace/onnx``."""
    env = os.environ.get("JOINTSPACE_CACHE", "").strip()
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "jointspace"
    return base / "onnx"


def file_digest(path, *extra: str) -> str:
    """sha256 of a file's bytes and of ``extra`` strings (what names an export)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    for e in extra:
        h.update(b"\0" + e.encode())
    return h.hexdigest()


_export_lock = threading.RLock()   # reentrant: an export may need another made again (see export_again)
_fallback_dir: list = []
#: how each cached export of this process is made (its path -> ``export``), to make a damaged one again
_makers: dict = {}
#: a damaged export made again in another folder (its own could not be written): old path -> new path
_moved: dict = {}
#: exports made again by this process (one that still cannot be read is not made a third time)
_remade: set = set()
#: per thread, the warnings held while an export runs with warnings silenced (see _warn)
_held = threading.local()
#: cached exports whose bytes this process has checked against their recorded CRC-32
_checked: set = set()


def cached_export(name: str, key: str, export) -> Path:
    """The ONNX file ``<cache>/<name>-<key[:16]>.onnx``, made by ``export(path)`` when missing.

    Parameters
    ----------
    name : str
        The tower's name (a readable file name).
    key : str
        Digest of everything that decides the exported graph (see :func:`file_digest`).
    export : callable
        ``export(path)`` writes the ONNX file at ``path``.
    """
    from importlib.metadata import version

    # the torch version from the package metadata: importing torch only to read it would cost
    # a second of start-up when the export is already cached
    torch_version = version("torch")
    fname = f"{name}-{hashlib.sha256(f'{key}|{torch_version}|{EXPORT_VERSION}'.encode()).hexdigest()[:16]}.onnx"
    with _export_lock:
        for folder in [onnx_cache_dir()] + _fallback_dir:
            if (folder / fname).is_file():
                _makers[str(folder / fname)] = export
                return folder / fname
        folder = _fallback_dir[0] if _fallback_dir else onnx_cache_dir()
        path = _export_or_fall_back(folder, fname, export)
        _makers[str(path)] = export
        return path


def _export_or_fall_back(folder: Path, fname: str, export) -> Path:
    try:
        return _export_atomic(folder, fname, export)
    except OSError as exc:
        if _fallback_dir:
            raise
        _fallback_dir.append(Path(tempfile.mkdtemp(prefix="jointspace-onnx-")))
        warnings.warn(f"ONNX cache {str(folder)!r} is not writable ({exc.strerror or exc}); the export "
                      f"is kept for this process only", RuntimeWarning, stacklevel=4)
        return _export_atomic(_fallback_dir[0], fname, export)


def export_again(path, reason: BaseException) -> Path:
    """Make the cached export at ``path`` again because it cannot be read (``reason``: the error
    of reading it), with a warning; the damaged file is replaced atomically.

    Raises
    ------
    BaseException
        ``reason`` itself, when ``path`` is not a file :func:`cached_export` gave in this process,
        or was made again by this process already.
    """
    path = Path(path)
    if str(path) in _moved:   # made again already, elsewhere
        return Path(_moved[str(path)])
    export = _makers.get(str(path))
    if export is None or str(path) in _remade:   # not ours, or made again already and still unreadable
        raise reason
    why = " ".join(str(reason).split())[:200]
    _warn(f"the cached ONNX export {str(path)!r} cannot be read ({type(reason).__name__}: {why}); "
          "it is exported again", stacklevel=3)
    with _export_lock:
        fresh = _export_or_fall_back(path.parent, path.name, export)
        _makers[str(fresh)] = export
        _remade.update((str(path), str(fresh)))
        if fresh != path:
            _moved[str(path)] = str(fresh)
    return fresh


def _export_atomic(folder: Path, fname: str, export) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{fname}.", suffix=".tmp", dir=folder)
    os.close(fd)
    outer, _held.notes = getattr(_held, "notes", None), []
    try:
        with warnings.catch_warnings():  # the exporter's deprecation and tracer notes
            warnings.simplefilter("ignore")
            export(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is shared like any other file
        crc = _crc32(tmp)
        os.replace(tmp, folder / fname)
        _write_crc32(folder / fname, crc)
        _checked.add(str(folder / fname))
        from .._io import remove_stale_temporaries

        remove_stale_temporaries(folder)   # what exports killed part-way left, once an hour old
    finally:
        notes, _held.notes = _held.notes, outer
        if os.path.exists(tmp):
            os.unlink(tmp)
    for note in notes:   # our own warnings, said once the export's are no longer silenced
        _warn(note, stacklevel=4)
    return folder / fname


def _crc32(path) -> str:
    """The CRC-32 of a file's bytes, as 8 hex digits."""
    crc = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            crc = zlib.crc32(block, crc)
    return f"{crc:08x}"


def _write_crc32(path: Path, crc: str) -> None:
    from .._io import atomic_write_text

    atomic_write_text(path.with_name(path.name + ".crc32"), crc + "\n")


def _damage(path: str) -> Exception | None:
    """Why the cached export at ``path`` differs from what was exported (its bytes no longer
    match the CRC-32 recorded beside it), or None.  An export made before the record existed
    has its CRC-32 recorded now (when the folder can be written)."""
    record = Path(path + ".crc32")
    try:
        crc = _crc32(path)
    except OSError as exc:   # gone or unreadable since it was found
        return exc
    try:
        want = record.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        try:
            _write_crc32(Path(path), crc)
        except OSError:
            pass
        return None
    if want != crc:
        return ValueError(f"its bytes (CRC-32 {crc}) are not those exported (CRC-32 {want})")
    return None


def _warn(message: str, stacklevel: int) -> None:
    """A RuntimeWarning now, or once the export running in this thread (which silences
    warnings) has finished."""
    notes = getattr(_held, "notes", None)
    if notes is not None:
        notes.append(message)
    else:
        warnings.warn(message, RuntimeWarning, stacklevel=stacklevel + 1)


def session_threads() -> int:
    """Threads for ONNX Runtime: as many as PyTorch uses (``torch.get_num_threads()``) when
    PyTorch is loaded, else one per CPU this process may run on."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        return max(1, int(torch.get_num_threads()))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:   # no affinity on this platform
        return max(1, os.cpu_count() or 1)


@functools.lru_cache(maxsize=8)
def _session(path: str, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # worker threads spin between the operators of a run (one short sentence: 1.7-1.9 ms
    # instead of 2.5-2.8 ms with sleeping threads) and stop spinning when the run ends: threads
    # left spinning between runs took the cores from PyTorch's threads in the same process (and
    # from other processes on a small machine)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
    opts.add_session_config_entry("session.force_spinning_stop", "1")
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def check_export(path) -> Path:
    """``path``, a cached export whose bytes match the CRC-32 recorded when it was exported;
    one that no longer matches is exported again (with a warning) and the new path returned.
    Each file is checked once per process; a file that is no cached export is returned as it is."""
    path = _moved.get(str(path), str(path))
    if path in _makers and path not in _checked:
        with _export_lock:   # one thread checks (and exports again); the others wait for it
            if path not in _checked:
                damage = _damage(path)
                _checked.add(path)
                if damage is not None:
                    return export_again(path, damage)
    return Path(_moved.get(path, path))


def onnx_session(path) -> "onnxruntime.InferenceSession":  # noqa: F821
    """An ONNX Runtime session of ``path`` on the CPU (one per file and thread count, per process)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise MissingDependencyError(f"runtime 'onnx' needs ONNX Runtime: {_INSTALL}") from None
    path = str(check_export(path))
    threads = session_threads()
    try:
        return _session(path, threads)
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime's own error types (InvalidProtobuf, Fail, ...)
        # a cached export damaged on disk (truncated, overwritten): made again rather than failing every run
        return _session(str(export_again(path, exc)), threads)
