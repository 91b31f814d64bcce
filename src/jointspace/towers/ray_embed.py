"""Embedding a collection with Ray Data: sharded Parquet output, resumable, the same vectors.

:func:`embed_with_ray` runs a tower over ``items`` on a Ray cluster (or a local Ray instance)
and writes the vectors to a folder of Parquet shards, one file per shard:

``part-00000.parquet`` …
    columns ``row`` (int64: the item's position in the collection), ``id`` (the sample id,
    int64 or string) and ``vector`` (fixed-size list of float32, the tower's ``out_dim``);
``embedding.json``
    what was embedded (tower, its settings and, when they are not the published ones, a digest
    of its weights files, n, dim, batch size, shard size, a digest of the ids and one of the
    items: texts and arrays by content, files by path, size and modification time), so a rerun
    into the same folder resumes: shards already written are skipped, and a folder of another
    run (other items or weights, or the same files edited since) is refused.

Why the vectors are the single-process ones bit for bit: the collection is put in the tower's
own processing order (:meth:`Tower._order`, e.g. texts longest first) and cut into exactly the
batches :meth:`Tower.embed` would run; each Ray task runs one of those batches through the
same tower, so every forward pass sees the same inputs in the same company.

The item list (file paths, texts or feature rows) goes to Ray's object store once; decoding
and the forward passes are streamed batch by batch across the workers, and the driver writes
each shard (atomically) as soon as all its batches have come back.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path

import numpy as np

from .._io import atomic_write_bytes, atomic_write_json, read_json_object
from .._progress import progress_bar
from .._validation import check_int
from ..errors import InputError, JointspaceError, MissingDependencyError

#: rows per Parquet shard by default (rounded up to a whole number of batches)
DEFAULT_SHARD_SIZE = 10_000
#: the run description beside the shards
MANIFEST = "embedding.json"


def shard_name(s: int) -> str:
    """File name of shard ``s``."""
    return f"part-{s:05d}.parquet"


def _items_digest(items, modality: str) -> str:
    """A digest of the items in order: texts and arrays by their content
    (:func:`~jointspace.towers.cache.item_digest`), files by their path, size and modification
    time (a file edited since is another item, and the collection is not read twice)."""
    import os

    from .cache import item_digest

    h = hashlib.blake2b(digest_size=16)
    for i, it in enumerate(items):
        if isinstance(it, (str, os.PathLike)) and modality != "text":
            st = os.stat(it)
            h.update(f"file\0{os.fspath(it)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode("utf-8", "surrogateescape"))
        else:
            h.update(item_digest(it, modality, f"items[{i}]"))
    return h.hexdigest()


def _ids_digest(ids: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    for v in np.asarray(ids).tolist():
        h.update(str(v).encode("utf-8", "replace") + b"\0")
    return h.hexdigest()


class _BatchEmbedder:
    """A Ray Data actor: builds the tower once, then embeds whole batches of the ordered items."""

    def __init__(self, tower_name: str, tower_config: dict, items_ref: list, batch_size: int, n: int):
        import ray

        from .base import create_tower

        self.tower = create_tower(tower_name, **tower_config)
        self.items = ray.get(items_ref[0])  # wrapped in a list so Ray hands over the reference
        self.batch_size = batch_size
        self.n = n

    def __call__(self, batch: dict) -> dict:
        positions, vectors = [], []
        for b in np.asarray(batch["batch"]).tolist():
            start, stop = b * self.batch_size, min(self.n, (b + 1) * self.batch_size)
            chunk = self.items[start:stop]
            vectors.append(self.tower.embed(chunk, batch_size=stop - start, progress=False))
            positions.append(np.arange(start, stop, dtype=np.int64))
        return {"pos": np.concatenate(positions), "vector": np.concatenate(vectors)}


def _write_shard(path: Path, rows: np.ndarray, ids: np.ndarray, vectors: np.ndarray, meta: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    id_col = pa.array(ids.astype(np.int64)) if ids.dtype.kind in "iu" else pa.array([str(v) for v in ids.tolist()])
    table = pa.table({"row": pa.array(rows.astype(np.int64)), "id": id_col,
                      "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])})
    table = table.replace_schema_metadata({"jointspace": json.dumps(meta, sort_keys=True)})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(path, buf.getvalue())


def _shard_complete(path: Path, expected_rows: int) -> bool:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows == expected_rows
    except (OSError, ValueError):
        return False


def _require_ray() -> None:
    """Import Ray Data and pyarrow, or say how to install them."""
    try:
        import pyarrow  # noqa: F401
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError as exc:
        missing = exc.name or str(exc)
        raise MissingDependencyError(f"embedding with Ray needs Ray Data and pyarrow ({missing} is not installed): "
                                     "pip install 'jointspace[scale]'") from None


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a ``host:port`` or ``ray://host:port`` nobody answers (Ray itself retries for minutes)."""
    import socket

    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--ray: expected an address host:port, ray://host:port or auto, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise JointspaceError(f"--ray: no Ray cluster answers at {address!r} ({exc.strerror or exc})") from None


def _start_ray(address: str | None, num_cpus: int | None):
    """Connect to ``address`` (or start a local instance); True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        _check_reachable(address)
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"at {address!r}" if address else "locally"
        raise JointspaceError(f"--ray: could not start Ray {where}: {str(exc).splitlines()[0]}") from None
    return True


def embed_with_ray(tower, items, ids, out, *, batch_size: int | None = None,
                   shard_size: int = DEFAULT_SHARD_SIZE, workers: int | None = None, address: str | None = None,
                   progress: bool = True, info: dict | None = None) -> dict:
    """Embed ``items`` through ``tower`` with Ray Data into a folder of Parquet shards.

    Parameters
    ----------
    tower : Tower
        Rebuilt on each worker from its name and :meth:`Tower.config` (trainable towers from
        their seed).
    items : sequence of n raw items (as :meth:`Tower.embed`)
    ids : array-like, shape (n,)
        Sample ids, written beside the vectors.
    out : str or Path
        The output folder (created; a folder of an earlier identical run is resumed).
    batch_size : int, optional
        Items per forward pass (default: the tower's own).
    shard_size : int
        Rows per Parquet file, rounded up to a multiple of ``batch_size``.
    workers : int, optional
        Ray actors running the tower (default: the cluster's CPUs, at most one per batch).
    address : str, optional
        A Ray cluster's address (``ray://host:10001`` or ``host:6379``); None starts a
        local instance unless Ray is already initialised in this process.
    progress : bool
        Show a progress bar of rows embedded.
    info : dict, optional
        JSON values recorded in ``embedding.json`` and every shard (dataset, split, modality).

    Returns
    -------
    dict
        ``n``, ``dim``, ``shards``, ``skipped`` (shards found complete), ``written``, ``out``.

    Raises
    ------
    MissingDependencyError
        Ray Data or pyarrow is not installed (checked before ``out`` is created).
    """
    from .inputs import check_items

    items = check_items(tower.modality, items, name="items")
    n = len(items)
    ids = np.asarray(ids)
    if ids.shape != (n,):
        raise InputError(f"ids: expected shape ({n},), got {ids.shape}")
    bs = check_int(batch_size if batch_size is not None else tower.default_batch_size, "batch_size", low=1)
    shard_size = check_int(shard_size, "shard_size", low=1)
    if workers is not None:
        workers = check_int(workers, "workers", low=1)
    per_shard = -(-shard_size // bs)  # batches per shard
    shard_rows = per_shard * bs
    n_batches = -(-n // bs)
    n_shards = -(-n_batches // per_shard)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out: with --ray, expected a folder for the Parquet shards, got the file {str(out)!r}")
    _require_ray()   # before the folder is made
    order = tower._order(items)
    order = np.arange(n) if order is None else np.asarray(order)
    weights = tower.weights_digest()   # weights other than the published ones make another run
    manifest = {"tower": tower.name, "tower_config": tower.config(),
                **({"tower_weights": weights} if weights else {}), "n": n, "dim": tower.out_dim,
                "batch_size": bs, "shard_rows": shard_rows, "shards": n_shards, "ids_digest": _ids_digest(ids),
                "order_digest": _ids_digest(order), "items_digest": _items_digest(items, tower.modality),
                **(info or {})}
    manifest = json.loads(json.dumps(manifest, default=str))
    old = read_json_object(out / MANIFEST) if (out / MANIFEST).exists() else None
    if old is not None and old != manifest:
        diff = sorted(k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k))
        raise InputError(f"--out: {str(out)!r} holds shards of another embedding run (differs in "
                         f"{', '.join(diff)}); give a new folder or remove it")
    out.mkdir(parents=True, exist_ok=True)
    if old is None:
        atomic_write_json(out / MANIFEST, manifest)

    def rows_of(s):
        return min(n, (s + 1) * shard_rows) - s * shard_rows

    done = {s for s in range(n_shards) if _shard_complete(out / shard_name(s), rows_of(s))}
    pending = [s for s in range(n_shards) if s not in done]
    summary = {"n": n, "dim": tower.out_dim, "shards": n_shards, "skipped": len(done), "written": 0,
               "out": str(out)}
    if not pending:
        return summary
    if isinstance(items, np.ndarray):
        ordered = np.ascontiguousarray(items[order])
    else:
        ordered = [items[i] for i in order]
    ids_ordered = ids[order]
    started = _start_ray(address, workers)
    try:
        import ray
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        batches = [b for s in pending for b in range(s * per_shard, min(n_batches, (s + 1) * per_shard))]
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        workers = min(workers, len(batches))
        ds = ray.data.from_items([{"batch": b} for b in batches], override_num_blocks=len(batches))
        ds = ds.map_batches(_BatchEmbedder, batch_size=1, batch_format="numpy", num_cpus=1,
                            compute=ray.data.ActorPoolStrategy(size=workers),
                            fn_constructor_args=(tower.name, tower.config(), [ray.put(ordered)], bs, n))
        filled = {s: [] for s in pending}
        count = {s: 0 for s in pending}
        with progress_bar(f"{tower.name} (ray, {workers} worker{'s' * (workers > 1)})",
                          sum(rows_of(s) for s in pending), enabled=progress) as advance:
            for part in ds.iter_batches(batch_size=None, batch_format="numpy"):
                pos, vec = np.asarray(part["pos"]), np.asarray(part["vector"], dtype=np.float32)
                for s in np.unique(pos // shard_rows).tolist():
                    sel = pos // shard_rows == s
                    filled[s].append((pos[sel], vec[sel]))
                    count[s] += int(sel.sum())
                    if count[s] == rows_of(s):
                        parts = filled.pop(s)
                        p = np.concatenate([a for a, _ in parts])
                        v = np.concatenate([b for _, b in parts])
                        keep = np.argsort(p, kind="stable")
                        p, v = p[keep], v[keep]
                        _write_shard(out / shard_name(s), order[p], ids_ordered[p], v, manifest)
                        summary["written"] += 1
                advance(len(pos))
    finally:
        if started:
            ray.shutdown()
    return summary


def read_embeddings(folder) -> tuple[np.ndarray, np.ndarray]:
    """Read a folder written by :func:`embed_with_ray`, rows in the collection's order.

    Parameters
    ----------
    folder : str or Path

    Returns
    -------
    ids : ndarray, shape (n,)
    vectors : ndarray of float32, shape (n, dim)

    Raises
    ------
    InputError
        When the folder has no ``embedding.json`` or some shards are missing (an unfinished run),
        or a shard or ``embedding.json`` is damaged (unreadable, or the rows and dimension of the
        shards do not match what ``embedding.json`` says).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    manifest = read_json_object(folder / MANIFEST) if (folder / MANIFEST).is_file() else None
    if manifest is None:
        raise InputError(f"folder: expected a folder written by 'jointspace embed --ray' (with {MANIFEST}), "
                         f"got {str(folder)!r}")
    for key in ("n", "dim", "shards"):
        value = manifest.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < (1 if key == "dim" else 0):
            raise InputError(f"folder: {MANIFEST} in {str(folder)!r} has a bad {key!r}: expected an integer >= "
                             f"{1 if key == 'dim' else 0}, got {value!r}; the folder is corrupted")
    missing = [shard_name(s) for s in range(manifest["shards"]) if not (folder / shard_name(s)).is_file()]
    if missing:
        raise InputError(f"folder: {str(folder)!r} is unfinished ({len(missing)} of {manifest['shards']} shards "
                         f"missing, e.g. {missing[0]}); rerun the same command to resume")
    n, dim = manifest["n"], manifest["dim"]
    vectors = np.empty((n, dim), dtype=np.float32)
    ids = [None] * n
    seen = np.zeros(n, dtype=np.int64)
    for s in range(manifest["shards"]):
        where = f"folder: {shard_name(s)} in {str(folder)!r}"
        try:
            t = pq.read_table(folder / shard_name(s), columns=["row", "id", "vector"])
            rows = t.column("row").to_numpy()
            flat = t.column("vector").combine_chunks().flatten().to_numpy()
        except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
            raise InputError(f"{where} could not be read ({str(exc).splitlines()[0]}); the folder is corrupted: "
                             "delete that file and rerun the same command to write it again") from None
        if flat.size != rows.size * dim or (rows.size and (rows.min() < 0 or rows.max() >= n)):
            raise InputError(f"{where} holds {rows.size} rows of {flat.size // max(rows.size, 1)} values; "
                             f"{MANIFEST} says rows 0..{n - 1} of dim {dim}; the folder is corrupted")
        vectors[rows] = flat.reshape(-1, dim)
        np.add.at(seen, rows, 1)
        for r, i in zip(rows.tolist(), t.column("id").to_pylist()):
            ids[r] = i
    if not (seen == 1).all():
        gaps, twice = int((seen == 0).sum()), int((seen > 1).sum())
        raise InputError(f"folder: the shards in {str(folder)!r} leave {gaps} of the {n} rows {MANIFEST} says out "
                         f"and hold {twice} twice; the folder is corrupted")
    return np.asarray(ids), vectors
