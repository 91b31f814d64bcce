"""``jointspace fit-matcher`` and ``jointspace explain``: a cross-modal attention matcher, and
where each word of a text looks in an image."""

from .._common import add_json_flag, console, data_source, default_split, load_split, print_json
from .._checks import check_not_an_input, check_png_out, check_query_value, named_as, option_name


def register(sub):
    p = sub.add_parser("fit-matcher", help="train a cross-modal attention matcher (for --rerank and explain)",
                       description="Train a cross-attention matcher between image regions (EfficientNet-Lite0 "
                                   "7x7 feature map) and word pieces (MiniLM) on a dataset with images and texts; "
                                   "the epoch is chosen on the validation split, or with --model on a tenth of "
                                   "the training pairs while the validation split chooses the weight "
                                   "'search --rerank' gives the matcher against that first stage.",
                       epilog="example: jointspace fit-matcher openclipart --model runs/oc-cca --out runs/oc-matcher")
    p.add_argument("dataset", help="a built-in dataset with image and text (e.g. openclipart); the matcher learns "
                                   "from its train split, or its only one (all of photos)")
    p.add_argument("--out", required=True, help="folder to write the matcher to")
    p.add_argument("--val-split", default="val",
                   help="split that chooses the epoch (default: val; 'none' to skip); with --model it chooses the "
                        "re-ranking weight instead, and the epoch is chosen on a tenth of the training pairs")
    p.add_argument("--epochs", type=int, default=30, help="most epochs (default: 30)")
    p.add_argument("--dim", type=int, default=256, help="size regions and words are projected to (default: 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="the saved model whose index the matcher will re-rank (from 'jointspace fit' "
                                   "on towers): the re-ranking weight is chosen against it on the validation "
                                   "split (0 when the matcher does not improve its order); without it, "
                                   "'search --rerank' needs --rerank-weight")
    p.add_argument("--candidates", type=int, metavar="N",
                   help="candidates per query when choosing the weight, as 'search --rerank N' (default: 50)")
    p.set_defaults(handler=run_fit)

    e = sub.add_parser("explain", help="draw where each word of a text looks in an image (alignment map)",
                       description="Write a PNG with, for each word piece of --text, its attention over the "
                                   "regions of --image as a heat map on the picture.",
                       epilog='example: jointspace explain runs/oc-matcher --text "a red airplane" '
                              '--image plane.png --out map.png')
    e.add_argument("matcher", help="a matcher folder (from 'jointspace fit-matcher')")
    e.add_argument("--text", required=True, help="the text")
    e.add_argument("--image", required=True, help="the image file")
    e.add_argument("--out", required=True, help="the PNG to write")
    add_json_flag(e)
    e.set_defaults(handler=run_explain)


def run_fit(args) -> int:
    from ..._io import check_replaceable
    from ...data.datasets import get_dataset
    from ...errors import InputError
    from .._common import load_model_named
    from ...models.rerank import CrossAttentionMatcher, is_saved_matcher

    # before minutes of training: --out must be free or an earlier matcher
    check_replaceable(args.out, "cross-attention matcher", is_kind=is_saved_matcher, arg="--out")
    first_stage = None
    if args.model is not None:
        if args.val_split == "none":
            raise InputError("--model: choosing the re-ranking weight needs a validation split; got --val-split none")
        if args.candidates is None:
            args.candidates = 50
        if args.candidates < 2:
            raise InputError(f"--candidates: expected an integer >= 2, got {args.candidates}")
        first_stage = load_model_named(args.model, "--model")
        missing = {"image", "text"} - set(first_stage.modalities_)
        if missing:
            raise InputError(f"--model: expected a model of images and texts, got one of "
                             f"{', '.join(first_stage.modalities_)}")
        # the weight is chosen by embedding the raw pictures and captions of the validation split
        flat = [m for m in ("image", "text") if first_stage.raw_kind(m) != m]
        if flat:
            raise InputError(f"--model: {args.model!r} reads only feature vectors of {' and '.join(flat)}; the "
                             f"matcher's weight is chosen by embedding raw images and texts with it, so it needs a "
                             f"model fitted with --towers (e.g. --towers efficientnet-lite0,minilm)")
    elif args.candidates is not None:
        raise InputError(f"--candidates: only used with --model (choosing the re-ranking weight); got --candidates "
                         f"{args.candidates} without --model")
    relevance = get_dataset(args.dataset).relevance  # e.g. same title on OpenClipart: not negatives
    train = load_split(args.dataset, default_split(data_source(args.dataset), "train"))   # all of photos
    missing = [m for m in ("image", "text") if m not in train.modalities]
    flat = [m for m in ("image", "text") if m in train.modalities and getattr(train[m], "ndim", 1) == 2]
    if missing or flat:   # before the towers load
        has = f"no {' and no '.join(missing)}" if missing else f"{' and '.join(flat)} only as feature vectors"
        raise InputError(f"DATASET: the matcher reads pictures and texts through its towers; {args.dataset!r} has "
                         f"{has}")
    with named_as("--split", "--val-split"):
        val = None if args.val_split == "none" else load_split(args.dataset, args.val_split)
    epoch_val, scored_on = val, "val"
    if first_stage is not None and len(train) >= 4:
        # val chooses the re-ranking weight, so the epoch is chosen on a tenth of the training
        # pairs (whole relevance groups, e.g. every drawing of a title), not on val too
        groups = train.relevance_keys(relevance) if relevance in train.metadata else train.ids
        with named_as("groups", "DATASET"):
            train, epoch_val = train.split(0.1, seed=args.seed, groups=groups)
        scored_on = "held-out training pairs"
    matcher = CrossAttentionMatcher(dim=args.dim, epochs=args.epochs, seed=args.seed)
    with console.status("computing region and word-piece features"):
        matcher.fit(train, epoch_val, relevance=relevance)
    res = matcher.train_result_
    chosen = ("" if res.best_epoch is None
              else f", weights of epoch {res.best_epoch + 1} ({scored_on} MRR {-res.best_metric:.3f})")
    weight = "; no re-ranking weight chosen (no --model)"
    if first_stage is not None:
        with console.status("choosing the re-ranking weight on the validation split"):
            choice = matcher.choose_weight(first_stage, val, relevance=relevance, candidates=args.candidates)
        w = choice["weight"]
        weight = (f"; re-ranking weight {w:g} against {args.model} (val R@1 per key {choice['recall@1 per key']['0.0']:.3f}"
                  f" -> {choice['recall@1 per key'][str(w)]:.3f}" + (", the matcher does not improve its order)"
                                                                       if w == 0 else ")"))
    matcher.save(args.out)
    console.print(f"matcher written to {args.out} ({len(train)} training pairs, {res.epochs_run} epochs{chosen}{weight})",
                  highlight=False)
    return 0


def run_explain(args) -> int:
    from ...models.rerank import CrossAttentionMatcher
    from ...viz.attention_map import write_attention_map

    check_png_out(args.out, "--out", "the alignment map is a PNG image")
    check_not_an_input(args, "out", "--out")
    check_query_value("text", args.text)
    check_query_value("image", args.image)
    with named_as("path", option_name(args, "matcher")):   # CrossAttentionMatcher.load names its parameter
        matcher = CrossAttentionMatcher.load(args.matcher)
    out = matcher.explain(args.image, args.text)
    write_attention_map(args.image, out["pieces"], out["maps"], args.out, score=out["score"])
    if args.json:
        print_json({"text": args.text, "image": args.image, "score": out["score"], "pieces": out["pieces"],
                    "peak_region": [int(m.argmax()) for m in out["maps"]], "out": args.out})
        return 0
    console.print(f"matching score {out['score']:.3f}; alignment map written to {args.out}")
    return 0
