"""``jointspace demo``: the main jobs on built-in data, end to end.

1. The Wikipedia benchmark table (CCA family, settings chosen on the training split).
2. OpenClipart: a joint space learned by regularised CCA over the frozen EfficientNet-Lite0 and
   MiniLM towers, an index of every drawing, a few free-text searches with their galleries.
3. The search service on that index, until interrupted (skip with ``--no-serve``).
"""

import os
from pathlib import Path

from .._common import console, print_table, show_report

QUERIES = ("a red car", "a black cat", "a house with a tree", "an airplane", "a christmas tree")


def register(sub):
    p = sub.add_parser("demo", help="run the main jobs on built-in datasets and show the results",
                       description="Reproduce the Wikipedia benchmark table, learn a joint space of OpenClipart "
                                   "drawings and their titles over pretrained towers, search it with free text "
                                   "(galleries written as PNG), then serve the search page.")
    p.add_argument("--out", default="runs/demo", help="folder for the demo's models, index and galleries (default: runs/demo)")
    p.add_argument("--no-serve", action="store_true", help="stop after the searches instead of serving the page")
    p.add_argument("--port", type=int, default=8000, help="port of the search page (default: 8000)")
    p.set_defaults(handler=run)


def wikipedia_table() -> None:
    from .bench import run_with_progress

    console.rule("1. Wikipedia image-text benchmark (test split; mAP over full rankings)")
    show_report(run_with_progress("wikipedia", quick=True))


def openclipart_space(out: Path):
    """Fit (or reuse) the OpenClipart joint space and its index; return (model_dir, index_dir)."""
    from ...data.datasets import load_dataset
    from ...eval.report import make_report
    from ...eval.retrieval import evaluate_retrieval
    from ...index.faiss_index import Index
    from ...models.base import load_model
    from ...models.towered import fit_with_towers
    from ...data.pairs import concat_pairs
    from .._recorded import DATASET_BUILTIN, model_record
    from .index import unique_items

    console.rule("2. OpenClipart: drawings and their titles in one space (EfficientNet-Lite0 + MiniLM, CCA)")
    model_dir, index_dir = out / "openclipart-rcca", out / "openclipart-index"
    with console.status("loading OpenClipart (the first run renders every drawing once; later runs read a cache)"):
        splits = {s: load_dataset("openclipart", s) for s in ("train", "val", "test")}
    if (model_dir / "config.json").is_file():
        model = load_model(model_dir)
    else:
        console.print("embedding drawings and titles through the towers (cached for later runs) ...")
        model, _ = fit_with_towers(splits["train"], {"image": "efficientnet-lite0", "text": "minilm"},
                                   head="rcca", val_pairs=splits["val"], relevance="title_key")
        model.save(model_dir)
    report = make_report("openclipart", "test", [{"method": "regularised CCA over towers",
                                                  **evaluate_retrieval(model, splits["test"], relevance="title_key")}])
    show_report(report)
    if not (index_dir / "index.json").is_file() or Index.load(index_dir).info.get("unique_by") != "sha256":
        # one drawing filed under several categories is one rendered file: stored once, every path kept
        everything, metas, n_dup, _, _ = unique_items(concat_pairs([splits[s] for s in ("train", "val", "test")]), "image")
        index = Index.build(model.encode("image", everything["image"]), spec="auto", metadata=metas)
        console.print(f"{n_dup} drawings filed under several categories are stored once", highlight=False)
        index.info.update({**model_record(model_dir), "modality": "image", "dataset": "openclipart",
                           DATASET_BUILTIN: True, "split": "all", "unique_by": "sha256"})
        index.save(index_dir)
    return model_dir, index_dir


def plots(model_dir: Path, out: Path) -> Path:
    """A map of the joint space (t-SNE of 400 test pairs) for the page's "about" panel."""
    import shutil

    import numpy as np

    from ...data.datasets import load_dataset
    from ...models.base import load_model
    from ...viz.space_map import plot_joint_space

    folder = out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "map.png").is_file():
        test = load_dataset("openclipart", "test")
        test = test.subset(np.random.default_rng(0).choice(len(test), min(400, len(test)), replace=False))
        model = load_model(model_dir)
        with console.status("drawing a map of the joint space (t-SNE)"):
            plot_joint_space({m: model.encode(m, test[m]) for m in ("image", "text")}, folder / "map.png",
                             labels=test.labels, label_names=test.label_names, method="tsne",
                             title="OpenClipart test drawings and their texts in the joint space")
    first = out / f"gallery-{QUERIES[0].replace(' ', '-')}.png"
    if first.is_file():
        shutil.copyfile(first, folder / "gallery.png")
    return folder


def searches(model_dir: Path, index_dir: Path, out: Path) -> None:
    from ...index.results import search_with_metadata
    from ...viz.gallery import write_gallery
    from .._common import open_index

    index, model = open_index(str(index_dir), str(model_dir))
    hits = search_with_metadata(index, model.encode("text", list(QUERIES)), k=8)
    for query, results in zip(QUERIES, hits):
        for r in results:
            r["text"] = r["extra"].get("title") or r["text"]
        png = write_gallery(results, out / f"gallery-{query.replace(' ', '-')}.png", title=f"query: {query}")
        print_table(f'"{query}"', ["rank", "score", "title", "category"],
                    [[r["rank"], r["score"], (r["text"] or "")[:50], r["label"] or ""] for r in results[:5]])
        console.print(f"  gallery of the top 8: {png}", highlight=False)


def check_out(out, option: str = "--out") -> Path:
    """``out`` as a folder the demo can fill (created if missing): one that can be written, whose
    model, index, plots and galleries, if there, are the demo's.

    Raises
    ------
    InputError
        Naming ``option``, before any work.
    """
    import tempfile

    from ..._io import check_out_file, check_replaceable
    from ...errors import InputError
    from ...index.persistence import is_index_folder, is_saved_index
    from ...models.base import is_saved_model
    from ...models.rerank import is_saved_matcher
    from ...train.checkpoint import is_run_dir

    out = Path(out)
    if not str(out).strip():
        raise InputError(f"{option}: expected a folder for the demo's models, index and galleries, got {str(out)!r}")
    if out.exists() and not out.is_dir():
        raise InputError(f"{option}: expected a folder for the demo's models, index and galleries, got the file "
                         f"{str(out)!r}")
    # a saved artefact is not a demo folder: the demo's model, index, galleries and plots would
    # land inside it (an index's plots/ is what the search page shows about that index)
    for kind, is_kind in (("model", is_saved_model), ("index", is_index_folder),
                          ("cross-attention matcher", is_saved_matcher), ("run folder", is_run_dir)):
        if out.is_dir() and any(out.iterdir()) and is_kind(out):
            raise InputError(f"{option}: {str(out)!r} is a saved {kind}; expected a new or empty folder or an "
                             "earlier demo folder")
    check_replaceable(out / "openclipart-rcca", "model", is_kind=is_saved_model, arg=option)
    check_replaceable(out / "openclipart-index", "index", is_kind=is_saved_index, arg=option)
    if (out / "plots").exists() and not (out / "plots").is_dir():
        raise InputError(f"{option}: {str(out / 'plots')!r} is a file; the demo writes its map in a folder there")
    for query in QUERIES:
        check_out_file(out / f"gallery-{query.replace(' ', '-')}.png", arg=option)
    try:   # created now (the demo fills it next), and a file written there, so a refusal comes before the work
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise InputError(f"{option}: cannot write in the folder {str(out)!r} ({exc.strerror or exc}); choose "
                         "another folder") from None
    return out


def run(args) -> int:
    from ...errors import InputError

    if not 0 <= args.port <= 65535:
        raise InputError(f"--port: expected 0..65535, got {args.port}")
    created = _missing_folders(args.out)
    out = check_out(args.out)
    try:
        return _run(args, out)
    finally:
        for folder in created:   # the folders this run made (--out and its missing parents) and left empty
            if not folder.is_dir() or any(folder.iterdir()):
                break
            folder.rmdir()


def _missing_folders(out) -> list[Path]:
    """The folders of the path ``out`` that do not exist yet, ``out`` first, then its parents."""
    missing, folder = [], Path(os.path.abspath(out))   # 'a/../b' is b, whether or not a exists
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _run(args, out: Path) -> int:
    from ...data.datasets import get_dataset

    if not args.no_serve:
        from .serve import _check_bindable

        port = _check_bindable("127.0.0.1", args.port)   # --port 0: the free port chosen, announced and served
    wikipedia_table()
    missing = get_dataset("openclipart").missing()
    if missing:
        console.print(f"OpenClipart is not installed ({missing}); skipping the drawing search.", style="yellow")
        return 0
    model_dir, index_dir = openclipart_space(out)
    console.rule("3. Free-text search over every drawing")
    searches(model_dir, index_dir, out)
    plots_dir = plots(model_dir, out)
    console.print(f"map of the joint space: {plots_dir / 'map.png'}", highlight=False)
    if args.no_serve:
        return 0
    from ...server.app import serve

    console.rule("4. The search page")

    def ready(url):
        console.print(f"search page: {url}  (API docs: {url}docs); press Ctrl-C to stop", highlight=False)

    serve([str(index_dir)], str(model_dir), port=port, on_ready=ready, log_level="warning",
          plots_dir=str(plots_dir))
    return 0
