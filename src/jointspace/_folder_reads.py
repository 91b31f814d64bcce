"""Reading a saved folder whole while a writer may replace it (see :mod:`jointspace._io`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ._io import _a, recover_dir
from .errors import InputError, JointspaceError

#: how many times :func:`read_whole` reads a folder that writers keep replacing before it gives up
READ_ATTEMPTS = 5


def folder_version(path) -> tuple | None:
    """What tells one saved version of folder ``path`` from the next (None when nothing is there).

    Each save moves a new folder into place (:func:`jointspace._io.atomic_dir`), another inode
    while the previous one still exists; files a user adds to the folder, or the previous
    version put back by :func:`jointspace._io.recover_dir`, keep it.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def read_whole(path, read: Callable[[], object], kind: str = "saved", arg: str = "folder"):
    """``read()`` of the saved folder ``path``, all of it from one version of the folder.

    A loader reads a folder's files one after another; a save that replaces the folder
    meanwhile (:func:`jointspace._io.atomic_dir`) would have it read the manifest of one
    version and the files of the next, reported as damaged or silently mixed.  The folder is
    compared before and after ``read()``, and read again when it was replaced; a version a
    killed writer left aside is put back first (:func:`jointspace._io.recover_dir`).

    Parameters
    ----------
    path : path-like
        The folder read.
    read : callable
        ``read() -> object``: reads ``path`` whole and returns what it loaded.
    kind, arg : str
        What the folder holds (``"index"``) and the argument that named it, for messages.

    Returns
    -------
    object
        What ``read()`` returned for one version of the folder.

    Raises
    ------
    InputError
        The folder was replaced during each of :data:`READ_ATTEMPTS` reads.  An error of
        ``read()`` while the folder stayed as it was is raised as it is.
    """
    path = Path(path)
    for _ in range(READ_ATTEMPTS):
        recover_dir(path)
        before = folder_version(path)
        try:
            result = read()
        except (JointspaceError, OSError):
            if folder_version(path) == before:
                raise
            continue
        if folder_version(path) == before:
            return result
    raise InputError(f"{arg}: expected {_a(kind)} folder that holds still while it is read, got {str(path)!r}, "
                     f"which was replaced {READ_ATTEMPTS} times while it was read; try again once the process "
                     "saving it is done")
