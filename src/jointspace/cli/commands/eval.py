"""``jointspace eval``: retrieval metrics of a saved model on a dataset split."""

from .._common import add_json_flag, load_split, print_json, show_report


def register(sub):
    p = sub.add_parser("eval", help="retrieval metrics of a saved model on a dataset split",
                       description="Cross-modal retrieval in every direction the model supports: Recall@K, "
                                   "mAP, MRR, median/mean rank and nDCG@10.")
    p.add_argument("model", help="folder of a saved model")
    p.add_argument("--dataset", required=True, help="built-in dataset name")
    p.add_argument("--split", default="test", help="split to evaluate on (default: test)")
    p.add_argument("--relevance", default="auto",
                   help="what makes an item relevant: auto (the dataset's rule: labels, or e.g. the same "
                        "normalised title for openclipart), label, id, or a metadata column (default: auto)")
    p.add_argument("--metric", default="cosine", choices=["cosine", "dot", "euclidean"])
    add_json_flag(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from ...eval.report import make_report
    from ...eval.retrieval import evaluate_retrieval
    from ...models.base import load_model

    from ...data.datasets import get_dataset

    model = load_model(args.model)
    relevance = get_dataset(args.dataset).relevance if args.relevance == "auto" else args.relevance
    pairs = load_split(args.dataset, args.split)
    row = {"method": model.model_name, **evaluate_retrieval(model, pairs, relevance=relevance,
                                                            metric=args.metric)}
    report = make_report(args.dataset, args.split, [row])
    if args.json:
        print_json(report)
    else:
        show_report(report)
    return 0
