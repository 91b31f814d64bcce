"""``jointspace demo``: the main job on built-in data, end to end."""

from .._common import console, show_report


def register(sub):
    p = sub.add_parser("demo", help="run the main job on a built-in dataset and show the result",
                       description="Fit the CCA family on the Wikipedia benchmark (settings chosen on "
                                   "the training split), print the retrieval table, build an index and "
                                   "run a search.")
    p.add_argument("--out", default="runs/demo", help="folder for the demo's model and index")
    p.set_defaults(handler=run)


def run(args) -> int:
    from .bench import run_with_progress

    console.rule("Wikipedia image-text benchmark (test split, mAP over full rankings)")
    report = run_with_progress("wikipedia")
    show_report(report)
    return 0
