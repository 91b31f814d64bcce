"""``jointspace plot map|gallery|curves``: PNG plots of a joint space, a search, a training run."""

from .._checks import (check_array_modalities, check_dataset_items, check_not_an_input, check_not_an_item,
                       check_png_out, check_raw_query, named_as, option_name)
from .._common import add_data_options, console, data_source, default_split, load_split, used_all_rows

#: samples drawn by ``plot map`` when --n is not given
MAP_SAMPLES = 500


def register(sub):
    p = sub.add_parser("plot", help="plot a joint-space map, a retrieval gallery or training curves",
                       description="Write PNG plots. Put them in INDEX/plots/ as map.png, gallery.png and "
                                   "curves.png to show them on the search page's 'about this index' panel.",
                       epilog="examples: jointspace plot map runs/wiki-cca --dataset wikipedia --out map.png\n"
                              "          jointspace plot gallery idx/clip-img --text 'a red car' --out g.png\n"
                              "          jointspace plot curves runs/clip --out curves.png")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)

    m = kinds.add_parser("map", help="2-D map of the joint space (UMAP / t-SNE / PCA)")
    m.add_argument("model", help="saved model folder")
    m.add_argument("--data", "--dataset", dest="dataset", required=True, metavar="DATA",
                   help="a built-in dataset name, or your own manifest, folder or arrays file")
    m.add_argument("--split", help="split (default: test for a built-in dataset, all of your own data)")
    m.add_argument("--n", type=int, default=None, help="samples drawn (default: 500)")
    m.add_argument("--method", default="umap", choices=["umap", "tsne", "pca"],
                   help="2-D reduction of the embeddings (default: umap)")
    m.add_argument("--lines", type=int, default=40, help="true pairs joined by a line (default: 40)")
    m.add_argument("--seed", type=int, default=0, help="seed of the sample and the reduction (default: 0)")
    m.add_argument("--out", required=True, help="PNG file to write")
    add_data_options(m)
    m.set_defaults(handler=run_map)

    g = kinds.add_parser("gallery", help="grid of the results of a query")
    g.add_argument("index", help="index folder")
    g.add_argument("--model", help="model folder (default: the index's)")
    g.add_argument("--text", required=True, help="query text")
    g.add_argument("-k", type=int, default=10, help="number of results shown (default: 10)")
    g.add_argument("--columns", type=int, default=5, help="pictures per row (default: 5)")
    g.add_argument("--out", required=True, help="PNG file to write")
    g.set_defaults(handler=run_gallery)

    c = kinds.add_parser("curves", help="training curves from a run's metrics.csv")
    c.add_argument("run", help="run folder (or its metrics.csv), or a model folder saved by fit (its "
                                "run folder MODEL.train is read)")
    c.add_argument("--out", required=True, help="PNG file to write")
    c.set_defaults(handler=run_curves)


def _encode_for_map(model, modality, items):
    # towered models: go through the embedding cache, then project (a dataset goes through a tower once)
    if hasattr(model, "project") and hasattr(model, "embed"):
        return model.project(modality, model.embed(modality, items))
    return model.encode(modality, items)


def run_map(args) -> int:
    import numpy as np

    from ...errors import InputError
    from .._common import load_model_named
    from ...viz.space_map import plot_joint_space

    n = MAP_SAMPLES if args.n is None else args.n
    if n < 3:
        raise InputError(f"--n: expected at least 3 samples, got {n}")
    if args.lines < 0:
        raise InputError(f"--lines: expected an integer >= 0, got {args.lines}")
    if not 0 <= args.seed <= 2**32 - 1:
        raise InputError(f"--seed: expected an integer in 0 .. {2**32 - 1}, got {args.seed}")
    check_png_out(args.out, "--out", "plots are PNG images")
    check_not_an_input(args, "out", "--out")
    model = load_model_named(args.model, option_name(args, "model"))
    check_array_modalities(args, model.modalities_)
    args.split = args.split or default_split(data_source(args.dataset, args), "test")
    pairs = load_split(args.dataset, args.split, args)
    check_not_an_item(args.out, "--out", items=[x for m in pairs.modalities if isinstance(pairs[m], list)
                                                for x in pairs[m]], source=option_name(args, "dataset"))
    if args.n is not None:   # the default is no request for more rows than there are
        used_all_rows("--n", n, len(pairs), f"{args.dataset} ({args.split})")
    if len(pairs) > n:
        rows = np.sort(np.random.default_rng(args.seed).choice(len(pairs), n, replace=False))
        pairs = pairs.subset(rows)
    mods = [m for m in model.modalities_ if m in pairs.modalities]
    if not mods:
        raise InputError(f"{option_name(args, 'dataset')}: {args.dataset} holds {', '.join(pairs.modalities)}; "
                         f"the model knows {', '.join(model.modalities_)}")
    check_dataset_items(model, pairs, mods, args.dataset, option_name(args, "dataset"))
    with console.status(f"encoding {len(pairs)} samples x {len(mods)} modalities"):
        emb = {m: _encode_for_map(model, m, pairs[m]) for m in mods}
    labels = pairs.labels if pairs.labels is not None and pairs.labels.ndim == 1 else None
    lines = "; lines join true pairs" if args.lines and len(mods) > 1 else ""   # as the default title says
    with console.status(f"reducing to 2-D ({args.method})"), named_as("embeddings", option_name(args, "dataset")):
        plot_joint_space(emb, args.out, labels=labels, label_names=pairs.label_names, method=args.method,
                         n_lines=args.lines, seed=args.seed,
                         title=f"{args.dataset}/{args.split}: {len(pairs)} samples, {args.method}{lines}")
    console.print(f"map written to {args.out}", highlight=False)
    return 0


def run_gallery(args) -> int:
    from ...errors import InputError
    from ...index.results import search_with_metadata
    from ...viz.gallery import max_gallery_results, write_gallery
    from .._common import open_index
    from .._recorded import warn_other_model

    if args.k < 1:
        raise InputError(f"-k: expected an integer >= 1, got {args.k}")
    if args.columns < 1:
        raise InputError(f"--columns: expected an integer >= 1, got {args.columns}")
    most = max_gallery_results(args.columns)
    if most is not None and args.k > most:
        raise InputError(f"-k: expected at most {most:,} results in {args.columns} columns (a bigger gallery is over "
                         f"the pixels image readers open), got {args.k:,}")
    check_png_out(args.out, "--out", "plots are PNG images")
    check_not_an_input(args, "out", "--out")
    index, model = open_index(args.index, args.model, args)
    if len(index) == 0:   # else 'results: expected at least one result to draw', naming no argument
        raise InputError(f"{option_name(args, 'index')}: expected an index with items to draw, got {args.index!r} "
                         f"holding none; add some with 'jointspace index {args.index} --append --data DATA'")
    check_not_an_item(args.out, "--out", index=index, source=option_name(args, "index"))
    check_raw_query(model, "text", args.text, others=())   # plot gallery queries by --text alone
    query = model.encode("text", [args.text])
    if query.shape[1] != index.dim:   # a --model of another width: the index's own check names 'queries'
        if args.model:
            raise InputError(f"{option_name(args, 'model')}: {args.model} embeds into {query.shape[1]}-d vectors, "
                             f"but index {args.index!r} holds {index.dim}-d ones; pass the model it was built with")
        raise InputError(f"{option_name(args, 'index')}: index {args.index!r} holds {index.dim}-d vectors, but "
                         f"the model it records embeds into {query.shape[1]}-d; pass the model it was built with "
                         f"as --model")
    results = search_with_metadata(index, query, k=args.k)[0]
    write_gallery(results, args.out, title=f"query: {args.text!r}", columns=args.columns)
    warn_other_model(args, index.info)   # once it worked, as search warns: an error is its one line
    console.print(f"gallery written to {args.out}", highlight=False)
    return 0


def _run_folder(run):
    """``run``, or for a model folder saved by ``fit`` its default run folder ``<model>.train``
    (which holds ``metrics.csv``)."""
    from ...errors import InputError

    if not run.is_dir() or (run / "metrics.csv").is_file():
        return run
    if run.name in ("", ".."):   # '.', '..': named by the folder they stand for
        run = run.resolve()
    train = run.with_name(run.name + ".train")
    if (train / "metrics.csv").is_file():
        return train
    members = sorted(train.glob("member*/metrics.csv"))
    if members:
        raise InputError(f"run: {str(run)!r} is a seed ensemble; each member has its own curves, e.g. "
                         f"jointspace plot curves {members[0].parent} --out curves.png")
    from ...models.base import is_saved_model

    if is_saved_model(run):
        raise InputError(f"run: {str(run)!r} is a saved model without training curves beside it (no "
                         f"{str(train / 'metrics.csv')!r}): closed-form models have none, and a fit given "
                         "--run-dir wrote them there; expected a run folder or its metrics.csv")
    return run


def run_curves(args) -> int:
    from pathlib import Path

    from ...viz.curves import plot_curves

    from ...errors import InputError

    if not str(args.run).strip():
        raise InputError(f"{option_name(args, 'run')}: expected a run folder or its metrics.csv, got {args.run!r}")
    check_png_out(args.out, "--out", "plots are PNG images")
    check_not_an_input(args, "out", "--out")
    # a metrics file that is not UTF-8 text is an InputError of plot_curves, naming the file
    with named_as("metrics", option_name(args, "run")):
        run = Path(args.run).resolve()
        # a metrics file is titled by the run folder holding it, not 'metrics.csv'
        plot_curves(_run_folder(Path(args.run)), args.out, title=(run.parent if run.is_file() else run).name)
    console.print(f"curves written to {args.out}", highlight=False)
    return 0
