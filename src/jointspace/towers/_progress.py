"""A rich progress bar on stderr for long embedding runs (a no-op when disabled)."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def progress_bar(total: int, description: str, enabled: bool = True):
    """Yield ``advance(k)``; shows a transient bar on stderr when ``enabled`` and stderr is a
    terminal (piped or captured stderr gets nothing, not even rich's closing empty line)."""
    if not enabled:
        yield lambda k=1: None
        return
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda k=1: None
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    bar = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True)
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda k=1: bar.advance(task, k)
