"""Every example in docs/ runs, and the command-line reference is the CLI's own help.

Conventions (stated for writers in docs/index.md):

- a fenced ```python block is executed; the blocks of one page run in order in one namespace,
  in a fresh temporary working folder shared with that page's console blocks;
- in a fenced ```console block every line starting with ``$ `` is a command, run with bash in
  that folder (a line ending in ``\\`` continues on the next); it must exit 0. Other lines
  are output shown to the reader and are not checked;
- ```bash, ```text and other blocks are shown, never run;
- ``<!-- docs-test: skip -->`` on the line just above a fence keeps that block from running
  (long examples; the page says so).
"""

from __future__ import annotations

import doctest
import importlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
SKIP = "<!-- docs-test: skip -->"
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
PAGES = sorted(p.name for p in DOCS.glob("*.md"))


def blocks(text: str):
    """``(kind, body, line)`` for every fenced block of a page that is to run."""
    for m in FENCE.finditer(text):
        kind = m.group("info").strip().split(" ")[0]
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if kind in ("python", "console") and before.strip() != SKIP:
            yield kind, m.group("body"), text.count("\n", 0, m.start()) + 1


def commands(body: str) -> list[str]:
    """The ``$ `` commands of a console block, continuation lines joined."""
    out, current = [], None
    for line in body.splitlines():
        if current is not None:
            current += "\n" + line
        elif line.startswith("$ "):
            current = line[2:]
        else:
            continue
        if not current.endswith("\\"):
            out.append(current)
            current = None
    assert current is None, f"a command ends with a line continuation: {current!r}"
    return out


def test_fence_parser_reads_the_conventions():
    page = ("intro\n```python\nx = 1\n```\n<!-- docs-test: skip -->\n```python\nslow()\n```\n"
            "```bash\nmake demo\n```\n```console\n$ jointspace a \\\n    --b c\noutput line\n$ ls\n```\n")
    found = list(blocks(page))
    assert [(k, b) for k, b, _ in found] == [("python", "x = 1\n"),
                                            ("console", "$ jointspace a \\\n    --b c\noutput line\n$ ls\n")]
    assert commands(found[1][1]) == ["jointspace a \\\n    --b c", "ls"]


def _env() -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", JOINTSPACE_PROGRESS="0", MPLBACKEND="Agg",
               COLUMNS="120", PYTHONPATH=os.pathsep.join(filter(None, [str(DOCS.parent / "src"),
                                                                       env.get("PYTHONPATH")])))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


@pytest.mark.parametrize("page", [p for p in PAGES if any(blocks((DOCS / p).read_text(encoding="utf-8")))])
def test_page_examples_run(page, tmp_path, monkeypatch, one_thread):
    runnable = list(blocks((DOCS / page).read_text(encoding="utf-8")))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("JOINTSPACE_PROGRESS", "0")
    namespace: dict = {"__name__": f"docs_{Path(page).stem}"}
    env = _env()
    for kind, body, line in runnable:
        where = f"docs/{page}, block at line {line}"
        start = time.perf_counter()
        if kind == "python":
            exec(compile(body, where, "exec"), namespace)
        for cmd in commands(body) if kind == "console" else ():
            done = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=300)
            assert done.returncode == 0, (f"{where}: `{cmd}` exited {done.returncode}\n"
                                          f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}")
        print(f"{where}: {time.perf_counter() - start:.1f} s")  # shown with pytest -s


def test_cli_reference_writes_a_file_and_answers_help(tmp_path, capsys, monkeypatch):
    from jointspace.cli.reference import main, render_reference

    monkeypatch.chdir(tmp_path)
    assert main([str(tmp_path / "cli.md")]) == 0
    assert (tmp_path / "cli.md").read_text() == render_reference()
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0 and "usage: python -m jointspace.cli.reference" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.md"]   # no file named --help


def test_cli_reference_is_current():
    from jointspace.cli.reference import render_reference

    committed = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert committed == render_reference(), (
        "docs/cli.md is stale: regenerate it with `python -m jointspace.cli.reference docs/cli.md`")


def test_cli_reference_holds_every_command_help():
    from jointspace.cli import build_parser
    from jointspace.cli.reference import iter_commands

    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    paths = [path for path, _ in iter_commands(build_parser())]
    assert ("fit",) in paths and ("plot", "map") in paths
    for path in paths:
        assert f"\n## {' '.join(('jointspace',) + path)}\n" in text
        assert f"usage: {' '.join(('jointspace',) + path)} " in text


def _modules_with_examples() -> list[str]:
    root = DOCS.parent / "src" / "jointspace"
    return sorted(".".join(("jointspace",) + path.relative_to(root).with_suffix("").parts)
                  for path in root.rglob("*.py") if ">>> " in path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("module", _modules_with_examples())
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    """Each docstring's Examples run as written (those marked ``# doctest: +SKIP`` excepted)."""
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(importlib.import_module(module), report=True)
    assert not result.failed, f"{module}: {result.failed} docstring example(s) failed"


# `jointspace.models.cca.CanonicalCorrelation` and the like, as the pages name implementations
NAME = re.compile(r"`(jointspace(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`")


@pytest.mark.parametrize("page", PAGES)
def test_named_implementations_exist(page):
    names = sorted(set(NAME.findall((DOCS / page).read_text(encoding="utf-8"))))
    missing = []
    for name in names:
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            try:
                for attr in parts[cut:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                missing.append(name)
            break
        else:
            missing.append(name)
    assert not missing, f"docs/{page} names what does not exist: {missing}"


SOURCE = "<!-- numbers from: "


def _numbers(obj):
    if isinstance(obj, bool):
        return
    if isinstance(obj, (int, float)):
        yield float(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)


def _cell_numbers(cell: str):
    """``(value, decimals)`` of every plain number in a table cell."""
    for m in re.finditer(r"(?<![\w.:=])-?\d+(?:\.(\d+))?(?![\w.])", cell):
        yield float(m.group(0)), len(m.group(1) or "")


def test_benchmark_numbers_come_from_the_reports():
    """Each number in a table below ``<!-- numbers from: FILE -->`` is a value of FILE, rounded."""
    text = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    sections = text.split(SOURCE)[1:]
    assert sections, "docs/benchmarks.md cites no report"
    for section in sections:
        source, _, rest = section.partition(" -->")
        values = list(_numbers(json.loads((DOCS.parent / source.strip()).read_text(encoding="utf-8"))))
        rows = []
        for line in rest.lstrip("\n").splitlines():
            if not line.startswith("|"):
                break
            rows.append(line)
        assert len(rows) > 2, f"no table below the marker for {source}"
        header = [c.strip() for c in rows[0].strip("|").split("|")]
        checked = 0
        for row in rows[2:]:
            cells = [c.strip() for c in row.strip("|").split("|")]
            for col, cell in list(zip(header, cells))[1:]:  # the first column names the row
                for value, decimals in _cell_numbers(cell):
                    found = any(abs(v - value) <= 0.5 * 10 ** -decimals + 1e-9
                                for v in values)
                    assert found, f"docs/benchmarks.md: {value} ({col}) is not a value of {source}"
                    checked += 1
        assert checked, f"no number checked below the marker for {source}"


LINK = re.compile(r"\]\((?!https?:|#)([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_resolve(page):
    text = (DOCS / page).read_text(encoding="utf-8")
    broken = [t for t in LINK.findall(text) if not (DOCS / t).exists()]
    assert not broken, f"docs/{page} links to missing files: {broken}"


def test_every_model_regulariser_and_suite_is_documented():
    from jointspace import list_models
    from jointspace.bench import list_suites
    from jointspace.objectives.regularizers import REGULARIZERS

    text = "\n".join((DOCS / p).read_text(encoding="utf-8") for p in PAGES)
    for kind, names in (("model", list_models()), ("regulariser", REGULARIZERS), ("bench suite", list_suites())):
        missing = [n for n in names if f"`{n}`" not in text]
        assert not missing, f"no docs page names the {kind}s {missing} (in backticks)"


def test_index_lists_every_page():
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    missing = [p for p in PAGES if p != "index.md" and f"]({p})" not in index]
    assert not missing, f"docs/index.md does not link {missing}"
