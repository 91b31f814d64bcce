"""``python -m jointspace`` runs the command line."""

from .cli import run

run()
