"""``jointspace search``: query an index with a dataset row, a text, an image or a sound."""

import argparse
import contextlib

from .._common import (add_json_flag, array_keys, console, data_source, default_split, load_split, open_index,
                       print_json, print_table)
from .._checks import check_not_an_input, check_not_an_item, check_png_out, check_raw_query, named_as, option_name
from .._recorded import recorded_dataset, warn_other_model

#: the options that give search its query
QUERY_OPTIONS = ("--query-row", "--text", "--image", "--audio")


def register(sub):
    p = sub.add_parser("search", help="search an index with a text, an image, a sound or a dataset row",
                       description="Encode a query with the model and print the nearest items of the index.",
                       epilog='examples: jointspace search idx/wiki-img --modality text --query-row 17 -k 10\n'
                              '          jointspace search idx/clip-img --text "a red car" --gallery out.png')
    p.add_argument("index", help="index folder (from 'jointspace index')")
    p.add_argument("--model", help="saved model folder (default: the one the index was built with); a "
                                   "different model than the index records is used as asked, with a warning "
                                   "on stderr, since its vectors are comparable only if it embeds into the "
                                   "same space")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--query-row", type=int, metavar="N", help="use row N of the dataset split as the query")
    q.add_argument("--text", help="a free-text query")
    q.add_argument("--image", help="an image file as the query")
    q.add_argument("--audio", help="a sound file (WAV, FLAC, Ogg, MP3) as the query")
    p.add_argument("--modality", metavar="NAME[=KEY]",
                   help="query modality for --query-row (default: one the index does not hold); with an arrays "
                        "file as --dataset, NAME=KEY also names its array, e.g. text=T_te")
    p.add_argument("--dataset", help="dataset of --query-row (default: the index's)")
    p.add_argument("--split", help="split of --query-row (default: the index's; with --dataset, the index's "
                                   "split if that built-in dataset has it, else its first, and all of your own "
                                   "data)")
    p.add_argument("-k", type=int, default=10, help="number of results (default: 10)")
    p.add_argument("--gallery", metavar="PNG", help="also write the results as an image grid")
    p.add_argument("--rerank", type=int, metavar="N", help="two-stage search: fetch the top N with the index, "
                                                          "re-order them with --matcher's cross-attention score "
                                                          "and show the best -k of them")
    p.add_argument("--matcher", help="a cross-attention matcher folder (from 'jointspace fit-matcher'), for --rerank")
    p.add_argument("--rerank-weight", type=float, metavar="W",
                   help="weight of the matcher's score in [0, 1] (default: the one 'fit-matcher --model' chose)")
    add_json_flag(p)
    p.set_defaults(handler=run)


def _query(args, index, model):
    """(modality, items, description, query label) for the chosen query option."""
    from ...errors import InputError

    for kind in ("text", "image", "audio"):
        value = getattr(args, kind)
        if value is None:
            continue
        check_raw_query(model, kind, value, [o for o in QUERY_OPTIONS if o != f"--{kind}"])
        return kind, [value], (f"text {value!r}" if kind == "text" else f"{kind} {value}"), None
    dataset, builtin = (args.dataset, None) if args.dataset else recorded_dataset(args, index.info, args.index)
    if not dataset:
        raise InputError("--dataset: this index does not record its dataset; name one for --query-row")
    keys = array_keys([args.modality]) if args.modality and "=" in args.modality else None
    if keys and not args.dataset:
        raise InputError(f"--modality: NAME=KEY names an array of the arrays file given as --dataset; the index's "
                         f"own data is read as it was indexed, so give --modality NAME, got {args.modality!r}")
    modality = next(iter(keys)) if keys else args.modality
    modality = modality or next((m for m in model.modalities_ if m != index.info.get("modality")), None)
    if args.dataset:
        read_as = argparse.Namespace(option_names=args.option_names, array_keys_=keys)
        try:
            source = data_source(dataset, read_as)
        except InputError as exc:   # search takes one --modality: the query's array
            if not str(exc).startswith("--modality:") or "holds arrays" not in str(exc):
                raise
            raise InputError(f"--modality: {dataset!r} holds arrays; name the query's, e.g. --modality "
                             f"{modality or 'text'}=KEY (KEY: the array's name in the file)") from None
        split = args.split or default_split(source, index.info.get("split", "test"))
    else:   # the index's own data, read as it was when indexed (a built-in by name, an arrays file's keys, ...)
        options = index.info.get("data_options") if isinstance(index.info.get("data_options"), dict) else {}
        if options.get("split_column") is not None:   # recorded beside it, a fraction had no effect
            options = {k: v for k, v in options.items() if k != "val_fraction"}
        read_as = argparse.Namespace(**options, builtin_=builtin)
        split = args.split or index.info.get("split", "test")
    pairs = load_split(dataset, split, read_as)
    if modality not in pairs:
        other = "" if args.dataset else ("; pass the data to query from with --dataset DATA (and --modality "
                                         f"{modality}=KEY for an arrays file)")
        given = (f"got {modality!r}" if args.modality
                 else f"the query is {modality} by default (the modality the index does not hold)")
        raise InputError(f"--modality: the rows of {dataset} (split {split!r}) hold {', '.join(pairs.modalities)}, "
                         f"no {modality} to query with; {given}{other}")
    if not 0 <= args.query_row < len(pairs):
        raise InputError(f"--query-row: expected a row number 0..{len(pairs) - 1} (split {split!r} of {dataset}), "
                         f"got {args.query_row}")
    sub = pairs.subset([args.query_row])
    label = None
    if sub.labels is not None and sub.labels.ndim == 1:
        v = sub.labels[0]
        label = sub.label_names[int(v)] if sub.label_names else str(v)
    return modality, sub[modality], f"{modality} row {args.query_row} of {dataset}/{split}", label


def _head(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _tail(text: str, n: int) -> str:
    """The end of a long id or path, which is the part that tells items apart."""
    return text if len(text) <= n else "…" + text[-(n - 1):]


def _check_rerank(args, modality: str, index) -> None:
    from ...errors import InputError

    if args.rerank < 1:
        raise InputError(f"--rerank: expected an integer >= 1 (candidates to re-order), got {args.rerank}")
    if not args.matcher:
        raise InputError("--matcher: --rerank needs a cross-attention matcher folder (from 'jointspace fit-matcher')")
    if modality != "text":
        article = "an" if modality[:1] in "aeiou" else "a"
        raise InputError(f"--rerank: re-ranking scores text queries against images; got {article} {modality} query")
    held = index.info.get("modality")
    if isinstance(held, str) and held != "image":   # its items have no pictures for the matcher to read
        raise InputError(f"--rerank: re-ranking scores text queries against images; {option_name(args, 'index')} "
                         f"{args.index!r} holds {held} vectors (index the images to re-rank them)")
    if args.rerank_weight is not None and not 0.0 <= args.rerank_weight <= 1.0:
        raise InputError(f"--rerank-weight: expected a number in [0, 1], got {args.rerank_weight:g}")


def _rerank(args, text: str, results: list, higher_is_better: bool = True) -> list:
    """The candidates re-ordered by the matcher, cut to -k; each gains ``first_score`` (the
    index's own score) and ``cross_score`` and its ``score`` becomes the blended one.  An l2
    index's scores are distances (``higher_is_better`` False): the first stage's similarity
    blended is minus the distance."""
    import re
    import time

    import numpy as np

    from ...errors import InputError
    from ...models.rerank import CrossAttentionMatcher

    with named_as("path", option_name(args, "matcher")):   # CrossAttentionMatcher.load names its parameter
        matcher = CrossAttentionMatcher.load(args.matcher)
    if args.rerank_weight is not None:
        matcher.rerank_weight = args.rerank_weight
    elif matcher.rerank_weight is None:
        raise InputError(f"--rerank-weight: the matcher {args.matcher} has no re-ranking weight chosen; re-fit it "
                         "with 'jointspace fit-matcher --model MODEL' or give --rerank-weight W (0 to 1)")
    paths = [r.get("path") for r in results]
    if not results or not all(paths):
        raise InputError("--rerank: the index's items have no image paths in their metadata, so the matcher "
                         "cannot read them")
    t0 = time.perf_counter()
    try:
        cross = matcher.score(paths, [text])[:, 0]
    except InputError as exc:   # an indexed file moved or damaged since: the candidate, not 'images[i]'
        found = re.match(r"images\[(\d+)\]( \(.*?\))?: (.*)", str(exc), re.S)
        if not found:
            raise
        i = int(found.group(1))
        raise InputError(f"--rerank: the matcher cannot read the image of the index's candidate {i + 1}"
                         f"{found.group(2) or ''}: {found.group(3)}") from None
    first = np.array([r["score"] for r in results], dtype=np.float64)
    similarity = first if higher_is_better else -first
    order, blended = matcher.rerank(np.arange(len(results))[None], similarity[None], cross[None])
    out = []
    for rank, (i, s) in enumerate(zip(order[0][:args.k], blended[0][:args.k]), start=1):
        out.append(dict(results[i], rank=rank, first_rank=int(i) + 1, first_score=float(first[i]),
                         cross_score=float(cross[i]), score=float(s)))
    if not args.json:
        console.print(f"re-ranked the top {len(results)} with the matcher in {time.perf_counter() - t0:.2f} s "
                      f"(weight {matcher.rerank_weight:g})", highlight=False)
    return out


def run(args) -> int:
    from ...errors import InputError
    from ...index.results import search_with_metadata

    if args.k < 1:
        raise InputError(f"-k: expected an integer >= 1, got {args.k}")
    if args.query_row is None:   # they choose the row of --query-row; another query would go without them
        query = next(o for o in QUERY_OPTIONS if getattr(args, o[2:].replace("-", "_")) is not None)
        for dest in ("modality", "dataset", "split"):
            if getattr(args, dest) is not None:
                raise InputError(f"{option_name(args, dest)}: only used with --query-row N (it picks the query's "
                                 f"row); got {option_name(args, dest)} {getattr(args, dest)!r} with {query}")
    if args.gallery is not None:
        check_png_out(args.gallery, "--gallery", "the gallery is a PNG image")
        check_not_an_input(args, "gallery", "--gallery")
    index, model = open_index(args.index, args.model, args)
    if len(index) == 0:   # else an empty table, as if nothing matched the query
        raise InputError(f"{option_name(args, 'index')}: expected an index with items to search, got {args.index!r} "
                         f"holding none; add some with 'jointspace index {args.index} --append --data DATA'")
    if args.gallery is not None:
        check_not_an_item(args.gallery, "--gallery", index=index, source=option_name(args, "index"))
    modality, items, what, qlabel = _query(args, index, model)
    if modality not in model.modalities_:   # a row's modality (--text, --image, --audio are checked by _query)
        raise InputError(f"--modality: expected a modality of the model ({', '.join(model.modalities_)}) to encode "
                         f"the query row with, got {args.modality!r}")
    if args.rerank is not None:
        _check_rerank(args, modality, index)
    else:
        for given, option in ((args.matcher, "--matcher"), (args.rerank_weight, "--rerank-weight")):
            if given is not None:
                raise InputError(f"{option}: only used with --rerank N (two-stage search); got no --rerank")
    fetch = args.k if args.rerank is None else args.rerank   # the candidates re-ordered: N, whatever -k
    query = model.encode(modality, items)
    with named_as("k", "--rerank") if args.rerank is not None else contextlib.nullcontext():
        results = search_with_metadata(index, query, k=fetch)[0]
    if args.rerank is not None:
        results = _rerank(args, items[0], results, index.higher_is_better)
    warn_other_model(args, index.info)
    for r in results:
        extra = r.pop("extra")
        r["item_id"] = extra.get("item_id")
        if len(extra.get("paths") or []) > 1:   # one content stored once, found under several paths
            r["paths"] = extra["paths"]
    if args.gallery is not None:
        from ...viz.gallery import write_gallery

        write_gallery(results, args.gallery, title=_head(what, 200))
    if args.json:
        print_json({"query": what, "query_label": qlabel, "results": results})
        return 0
    head = f"query: {_head(what, 200)}" + (f" (label {qlabel})" if qlabel else "")   # --json keeps it whole
    columns = ["rank", "id", "score", "label", "text", "path"]
    rows = []
    for r in results:
        mark = "" if qlabel is None else (" *" if r["label"] == qlabel else "")
        rows.append([r["rank"], _tail(str(r["item_id"] or r["id"]), 36), r["score"], f"{r['label'] or ''}{mark}",
                     _head(r["text"] or "", 48), _tail(r["path"] or "", 48)])
    keep = [c for c in range(len(columns)) if c < 3 or any(row[c] for row in rows)]
    print_table(head, [columns[c] for c in keep], [[row[c] for c in keep] for row in rows])
    if qlabel is not None and any(r["label"] is not None for r in results):   # an index without labels: no count
        console.print(f"* same label as the query: {sum(r['label'] == qlabel for r in results)} of {len(results)}")
    if args.gallery is not None:
        console.print(f"gallery written to {args.gallery}")
    return 0
