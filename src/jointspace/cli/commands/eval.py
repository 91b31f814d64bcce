"""``jointspace eval``: retrieval metrics of a saved model on a dataset split."""

from .._checks import check_array_modalities, check_dataset_items, named_as, option_name
from .._common import (add_data_options, add_json_flag, data_source, default_split, load_split, print_json,
                       print_table, show_report, warn)


def register(sub):
    p = sub.add_parser("eval", help="retrieval metrics of a saved model on a dataset split",
                       description="Cross-modal retrieval in every direction the model supports: Recall@K, "
                                   "mAP, MRR, median/mean rank and nDCG@10.")
    p.add_argument("model", help="folder of a saved model")
    p.add_argument("--data", "--dataset", dest="dataset", required=True, metavar="DATA",
                   help="a built-in dataset name, or your own manifest, folder or arrays file")
    p.add_argument("--split", help="split to evaluate on (default: test for a built-in dataset or a --split-column "
                                   "that names one, else all of your own data)")
    p.add_argument("--relevance", default="auto",
                   help="what makes an item relevant: auto (the dataset's rule: labels, or e.g. the same "
                        "normalised title for openclipart), label, id, or a metadata column (default: auto)")
    p.add_argument("--metric", default="cosine", choices=["cosine", "dot", "euclidean"],
                   help="how queries and gallery items are compared (default: cosine)")
    p.add_argument("--csls", type=int, metavar="K",
                   help="rank by CSLS hubness correction with K neighbours, the bank being the query "
                        "modality's items of --bank-split (cosine only)")
    p.add_argument("--bank-split",
                   help="with --csls: split whose items form the CSLS bank (default: train)")
    p.add_argument("--against", metavar="BASELINE",
                   help="also compare with another saved model on the same queries: per direction, the difference "
                        "in mAP, R@1 and R@10 (this model minus BASELINE) with its 95%% bootstrap interval and the "
                        "p-value of a paired randomisation test, also Holm-adjusted over all the rows")
    p.add_argument("--hubness", type=int, metavar="K",
                   help="also measure hubs in each direction's top K: the skewness of how often each item is "
                        "retrieved, the share of top-K slots hubs take, the share of items never retrieved and "
                        "the Robin Hood index (with --csls: before and after the correction)")
    add_json_flag(p)
    add_data_options(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..._validation import check_int
    from ...errors import InputError
    from ...eval.report import make_report
    from ...eval.retrieval import evaluate_retrieval
    from ...models.base import load_model
    from .._common import load_model_named

    if args.bank_split is not None and args.csls is None:
        raise InputError(f"--bank-split: only used with --csls K; got --bank-split {args.bank_split} without --csls")
    bank_default = args.csls is not None and args.bank_split is None
    if bank_default:
        args.bank_split = "train"
    ds = data_source(args.dataset, args)
    if args.split is None and getattr(ds, "split_column", None) and "test" in ds.splits:
        args.split = "test"   # the rows a split column holds out, not the ones the model learnt from
    args.split = args.split or default_split(ds, "test")
    for option, split in (("--split", args.split), ("--bank-split", args.bank_split)):
        if split is not None and split not in ds.splits:
            given = " (the default of --csls; give another)" if option == "--bank-split" and bank_default else ""
            raise InputError(f"{option}: {'dataset ' if ds.builtin else ''}{args.dataset!r} has splits "
                             f"{', '.join(ds.splits)}; got {split!r}{given}")
    if args.csls is not None:
        check_int(args.csls, "--csls", low=1)
    if args.hubness is not None:
        check_int(args.hubness, "--hubness", low=1)
    if args.against is not None and args.csls is not None:
        raise InputError("--against: compares the models' plain rankings; give it without --csls")
    model = load_model_named(args.model, option_name(args, "model"))
    if args.against is not None:
        with named_as("model", option_name(args, "against")):   # load_model names its parameter
            baseline = load_model(args.against)
    check_array_modalities(args, model.modalities_, least=2, purpose="cross-modal retrieval")
    relevance = ds.relevance if args.relevance == "auto" else args.relevance
    pairs = load_split(args.dataset, args.split, args)
    check_dataset_items(model, pairs, model.modalities_, args.dataset, option_name(args, "dataset"))
    try:
        keys = pairs.relevance_keys(relevance)
    except InputError as exc:   # the option the user gave, by its name on the command line
        raise InputError(f"--{exc}" if args.relevance != "auto" and str(exc).startswith("relevance:") else str(exc)) \
            from None
    modalities = [m for m in model.modalities_ if m in pairs.modalities]
    bank = None if args.csls is None else _csls_bank(args, model, pairs, modalities)
    # each split encoded once, ranked as evaluate_retrieval ranks: dot and euclidean on the unnormalised embeddings
    z = None if bank is None and args.hubness is None else {
        m: model.encode(m, pairs[m], normalize=args.metric == "cosine") for m in modalities}
    if bank is None:
        row = {"method": model.display_name, **evaluate_retrieval(model, pairs, relevance=relevance,
                                                                metric=args.metric)}
    else:
        from ...eval.hubness import evaluate_csls

        row = {"method": f"{model.display_name} + CSLS (k={args.csls})", **evaluate_csls(z, keys, bank, args.csls)}
    report = make_report(args.dataset, args.split, [row])
    hubs = None if args.hubness is None else _hubness_rows(args, z, bank, len(pairs))
    if hubs is not None:
        report["hubness"] = hubs
    compared = None if args.against is None else _comparison(args, baseline, model, pairs, relevance)
    if compared is not None:
        report["comparison"] = {"baseline": str(args.against), "rows": compared}
    _warn_if_most_are_relevant(keys, relevance)   # once every number is in: an error is its one line
    if args.json:
        print_json(report)
        return 0
    show_report(report)
    if compared is not None:
        print_table(f"{model.display_name} against {args.against} (difference: this model minus the baseline; "
                    f"p: paired randomisation test; p (Holm): adjusted for the {len(compared)} tests read together)",
                    ["direction", "metric", "baseline", "this", "difference", "95% interval", "p", "p (Holm)"],
                    [[r["direction"], r["metric"], r["a"], r["b"], f"{r['difference']:+.3f}",
                      f"{r['ci_low']:+.3f} .. {r['ci_high']:+.3f}", f"{r['p_value']:.4f}", f"{r['p_holm']:.4f}"]
                     for r in compared])
    if hubs is not None:
        print_table(f"hubness: how often each item is in a query's top {args.hubness}",
                    ["direction", "ranking", "skewness", "hub share", "never retrieved", "Robin Hood", "most"],
                    [[h["direction"], h["ranking"], h["skewness"], h["hub_occurrence"], h["antihub_occurrence"],
                      h["robinhood"], h["max_occurrence"]] for h in hubs])
    return 0


def _comparison(args, baseline, model, pairs, relevance) -> list[dict]:
    """:func:`~jointspace.eval.significance.compare_models` of ``model`` against ``baseline``."""
    from ...errors import InputError
    from ...eval.significance import compare_models

    common = [m for m in model.modalities_ if m in baseline.modalities_ and m in pairs.modalities]
    if len(common) < 2:
        raise InputError(f"{option_name(args, 'against')}: the baseline knows {', '.join(baseline.modalities_)}, this "
                         f"model {', '.join(model.modalities_)}; comparing needs two modalities both embed")
    return compare_models(baseline, model, pairs, metrics=("mAP", "R@1", "R@10"), relevance=relevance,
                          metric=args.metric)


def _hubness_rows(args, z: dict, bank: dict | None, n: int) -> list[dict]:
    """:func:`~jointspace.eval.hubness_measures.hubness_report` of each direction of the
    embeddings ``z`` of the ``n`` evaluated items, ranked as evaluated (and with --csls, whose
    ``bank`` embeddings are given, also without the correction)."""
    from ...errors import InputError
    from ...eval.hubness import csls_vectors
    from ...eval.hubness_measures import hubness_report

    k = args.hubness
    if k > n:
        raise InputError(f"--hubness: expected K <= {n} (the items of --split {args.split}), got {k}")
    rows = []
    for q in z:
        for t in (m for m in z if m != q):
            rows.append({"direction": f"{q}->{t}", "ranking": args.metric,
                         **hubness_report(z[q], z[t], k, metric=args.metric)})
            if bank is not None:
                qv, gv = csls_vectors(z[q], z[t], bank[q], args.csls)
                rows.append({"direction": f"{q}->{t}", "ranking": f"CSLS (k={args.csls})",
                             **hubness_report(qv, gv, k, metric="dot")})
    return rows


def _csls_bank(args, model, pairs, modalities: list) -> dict:
    """The embeddings of --bank-split's items (the CSLS bank), by modality, after checking
    that CSLS can rank ``pairs``."""
    from ...errors import InputError

    if args.metric != "cosine":
        raise InputError(f"--csls: ranks by cosine similarity; got --metric {args.metric}")
    if args.bank_split == args.split:
        raise InputError(f"--bank-split: the bank must not be the evaluated split ({args.split}); "
                         "use the training split")
    if len(modalities) < 2:
        raise InputError(f"{option_name(args, 'dataset')}: the model knows {', '.join(model.modalities_)}, "
                         f"the split has {', '.join(pairs.modalities)}; CSLS needs two modalities in common")
    bank_pairs = load_split(args.dataset, args.bank_split, args)
    if args.csls > len(bank_pairs):
        raise InputError(f"--csls: expected K <= {len(bank_pairs)} (the items of --bank-split "
                         f"{args.bank_split}), got {args.csls}")
    return {m: model.encode(m, bank_pairs[m]) for m in modalities}


def _warn_if_most_are_relevant(keys, relevance: str) -> None:
    """Warn when one relevance key holds most of the items (captions taken from file names such
    as IMG_0001.jpg all read "img"): every item then counts as relevant to most others, and the
    scores say little."""
    import numpy as np

    keys = np.asarray([str(k) for k in keys])
    if keys.size < 3:
        return
    values, counts = np.unique(keys, return_counts=True)
    top = int(counts.argmax())
    if counts[top] > keys.size / 2:
        warn(f"{counts[top]} of {keys.size} items share the relevance key {str(values[top])!r} ({relevance}) and count as "
             f"relevant to each other, so the scores say little; give captions (a .txt beside each file, or a "
             f"manifest) or choose --relevance")
