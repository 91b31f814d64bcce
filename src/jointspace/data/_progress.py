"""A rich progress bar for long data work (rendering, synthesis), shown on stderr."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def progress_bar(description: str, total: int, enabled: bool | None = None):
    """Yield ``advance(n=1)``; draws a transient bar when stderr is a terminal.

    ``JOINTSPACE_PROGRESS=0`` turns bars off, ``=1`` forces them on.
    """
    if enabled is None:
        env = os.environ.get("JOINTSPACE_PROGRESS", "")
        enabled = env == "1" or (env != "0" and sys.stderr.isatty())
    if not enabled or total <= 0:
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                  transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
