"""``jointspace zeroshot MODEL --dataset fashion-mnist --templates default``: zero-shot accuracy."""

from __future__ import annotations

from ..._validation import check_int
from .._checks import check_dataset_items, named_as, option_name
from .._common import add_data_options, used_all_rows


def register(sub) -> None:
    from .._common import add_json_flag

    p = sub.add_parser("zeroshot", help="zero-shot classification of a labelled dataset with prompt templates",
                       description="Classify a dataset's images by the nearest class prompt in a saved joint "
                                   "model's space; reports top-1 / top-5 with prompt ensembling and with a "
                                   "single template, and per-class accuracy.")
    p.add_argument("model", help="saved model folder")
    p.add_argument("--data", "--dataset", dest="dataset", default="fashion-mnist", metavar="DATA",
                   help="a built-in labelled dataset (default: fashion-mnist), or your own labelled manifest or "
                        "folder (sub-folders as classes)")
    p.add_argument("--split", help="dataset split (default: test for a built-in dataset, all of your own data)")
    p.add_argument("--templates", default="default",
                   help="template set: default, single, name, or one template with exactly one {} placeholder "
                        "(literal braces as {{ and }}; default: default)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N samples")
    p.add_argument("--image-modality", default="image",
                   help="the model's modality of the dataset's images (default: image)")
    p.add_argument("--text-modality", default="text",
                   help="the model's text modality the prompts go through (default: text)")
    p.add_argument("--invert", action="store_true",
                   help="invert 8-bit images first (light-on-dark datasets against a model trained on "
                        "dark-on-light drawings)")
    p.add_argument("--confusion", action="store_true", help="also print the confusion matrix")
    add_json_flag(p)
    add_data_options(p, arrays=False)
    p.set_defaults(handler=run)


def class_names_for(dataset: str, pairs) -> list[str]:
    """Readable class names of a labelled dataset (Fashion-MNIST: its class words)."""
    from ...errors import InputError

    if dataset == "fashion-mnist":
        from ...data.datasets.fashion_mnist import CLASS_WORDS

        return list(CLASS_WORDS)
    if pairs.label_names is None:
        raise InputError(f"dataset: {dataset!r} has no class names for zero-shot prompts")
    return [str(n).replace("_", " ").lower() for n in pairs.label_names]


def run(args) -> int:
    import numpy as np

    from ...data.datasets import get_dataset, load_dataset
    from ...errors import InputError
    from ...eval.zeroshot import check_class_names, resolve_templates, zeroshot_classify
    from .._common import load_model_named, print_json, print_table

    from .._common import data_source, default_split, load_split

    templates = resolve_templates(args.templates, "--templates")
    model = load_model_named(args.model, option_name(args, "model"))
    if model.raw_kind(args.text_modality, match_dims=False) != "text":
        texts = [m for m in model.modalities_ if model.raw_kind(m, match_dims=False) == "text"]
        raise InputError(f"--text-modality: {args.text_modality!r} is not a text modality of this model "
                         f"(modalities: {', '.join(model.modalities_)}; "
                         + (f"text: {', '.join(texts)})" if texts else "none reads raw text; it embeds only "
                            "feature vectors)"))
    if args.image_modality not in model.modalities_:
        raise InputError(f"--image-modality: the model knows {', '.join(model.modalities_)}; "
                         f"got {args.image_modality!r}")
    options = {}
    limit = None if args.limit is None else check_int(args.limit, "--limit", low=1)
    source = data_source(args.dataset, args)
    args.split = args.split or default_split(source, "test")
    if source.builtin:
        if limit is not None and "limit" in get_dataset(args.dataset).option_names():
            options["limit"] = limit
        pairs = load_dataset(args.dataset, args.split, **options)
    else:
        pairs = load_split(args.dataset, args.split, args)
    if limit is not None:
        used_all_rows("--limit", limit, len(pairs), f"{args.dataset} ({args.split})")
        if len(pairs) > limit:
            pairs = pairs.subset(list(range(limit)))
    if pairs.labels is None or pairs.labels.ndim != 1:
        raise InputError(f"{option_name(args, 'dataset')}: {args.dataset!r} has no single labels to classify")
    if args.image_modality not in pairs.modalities:
        raise InputError(f"--image-modality: {args.dataset!r} has {', '.join(pairs.modalities)}; "
                         f"got {args.image_modality!r}")
    names = class_names_for(args.dataset, pairs)
    with named_as("class_names", option_name(args, "dataset")):   # before the images are encoded
        check_class_names(names)
    check_dataset_items(model, pairs, [args.image_modality], args.dataset, option_name(args, "dataset"))
    items = pairs[args.image_modality]
    if args.invert:
        if not (isinstance(items, np.ndarray) and items.dtype == np.uint8):
            raise InputError(f"--invert: needs 8-bit image arrays; {args.dataset!r} gives "
                             f"{type(items).__name__} items")
        items = 255 - items
    images = model.encode(args.image_modality, items, normalize=True)
    runs = {}
    # one template is its own ensemble: a single row, named for what it is
    prompts = [("single template", False)] if len(templates) == 1 else [("ensemble", True), ("single template", False)]
    for label, ensemble in prompts:
        runs[label] = zeroshot_classify(model, None, pairs.labels, names, templates, ensemble=ensemble,
                                        text_modality=args.text_modality, image_embeddings=images)
    if args.json:
        # a class without samples has no accuracy (NaN): print_json writes null
        print_json({"dataset": args.dataset, "split": args.split, "n": len(pairs), "classes": names,
                    "templates": list(templates),
                    "results": {k: {"top1": r["top1"], "top5": r["top5"], "n_templates": r["n_templates"],
                                    "per_class": r["per_class"], "confusion": r["confusion"]}
                                for k, r in runs.items()}})
        return 0
    print_table(f"zero-shot {args.dataset} ({args.split}, n={len(pairs)}, chance {1 / len(names):.1%})",
                ["prompts", "templates", "top-1", "top-5"],
                [[k, r["n_templates"], f"{r['top1']:.1%}", f"{r['top5']:.1%}"] for k, r in runs.items()])
    first_name, first = next(iter(runs.items()))
    # a class without samples has no accuracy (NaN): "-", as in the JSON's null
    print_table("per-class accuracy", ["class"] + list(runs),
                [[n] + [f"{r['per_class'][i]:.1%}" if np.isfinite(r["per_class"][i]) else "-" for r in runs.values()]
                 for i, n in enumerate(names)])
    if args.confusion:
        print_table(f"confusion of the {first_name} prompts (rows: true, columns: predicted)",
                    ["true \\ pred"] + [n[:8] for n in names],
                    [[n] + [str(v) for v in first["confusion"][i]] for i, n in enumerate(names)])
    return 0
