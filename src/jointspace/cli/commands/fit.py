"""``jointspace fit``: learn a joint space on a dataset split and save it."""

from .._common import console, load_split, parse_params


def register(sub):
    p = sub.add_parser("fit", help="learn a joint space and save it to a folder",
                       description="Fit a joint model on one split of a built-in dataset and save it "
                                   "(config.json + state.safetensors).",
                       epilog="example: jointspace fit wikipedia --model rcca --param reg=0.5 "
                              "--param n_components=7 --out runs/wiki-rcca")
    p.add_argument("dataset", help="built-in dataset name (see 'jointspace datasets')")
    p.add_argument("--model", default="cca", help="model name (default: cca); see --list-models")
    p.add_argument("--split", default="train", help="split to fit on (default: train)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="model parameter, repeatable; values are JSON (e.g. n_components=10, reg=0.1, "
                        "preprocess=standard)")
    p.add_argument("--n-components", type=int, help="shorthand for --param n_components=N")
    p.add_argument("--out", required=True, help="folder to write the fitted model to")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ...models.base import create_model

    params = parse_params(args.param)
    if args.n_components is not None:
        params["n_components"] = args.n_components
    model = create_model(args.model, **params)
    pairs = load_split(args.dataset, args.split)
    with console.status(f"fitting {args.model} on {args.dataset}/{args.split} ({len(pairs)} pairs)"):
        model.fit(pairs)
    model.save(args.out)
    extra = ""
    if hasattr(model, "canonical_correlations_"):
        extra = " canonical correlations: " + " ".join(f"{r:.3f}" for r in model.canonical_correlations_)
    console.print(f"saved {args.model} to {args.out}.{extra}", highlight=False)
    return 0
