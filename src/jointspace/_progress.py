"""The one progress bar of the package: rich, on stderr, for long work (rendering, synthesis,
embedding runs, training).

Whether a bar is drawn is decided in one place, :func:`progress_console`:

* ``enabled=False`` (the caller asked for no bar): never;
* ``JOINTSPACE_PROGRESS=0``: never, whatever the caller asked;
* ``JOINTSPACE_PROGRESS=1``: always, drawn as on a terminal (also into a pipe or a log);
* otherwise: when stderr is a terminal.  A stderr that is not a terminal gets nothing, not
  even rich's closing empty line.
"""

from __future__ import annotations

import contextlib
import os
import sys

#: the environment variable that turns bars off (``0``) or forces them on (``1``)
PROGRESS_ENV = "JOINTSPACE_PROGRESS"


def progress_console(enabled: bool | None = None):
    """The rich ``Console`` a bar draws on, or None when no bar should be drawn.

    Parameters
    ----------
    enabled : bool or None
        False: no bar.  True or None: as :data:`PROGRESS_ENV` and the terminal say (see the
        module docstring).
    """
    if enabled is False:
        return None
    env = os.environ.get(PROGRESS_ENV, "").strip()
    if env == "0" or (env != "1" and not sys.stderr.isatty()):
        return None
    from rich.console import Console

    console = Console(file=sys.stderr, force_terminal=True if env == "1" else None)
    return console if console.is_terminal else None


class Bar:
    """A transient bar: ``advance(n)``, ``update(completed=..., info=...)``, ``close()``.

    Silent (every method does nothing) when :func:`progress_console` says no bar.

    Parameters
    ----------
    description : str
    total : int
        Units of the whole task; a bar of no units is never drawn.
    enabled : bool or None
        As in :func:`progress_console`.
    completed : int
        Units already done (a resumed run).
    info : bool
        Show a free text field after the counts (the loss and throughput of training).
    """

    def __init__(self, description: str, total: int, *, enabled: bool | None = None, completed: int = 0,
                 info: bool = False):
        self.progress = None
        console = progress_console(enabled) if total > 0 else None
        if console is None:
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        columns = [TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn()]
        columns += [TextColumn("{task.fields[info]}")] if info else [TimeElapsedColumn()]
        self.progress = Progress(*columns, TimeRemainingColumn(), console=console, transient=True)
        self.progress.start()
        self.task = self.progress.add_task(description, total=total, completed=completed, info="")

    @property
    def drawn(self) -> bool:
        """Whether a bar is shown."""
        return self.progress is not None

    def advance(self, n: int = 1) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, n)

    def update(self, completed: int | None = None, info: str | None = None) -> None:
        if self.progress is not None:
            fields = {} if info is None else {"info": info}
            self.progress.update(self.task, completed=completed, **fields)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


@contextlib.contextmanager
def progress_bar(description: str, total: int, enabled: bool | None = None):
    """Yield ``advance(n=1)`` of a :class:`Bar` (closed on leaving)."""
    bar = Bar(description, total, enabled=enabled)
    try:
        yield bar.advance
    finally:
        bar.close()
