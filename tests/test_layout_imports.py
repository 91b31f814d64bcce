"""Imports run one way: the benchmark suites (``jointspace.bench``) sit above the library, and
only the command line reaches them."""

import ast
from pathlib import Path

import jointspace

PACKAGE = Path(jointspace.__file__).parent
#: parts of the package allowed to import the benchmark suites
ABOVE_BENCH = ("bench", "cli")


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = parts[:-1]   # the package a relative import starts from (also for __init__.py)
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)
    return out


def _library_files():
    for path in sorted(PACKAGE.rglob("*.py")):
        top = path.relative_to(PACKAGE).parts[0]
        if top not in ABOVE_BENCH:
            yield path


def test_the_import_resolver_sees_relative_imports():
    # an independent check of the resolver on a file whose imports are known
    names = _imported_modules(PACKAGE / "bench" / "openclipart.py")
    assert "jointspace.bench._contrastive" in names
    assert "jointspace.eval.search_spaces" in names


def test_no_library_module_imports_the_benchmark_suites():
    files = list(_library_files())
    assert len(files) > 50   # the walk found the package
    offenders = {str(p.relative_to(PACKAGE)): sorted(m for m in _imported_modules(p)
                                                     if m == "jointspace.bench" or m.startswith("jointspace.bench."))
                 for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_module_imports_the_old_recipes_place():
    for path in PACKAGE.rglob("*.py"):
        assert "jointspace.train.recipes" not in _imported_modules(path), path


def test_every_module_compiles_without_a_warning():
    # an invalid escape such as "\," in a docstring is a warning now and an error in a later Python
    import warnings

    for path in sorted(PACKAGE.rglob("*.py")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            compile(path.read_text(), str(path), "exec")
