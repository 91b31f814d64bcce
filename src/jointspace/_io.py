"""Atomic writes: a reader never sees a half-written file or folder.

Folder saves (:func:`atomic_dir`) replace only what is safe to replace: nothing, an empty
folder, or a saved artefact of the same kind (a model by a model, an index by an index, a
checkpoint by a checkpoint: each artefact's module supplies the test of its own layout).
:func:`check_replaceable` and :func:`check_out_file` run the same checks up front, so a command
can refuse a bad ``--out`` before any expensive work.  A process killed while it replaces a
folder leaves the previous version aside; loaders call :func:`recover_dir` to put it back.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from .errors import InputError

try:
    import fcntl
except ImportError:   # not POSIX: no lock tells a live writer's folder, its age alone does
    fcntl = None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def set_default_mode(path) -> None:
    """Give a file the permissions a plain ``open()`` would (0666 less the umask); some writers
    (safetensors) create files 0600."""
    os.chmod(path, 0o666 & ~_umask())


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename.

    A write of :data:`LARGE_WRITE` bytes or more also deletes the temporary files that earlier
    writes to ``path`` left when they were killed (``.NAME.XXXXXXXX.tmp``, as large as the file)
    once they are :data:`STALE_TEMPORARY_S` old; small files (cache entries written by the
    thousand into one folder) are not worth listing the folder each time.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if len(data) < LARGE_WRITE:
        return
    now = time.time()
    for left in _own_temporaries(path, ".tmp"):
        with contextlib.suppress(OSError):   # gone already, or not ours to delete
            if not left.is_symlink() and left.is_file() and now - left.stat().st_mtime > STALE_TEMPORARY_S:
                left.unlink()


#: from this size (bytes) on, :func:`atomic_write_bytes` deletes what killed writes of its file left
LARGE_WRITE = 1 << 20

#: a temporary file of :func:`atomic_write_bytes` older than this (seconds) belongs to a writer
#: that was killed: a write takes far less; so does a temporary folder of :func:`atomic_dir` in
#: which nothing changed for this long and that no live writer holds
STALE_TEMPORARY_S = 3600.0


def remove_stale_temporaries(folder, older_than_s: float = STALE_TEMPORARY_S) -> int:
    """Delete the temporary files (``.NAME.*.tmp``) that writers killed during
    :func:`atomic_write_bytes` left in ``folder``, when older than ``older_than_s`` seconds (a
    younger one may belong to a writer still at work).  Returns how many were deleted."""
    removed = 0
    now = time.time()
    for tmp in Path(folder).glob(".*.tmp"):
        with contextlib.suppress(OSError):   # gone already, or not ours to delete
            if tmp.is_file() and now - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()
                removed += 1
    return removed


def atomic_write_text(path, text: str) -> None:
    """Atomic text write (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> None:
    """Atomic JSON write, indented and key-sorted so files diff well."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json_object(path) -> dict | None:
    """The JSON object in file ``path``, or None when it is missing, unreadable or not an object
    (for tests of what a folder holds)."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _a(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _listing(names: list[str], limit: int = 3) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _as_path(path, arg: str, what: str) -> Path:
    """``path`` as a Path with a usable last component, or :class:`InputError`."""
    try:
        text = os.fspath(path)
    except TypeError:
        raise InputError(f"{arg}: expected a {what} path, got {type(path).__name__}") from None
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    out = Path(text)
    if not text or out.name in ("", ".", ".."):
        raise InputError(f"{arg}: expected a {what} name, got {text!r}")
    return out


def _check_parent(path: Path, arg: str) -> None:
    """The nearest existing ancestor of ``path`` must be a folder this process can write in
    (so the parents, then the file or folder, can be created)."""
    parent = path.absolute().parent
    while not parent.exists() and not parent.is_symlink() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{arg}: cannot create {str(path)!r}: {str(parent)!r} is not a folder")
    # a real probe, not os.access (which says yes to root on a read-only file system such as /proc)
    try:
        fd, probe = tempfile.mkstemp(prefix=".jointspace-probe.", dir=parent)
    except OSError as exc:
        raise InputError(f"{arg}: cannot write in {str(parent)!r} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def check_replaceable(path, kind: str | None = None, *, is_kind: Callable[[Path], bool] | None = None,
                      arg: str = "out") -> Path:
    """Check that a folder may be written at ``path`` without destroying anything else.

    Writing is allowed when ``path`` does not exist, is an empty folder, or is a saved artefact of
    the same ``kind`` (a folder for which ``is_kind`` is true).  Nothing is created or changed.

    Parameters
    ----------
    path : str or path-like
        The folder to write.
    kind : str, optional
        What is being saved (``"model"``, ``"index"``, ...), used in messages.
    is_kind : callable, optional
        ``is_kind(path) -> bool``: whether an existing folder holds an artefact of that kind
        (each artefact's module has one, e.g. :func:`jointspace.models.base.is_saved_model`).
        Without it only a missing or empty folder may be written.
    arg : str
        The argument name used in messages (e.g. ``"--out"`` from the command line).

    Returns
    -------
    pathlib.Path
        ``path`` as a Path.

    Raises
    ------
    InputError
        ``path`` has no usable name (``""``, ``"."``, ``".."``, ``"/"``), its parent cannot be
        created, or something else is there (a file, a link, a folder with other content).
    """
    path = _as_path(path, arg, "folder")
    _check_parent(path, arg)
    wanted = (f"expected a new or empty folder or {_a(kind)} to replace" if kind
              else "expected a new or empty folder")
    if path.is_symlink():
        raise InputError(f"{arg}: {str(path)} exists and is a symbolic link; {wanted}")
    if not path.exists():
        return path
    if not path.is_dir():
        raise InputError(f"{arg}: {str(path)} exists and is a file, not a folder; {wanted}")
    try:
        names = os.listdir(path)
    except OSError as exc:
        raise InputError(f"{arg}: {str(path)} exists and cannot be read ({exc.strerror or exc}); {wanted}") from None
    if not names or (is_kind is not None and is_kind(path)):
        return path
    what = f"is not a saved {kind}" if kind else "is not empty"
    raise InputError(f"{arg}: {str(path)} exists and {what} (it holds {_listing(names)}); {wanted}")


def check_out_file(path, arg: str = "out") -> Path:
    """Check that ``path`` can be written as a file: a file name, not a folder, with a usable parent.

    An existing file is fine (it is replaced).  Nothing is created or changed.

    Parameters
    ----------
    path : str or path-like
    arg : str
        The argument name used in messages (e.g. ``"--out"``).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    InputError
        ``path`` has no usable name, is a folder, or its parent cannot be created.
    """
    path = _as_path(path, arg, "file")
    if path.is_dir():
        raise InputError(f"{arg}: expected a file to write, got the folder {str(path)!r}")
    _check_parent(path, arg)
    return path


#: how long a reader waits for a writer that is between its two renames before it puts the
#: previous version back (the renames follow each other at once; only a killed writer stops there)
RECOVER_WAIT_S = 0.5


def _asides(path: Path) -> list[Path]:
    """Previous versions of folder ``path`` moved aside by :func:`_move_into_place`, newest first."""
    if not path.parent.is_dir():
        return []
    found = [h / path.name for h in path.parent.glob(f".{glob.escape(path.name)}.*.old")
             if h.is_dir() and (h / path.name).is_dir()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def recover_dir(path) -> bool:
    """Put back the previous version of folder ``path`` if a writer was killed while replacing it.

    Replacing a folder takes two renames (:func:`_move_into_place`: the old folder aside, the
    new one into place); a process killed between them leaves no folder at ``path`` and the
    complete previous version aside.  Loaders call this first, so the previous version stays
    loadable.  Nothing is done when ``path`` exists or nothing was set aside.

    Returns
    -------
    bool
        Whether a previous version was put back.
    """
    path = Path(path)
    if path.exists() or path.is_symlink() or not _asides(path):
        return False
    time.sleep(RECOVER_WAIT_S)   # a live writer finishes its second rename meanwhile
    asides = _asides(path)
    if path.exists() or not asides:
        return False
    try:
        os.replace(asides[0], path)
    except OSError:       # another reader put it back first, or the writer finished
        return path.exists()
    shutil.rmtree(asides[0].parent, ignore_errors=True)
    return True


def _move_into_place(tmp: Path, path: Path, check: Callable[[], object] | None = None) -> None:
    """Rename ``tmp`` to ``path``; an existing folder there is moved aside first and deleted last
    (a process killed in between leaves it aside, where :func:`recover_dir` finds it).

    Another process saving to ``path`` at the same moment may put its folder there, or move the
    one there aside, between these steps: the steps are taken again from what is there then
    (after ``check()``, which raises if that may not be replaced), so the last save wins."""
    first = True
    while True:
        if not first and check is not None:
            check()
        first = False
        if not path.exists():
            try:
                os.replace(tmp, path)
                return
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                continue   # another save put its folder there first: replace it
        holder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        aside = holder / path.name
        try:
            os.replace(path, aside)
        except FileNotFoundError:   # another save moved it aside first
            shutil.rmtree(holder, ignore_errors=True)
            continue
        except BaseException:
            shutil.rmtree(holder, ignore_errors=True)
            raise
        try:
            os.replace(tmp, path)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):   # another save's folder is there now
                shutil.rmtree(holder, ignore_errors=True)
                continue
            os.replace(aside, path)
            shutil.rmtree(holder, ignore_errors=True)
            raise
        except BaseException:
            os.replace(aside, path)
            shutil.rmtree(holder, ignore_errors=True)
            raise
        shutil.rmtree(holder, ignore_errors=True)
        return


#: the names an artefact folder's writer put in it (see :func:`atomic_dir`'s ``keep_others``)
WRITTEN_FILE = ".jointspace-written.json"


def written_names(folder: Path) -> set[str] | None:
    """The names :data:`WRITTEN_FILE` lists in ``folder``, or None (no list, or unreadable)."""
    try:
        names = json.loads((folder / WRITTEN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return set(names) if isinstance(names, list) and all(isinstance(n, str) for n in names) else None


def _carry_others(old: Path, new: Path) -> list[str]:
    """Move into ``new`` what ``old`` holds that its writer did not write (a user's plots or
    notes beside a model); returns the names moved.  A folder without the writer's list (saved
    before there was one) is taken to hold only what its writer wrote."""
    owned = written_names(old)
    if owned is None:
        return []
    moved = []
    for entry in sorted(old.iterdir(), key=lambda p: p.name):
        if entry.name == WRITTEN_FILE or entry.name in owned or os.path.lexists(new / entry.name):
            continue
        os.replace(entry, new / entry.name)
        moved.append(entry.name)
    return moved


def _hold(folder: Path) -> int | None:
    """Lock ``folder`` for as long as its writer lives (the kernel lets go when it dies); the
    descriptor holding the lock, or None where folders cannot be locked."""
    if fcntl is None:
        return None
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError:
            os.close(fd)
    return None


def _held(folder: Path) -> bool:
    """Whether a live writer holds ``folder``'s lock (see :func:`_hold`)."""
    if fcntl is None:
        return False
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:       # a file system without locks: the age alone tells
        return False
    finally:
        os.close(fd)      # lets go of the lock taken, if any
    return False


def _last_change(folder: Path) -> float:
    """The latest modification time of ``folder`` and of everything under it."""
    latest = folder.lstat().st_mtime
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                latest = max(latest, os.lstat(os.path.join(root, name)).st_mtime)
    return latest


def _own_temporaries(path: Path, suffix: str) -> list[Path]:
    """The folders :func:`atomic_dir` names for folder ``path`` with ``suffix`` (``.tmp``: being
    written, ``.old``: the previous version set aside), ``.NAME.XXXXXXXX<suffix>``; not those of
    another target whose name starts with ``NAME.`` (``.NAME.v2.XXXXXXXX<suffix>``)."""
    own = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}{re.escape(suffix)}")   # mkdtemp's 8 characters
    return [p for p in path.parent.glob(f".{glob.escape(path.name)}.*{suffix}") if own.fullmatch(p.name)]


def _remove_dead_temporaries(path: Path, older_than_s: float = STALE_TEMPORARY_S) -> None:
    """Delete the temporary folders that writers of folder ``path`` killed inside
    :func:`atomic_dir` left beside it.

    Only folders named as :func:`atomic_dir` names those of ``path`` (``.NAME.XXXXXXXX.tmp``, not
    another target's), that no live writer holds and in which nothing changed for
    ``older_than_s`` seconds.  A folder found stale cannot become a writer's again: writers
    lock only the new folders they make.
    """
    now = time.time()
    for tmp in _own_temporaries(path, ".tmp"):
        with contextlib.suppress(OSError):   # gone already, or not ours to delete
            if (not tmp.is_symlink() and tmp.is_dir()
                    and now - _last_change(tmp) > older_than_s and not _held(tmp)):
                shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path, kind: str | None = None, *, is_kind: Callable[[Path], bool] | None = None,
               arg: str = "out", keep_others: bool = False):
    """Build a folder under a temporary name and move it into place on success.

    Parameters
    ----------
    path : str or path-like
        The folder to write.  It must be missing, an empty folder, or a saved artefact of the same
        ``kind`` (see :func:`check_replaceable`); anything else is refused before the body runs.
    kind : str, optional
        What is being saved, used in messages.
    is_kind : callable, optional
        ``is_kind(path) -> bool``: whether an existing folder may be replaced.
    arg : str
        The argument name used in messages.
    keep_others : bool
        Replacing a saved artefact keeps what else its folder holds (files and folders its
        writer did not write, e.g. plots saved into an index folder): the names written are
        listed in :data:`WRITTEN_FILE`, and whatever the old folder holds beyond its list moves
        into the new one.

    Yields
    ------
    pathlib.Path
        The temporary folder to fill.

    Notes
    -----
    If the body raises, or the folder cannot be moved into place, the temporary folder is
    removed and whatever was at ``path`` before is left untouched.  The check runs again just
    before the move, in case something appeared at ``path`` meanwhile.  The temporary folder is
    locked while its writer lives; one left by a writer that was killed is deleted by a later
    save to ``path`` once nothing in it has changed for :data:`STALE_TEMPORARY_S` seconds.
    """
    recover_dir(path)
    if Path(path).exists():   # what a writer killed while deleting its aside copy left behind
        for holder in _own_temporaries(Path(path), ".old"):
            shutil.rmtree(holder, ignore_errors=True)
    path = check_replaceable(path, kind, is_kind=is_kind, arg=arg)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    lock = _hold(tmp)
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        yield tmp
        if keep_others:
            (tmp / WRITTEN_FILE).write_text(json.dumps(sorted(p.name for p in tmp.iterdir())), encoding="utf-8")
        check_replaceable(path, kind, is_kind=is_kind, arg=arg)
        moved = _carry_others(path, tmp) if keep_others and path.is_dir() else []
        try:
            _move_into_place(tmp, path, check=lambda: check_replaceable(path, kind, is_kind=is_kind, arg=arg))
        except BaseException:
            for name in moved:   # the old folder is back in place: so is what it held
                os.replace(tmp / name, path / name)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if lock is not None:
            os.close(lock)
