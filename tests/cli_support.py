"""Helpers shared by the command-line tests."""

from jointspace.cli import main


def run(capsys, *argv):
    """Run ``jointspace ARGV...`` in-process; returns (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> bool:
    """Whether stderr is a single line without a traceback (the CLI's error contract)."""
    return "Traceback" not in err and len(err.strip().splitlines()) == 1
