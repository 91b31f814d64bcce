"""OpenClipart: public-domain drawings from the Debian package ``openclipart-svg``.

About 7,400 SVG drawings, each with a Dublin Core title, keywords and sometimes a
description; its top-level folder (animals, food, transportation, ...) is the label.
Drawings are rendered to RGB PNG files on white and cached.

Titles repeat heavily (whole collections share one title), so the train / val / test split
is made by a hash of the *normalised title*: no title is in two splits, and
``metadata["title_key"]`` lets evaluation count every gallery item with the query's
normalised title as relevant (``relevance="title_key"``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from ..._io import atomic_write_json
from ..._validation import check_choice, check_float, check_int
from ...errors import InputError, MissingDependencyError
from .. import svg as svgmod
from .._parallel import default_workers, run_jobs
from ..._progress import progress_bar
from ..cache import FileCache, check_folder_arg, content_key
from ..keys import normalise_title
from ..pairs import Pairs
from . import Dataset, register_dataset

DEFAULT_ROOT = Path("/usr/share/openclipart/svg")
APT_PACKAGE = "openclipart-svg"
SPLIT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
TEXT_VIEWS = ("title+keywords", "title", "description", "keywords")
CATALOGUE_VERSION = 1
_MEMO: dict = {}  # catalogue file -> entries, so loading three splits reads the JSON once
# skips that depend on this load's settings (timeout, max_bytes), not on the drawing: they
# are checked again on every load instead of being remembered in render-failures-*.json
_NOT_REMEMBERED = ("timeout", "too_large")


def split_of(title_key: str) -> str:
    """``train`` / ``val`` / ``test`` from a hash of the normalised title (70 / 10 / 20)."""
    u = int(hashlib.sha256(("openclipart-split-v1:" + title_key).encode()).hexdigest()[:12], 16) / 16 ** 12
    edge = 0.0
    for name, frac in SPLIT_FRACTIONS.items():
        edge += frac
        if u < edge:
            return name
    return "test"


def _stem_title(path: Path) -> str:
    # file names look like "title_words_author_name_01"; the words are the best we have
    return " ".join(re.sub(r"_\d+$", "", path.stem).replace("_", " ").replace("-", " ").split())


def _scan(root: Path, max_files: int | None) -> list[Path]:
    files = sorted(p for p in root.rglob("*.svg") if p.is_file() and not p.is_symlink())
    return files[:max_files] if max_files else files


def _parse_one(path: Path, root: Path) -> dict:
    rel = path.relative_to(root).as_posix()
    entry = {"rel": rel, "category": rel.split("/")[0] if "/" in rel else "uncategorised"}
    try:
        data = path.read_bytes()
        entry["sha256"] = hashlib.sha256(data).hexdigest()
        if not data.strip():
            raise ValueError("empty file")
        meta = svgmod.svg_metadata(data)
    except Exception as exc:  # malformed XML, refused entity, unreadable file
        entry.update(status="parse_error", error=f"{type(exc).__name__}: {exc}"[:200])
        return entry
    title = meta["title"] or _stem_title(path)
    key = normalise_title(title) or normalise_title(_stem_title(path)) or rel
    entry.update(status="ok", title=title, title_key=key, keywords=meta["keywords"],
                 description=meta["description"],
                 aspect=svgmod.aspect_ratio(meta["width"], meta["height"], meta["viewbox"]))
    return entry


def catalogue(root=None, *, max_files: int | None = None, cache: FileCache | None = None) -> list[dict]:
    """Parse every drawing under ``root`` once (cached as JSON, keyed by file sizes and times).

    Returns
    -------
    list of dict
        One entry per file: ``rel`` (path under root), ``category``, ``sha256``,
        ``status`` (``ok`` or ``parse_error``) and, when ok, ``title``, ``title_key``,
        ``keywords``, ``description``, ``aspect``.
    """
    root = check_folder_arg(root, "root") if root is not None else DEFAULT_ROOT
    if not root.is_dir():
        raise InputError(f"root: folder {str(root)!r} does not exist")
    cache = cache or FileCache("openclipart")
    files = _scan(root, max_files)
    stamp = [(p.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns) for p in files for st in [p.stat()]]
    path = cache.path("catalogue-" + content_key(CATALOGUE_VERSION, str(root.resolve()), stamp), ".json")
    if cache.is_valid(path):
        if str(path) in _MEMO:
            return _MEMO[str(path)]
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(entries, list) and len(entries) == len(files):
                _MEMO.clear()
                _MEMO[str(path)] = entries
                return entries
        except (OSError, ValueError):
            pass
        cache.forget(path)
    entries = []
    with progress_bar("openclipart: reading SVG metadata", len(files)) as advance:
        for p in files:
            entries.append(_parse_one(p, root))
            advance()
    atomic_write_json(path, entries)
    cache.record(path)
    cache.flush()
    return entries


def select(entries: list[dict], max_per_title: int | None) -> list[dict]:
    """Parsed entries, at most ``max_per_title`` per normalised title (chosen by content hash)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for e in entries:
        if e["status"] == "ok":
            groups[e["title_key"]].append(e)
    kept = []
    for items in groups.values():
        items = sorted(items, key=lambda e: (e["sha256"], e["rel"]))
        kept.extend(items if max_per_title is None else items[:max_per_title])
    return sorted(kept, key=lambda e: e["rel"])


def text_view(entry: dict, view: str) -> str:
    """The text paired with a drawing for ``view`` (title+keywords, title, description, keywords)."""
    title, kws = entry["title"], entry["keywords"]
    if view == "title":
        return title
    if view == "keywords":
        return ", ".join(kws) or title
    if view == "description":
        return entry["description"] or title
    return f"{title}; {', '.join(kws)}" if kws else title


@register_dataset
class OpenClipart(Dataset):
    name = "openclipart"
    description = "OpenClipart public-domain drawings (~7,400 SVG) rendered on white, with titles and keywords"
    splits = ("train", "val", "test")
    modalities = ("image", "text")
    relevance = "title_key"
    citation = "Open Clip Art Library, https://openclipart.org (public domain), Debian package openclipart-svg."

    def __init__(self):
        self.summary: dict = {}

    def missing(self) -> str | None:
        if not DEFAULT_ROOT.is_dir():
            return f"apt-get install -y {APT_PACKAGE}"
        try:
            svgmod.renderer_name()
        except MissingDependencyError as exc:
            return str(exc)
        return None

    def load(self, split: str, **options) -> Pairs:
        if options.get("root") is not None:  # an explicit folder replaces the Debian package
            if split not in self.splits:
                raise InputError(f"split: dataset {self.name!r} has splits {', '.join(self.splits)}; got {split!r}")
            self.check_options(options)
            svgmod.renderer_name()
            return self._load(split, **options)
        return super().load(split, **options)

    def _load(self, split: str, root=None, size: int = 224, text: str = "title+keywords",
              max_per_title: int | None = 50, limit: int | None = None, max_files: int | None = None,
              workers: int | None = None, timeout: float = 60.0, max_bytes: int = 8_000_000,
              cache_dir=None) -> Pairs:
        """Load one split, rendering (once) what is not cached yet.

        Parameters
        ----------
        root : str or path-like, optional
            Folder of SVG files in category sub-folders (default: the Debian package).
        size : int
            Side of the square RGB rendering, in pixels.
        text : {"title+keywords", "title", "description", "keywords"}
            The text view; ``description`` falls back to the title when there is none.
        max_per_title : int or None
            Keep at most this many drawings per normalised title (whole collections share
            one title); None keeps all.
        limit : int, optional
            Keep only the first ``limit`` drawings of the split (by path), for quick runs.
        max_files : int, optional
            Only look at the first ``max_files`` SVG files under ``root`` (by path).
        workers : int, optional
            Rendering processes (default: the CPUs available, at most 4).
        timeout : float
            Seconds one rendering may take before the drawing is skipped.
        max_bytes : int
            Skip SVG files larger than this (checked on every load, never remembered).
        cache_dir : str or path-like, optional
            Cache folder for the catalogue and the PNG files (default: the user cache).

        Returns
        -------
        Pairs
            ``image``: PNG paths; ``text``: strings; labels: category index; metadata
            ``title``, ``title_key``, ``keywords``, ``description``, ``svg_path``,
            ``png_path``, ``category``.  ``pairs.summary`` (and ``self.summary``) counts
            parsed, rendered, cached and skipped drawings with reasons.
        """
        size = check_int(size, "size", low=8, high=4096)
        check_choice(text, "text", TEXT_VIEWS)
        if max_per_title is not None:
            max_per_title = check_int(max_per_title, "max_per_title", low=1)
        limit = None if limit is None else check_int(limit, "limit", low=1)
        max_files = None if max_files is None else check_int(max_files, "max_files", low=1)
        workers = default_workers() if workers is None else check_int(workers, "workers", low=1)
        timeout = check_float(timeout, "timeout", low=0, low_open=True)
        max_bytes = check_int(max_bytes, "max_bytes", low=1)
        root = check_folder_arg(root, "root") if root is not None else DEFAULT_ROOT
        cache = FileCache("openclipart", folder=cache_dir)

        entries = catalogue(root, max_files=max_files, cache=cache)
        kept = select(entries, max_per_title)
        categories = sorted({e["category"] for e in kept})
        chosen = [e for e in kept if split_of(e["title_key"]) == split]
        if limit is not None:
            chosen = chosen[:limit]
        rendered, skipped = self._render(chosen, root, size, cache, workers, timeout, max_bytes)
        items = [(e, png) for e, png in zip(chosen, rendered) if png is not None]

        parse_errors = [e for e in entries if e["status"] != "ok"]
        reasons = Counter(r for r, _ in skipped.values())
        self.summary = {
            "files": len(entries), "parsed": len(entries) - len(parse_errors), "parse_errors": len(parse_errors),
            "parse_error_files": [e["rel"] for e in parse_errors][:20],
            "kept_after_max_per_title": len(kept), "split": split, "in_split": len(chosen),
            "rendered_now": self._rendered_now, "from_cache": self._from_cache,
            "render_skipped": len(skipped), "render_skipped_by_reason": dict(reasons),
            "render_skipped_files": [f"{rel}: {msg}" for rel, (_, msg) in list(skipped.items())[:20]],
            "returned": len(items), "size": size, "renderer": svgmod.renderer_name(),
        }
        pairs = Pairs({"image": [png for _, png in items],
                       "text": [text_view(e, text) for e, _ in items]},
                      labels=np.array([categories.index(e["category"]) for e, _ in items], dtype=np.int64),
                      ids=np.array([e["rel"] for e, _ in items]),
                      metadata={"title": [e["title"] for e, _ in items],
                                "title_key": [e["title_key"] for e, _ in items],
                                "keywords": [", ".join(e["keywords"]) for e, _ in items],
                                "description": [e["description"] for e, _ in items],
                                "category": [e["category"] for e, _ in items],
                                "svg_path": [str(root / e["rel"]) for e, _ in items],
                                "png_path": [png for _, png in items]},
                      label_names=categories, name=self.name)
        pairs.summary = self.summary
        return pairs

    def _render(self, chosen, root, size, cache, workers, timeout, max_bytes):
        """PNG path (or None) per entry; renders what is missing, remembers failures.

        Failures of the drawing itself (``render_error``, ``blank``) are remembered per
        rendering key; ``timeout`` and ``too_large`` depend on this load's ``timeout`` and
        ``max_bytes``, so they are not, and a later load with larger limits tries again.
        """
        renderer = svgmod.renderer_name()
        fail_path = cache.folder / f"render-failures-{size}.json"
        try:
            failures = json.loads(fail_path.read_text(encoding="utf-8"))
            failures = failures if isinstance(failures, dict) else {}
        except (OSError, ValueError):
            failures = {}
        # older files may hold setting-dependent skips, or be hand-edited: keep only real failures
        failures = {k: v for k, v in failures.items()
                    if isinstance(v, list) and len(v) == 2 and v[0] not in _NOT_REMEMBERED}
        out: list = [None] * len(chosen)
        skipped: dict = {}
        todo = []
        self._from_cache = 0
        for i, e in enumerate(chosen):
            key = content_key("openclipart-png", e["sha256"], size, svgmod.RENDER_VERSION, renderer)
            png = cache.path(key, ".png")
            if cache.is_valid(png):
                out[i] = str(png)
                self._from_cache += 1
            elif key in failures:
                skipped[e["rel"]] = tuple(failures[key])
            else:
                todo.append((i, key, png))
        self._rendered_now = 0
        jobs = [(str(root / chosen[i]["rel"]), str(png), size, chosen[i].get("aspect"), max_bytes, timeout)
                for i, _, png in todo]
        try:
            with progress_bar(f"openclipart: rendering {size}px", len(jobs)) as advance:
                for j, (status, msg) in run_jobs(svgmod.render_job, jobs, workers=workers, timeout=timeout):
                    i, key, png = todo[j]
                    if status == "ok":
                        cache.record(png)
                        out[i] = str(png)
                        self._rendered_now += 1
                    else:
                        if status not in _NOT_REMEMBERED:
                            failures[key] = [status, msg]
                        skipped[chosen[i]["rel"]] = (status, msg)
                    advance()
                    if (j + 1) % 500 == 0:
                        cache.flush()  # an interrupted run resumes from here
        finally:
            cache.flush()
            if todo:
                try:
                    atomic_write_json(fail_path, failures)
                except OSError:
                    pass
        return out, skipped
