"""``jointspace bench``: reproduce a benchmark table."""

from .._common import add_json_flag, err_console, print_json, progress, show_report


def register(sub):
    from ...bench import list_suites

    suites = list_suites()
    p = sub.add_parser("bench", help="reproduce a benchmark table (" + ", ".join(suites) + ")",
                       description="Run a benchmark suite end to end (settings chosen on the training or "
                                   "validation split, never on test) and print its table.",
                       epilog="suites: " + "; ".join(f"{k}: {v}" for k, v in suites.items()))
    p.add_argument("suite", help="suite name: " + ", ".join(suites))
    p.add_argument("--quick", action="store_true",
                   help="a smaller run: fewer settings tried and smaller samples, for a first look")
    p.add_argument("--out", help="also write the JSON report to this file (ending in .json)")
    p.add_argument("--figures", metavar="DIR",
                   help="suites that draw figures write them into DIR (fusion: alignment maps of the "
                        "re-ranking matcher; generative: each variant's grid of generations; orthogonality: "
                        "the Lagrange multiplier over training)")
    add_json_flag(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    if args.out is not None:
        from ..._io import check_out_file

        from ...errors import InputError

        if check_out_file(args.out, arg="--out").suffix.lower() != ".json":
            raise InputError(f"--out: the report is written as JSON; expected a file ending in .json, "
                             f"got {str(args.out)!r}")
    options = {"quick": args.quick}
    if args.figures is not None:
        options["plot_dir"] = _figures_dir(args.suite, args.figures)
    report = run_with_progress(args.suite, **options)
    if args.out:
        from ...eval.report import write_json

        write_json(report, args.out)
    if args.json:
        print_json(report)
    else:
        _show(args.suite, report)
    return 0


def _figures_dir(suite: str, folder: str) -> str:
    """``folder``, checked: the suite must draw figures, and the folder must be usable."""
    import importlib
    import inspect
    from pathlib import Path

    from ...bench import list_suites
    from ...errors import InputError

    if suite not in list_suites():
        return folder  # the unknown suite is reported by run_suite
    mod = importlib.import_module(f"jointspace.bench.{suite.replace('-', '_')}")
    if "plot_dir" not in inspect.signature(mod.run).parameters:
        raise InputError(f"--figures: suite {suite!r} draws no figures; drop it")
    from ..._io import check_out_file

    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise InputError(f"--figures: {folder} exists and is not a folder")
    # the figures are drawn as the suite goes, minutes in: a folder that cannot be made or written
    # in is refused now (in an existing folder, a figure's name stands for them all)
    check_out_file(path / "figure.png" if path.is_dir() else path, arg="--figures")
    return str(path)


def _show(name: str, report: dict) -> None:
    """The suite's own table when it has one (e.g. coherence), else the retrieval tables."""
    import importlib

    mod = importlib.import_module(f"jointspace.bench.{name.replace('-', '_')}")
    if hasattr(mod, "show"):
        mod.show(report)
    else:
        show_report(report)


def run_with_progress(name: str, **options) -> dict:
    """Run a suite, showing a progress bar when the suite reports its size."""
    import importlib

    from ...bench import run_suite

    try:
        mod = importlib.import_module(f"jointspace.bench.{name.replace('-', '_')}")
        total = mod.grid_size(**options) if hasattr(mod, "grid_size") else None
    except ImportError:
        total = None
    if total is None:
        with err_console.status(f"running bench {name}"):
            return run_suite(name, **options)
    with progress() as bar:
        task = bar.add_task(f"bench {name}: cross-validating", total=total)
        return run_suite(name, progress=lambda *_: bar.advance(task), **options)
