"""``jointspace index``: embed one modality of a dataset split and build a search index."""

from .._common import console, load_split


def register(sub):
    p = sub.add_parser("index", help="build a FAISS index of one modality of a dataset split",
                       description="Encode one modality of a dataset split with a saved model and store the "
                                   "vectors in a FAISS index folder, with labels, texts and paths as metadata.",
                       epilog="example: jointspace index runs/wiki-cca --dataset wikipedia --modality image "
                              "--spec HNSW32 --out idx/wiki-img")
    p.add_argument("model", help="folder of a saved model")
    p.add_argument("--dataset", required=True, help="built-in dataset name")
    p.add_argument("--split", default="test", help="split to index (default: test)")
    p.add_argument("--modality", required=True, help="modality to index (e.g. image)")
    p.add_argument("--spec", default="auto",
                   help="FAISS factory string: Flat, HNSW32, IVF1024,PQ32, ... or auto (by size; default)")
    p.add_argument("--metric", default="cosine", choices=["cosine", "ip", "l2"],
                   help="cosine (vectors normalised, then inner product), ip (inner product) or l2 "
                        "(euclidean distance); default: cosine")
    p.add_argument("--out", required=True, help="index folder to write")
    p.set_defaults(handler=run)


def item_metadata(pairs, modality: str) -> dict:
    """Metadata columns for the index: label (name), text, file path and the dataset id."""
    n = len(pairs)
    meta = {"item_id": [str(i) for i in pairs.ids.tolist()]}
    if pairs.labels is not None and pairs.labels.ndim == 1:
        names = pairs.label_names
        meta["label"] = [names[int(v)] if names and str(v).lstrip("-").isdigit() and 0 <= int(v) < len(names)
                         else str(v) for v in pairs.labels.tolist()]
    texts = None
    for mod in pairs.modalities:
        items = pairs[mod]
        if isinstance(items, list) and items and isinstance(items[0], str) and mod == "text":
            texts = items
    if texts is None and "title" in pairs.metadata:
        texts = [str(t) for t in pairs.metadata["title"]]
    if texts is not None:
        meta["text"] = list(texts)
    items = pairs[modality]
    if isinstance(items, list) and items and isinstance(items[0], str) and modality != "text":
        meta["path"] = list(items)
    for key in ("title", "title_key"):
        if key in pairs.metadata and key not in meta:
            meta[key] = [str(v) for v in pairs.metadata[key]]
    assert all(len(v) == n for v in meta.values())
    return meta


def run(args) -> int:
    from pathlib import Path

    from ..._io import check_replaceable
    from ...index.persistence import is_saved_index
    from ...index.faiss_index import Index
    from ...models.base import load_model

    check_replaceable(args.out, "index", is_kind=is_saved_index, arg="--out")
    model = load_model(args.model)
    pairs = load_split(args.dataset, args.split)
    if args.modality not in model.modalities_:
        from ...errors import InputError

        raise InputError(f"--modality: the model knows {', '.join(model.modalities_)}; got {args.modality!r}")
    with console.status(f"encoding {len(pairs)} {args.modality} items"):
        vectors = model.encode(args.modality, pairs[args.modality])
    with console.status(f"building index ({args.spec})"):
        index = Index.build(vectors, spec=args.spec, metric=args.metric, metadata=item_metadata(pairs, args.modality))
    index.info.update({"model": str(Path(args.model).resolve()), "modality": args.modality,
                       "dataset": args.dataset, "split": args.split})
    index.save(args.out)
    console.print(f"indexed {index.ntotal} {args.modality} vectors (dim {index.dim}, {index.resolved_spec}, "
                  f"{index.metric}) in {args.out}", highlight=False)
    return 0
