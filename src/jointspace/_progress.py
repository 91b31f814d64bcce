"""A rich progress bar on stderr for long work (rendering, synthesis, embedding runs)."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def progress_bar(description: str, total: int, enabled: bool | None = None):
    """Yield ``advance(n=1)``; draws a transient bar when stderr is a terminal.

    ``JOINTSPACE_PROGRESS=0`` turns bars off, ``=1`` forces them on (drawn as on a terminal).
    Otherwise a stderr that is not a terminal gets nothing, not even rich's closing empty line.
    """
    env = os.environ.get("JOINTSPACE_PROGRESS", "")
    if enabled is None:
        enabled = env == "1" or (env != "0" and sys.stderr.isatty())
    if not enabled or total <= 0:
        yield lambda n=1: None
        return
    from rich.console import Console

    console = Console(stderr=True, force_terminal=True if env == "1" else None)
    if not console.is_terminal:
        yield lambda n=1: None
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
