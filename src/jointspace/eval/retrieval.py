"""Cross-modal retrieval evaluation: every query of one modality ranks the gallery of another.

Three levels, each calling the next:

* :func:`evaluate_retrieval` (model, pairs): encodes each modality with the model and
  evaluates every direction (``image->text``, ``text->image``, ...).
* :func:`evaluate_embeddings` (dict of embeddings, keys): the same on precomputed
  embeddings.
* :func:`retrieval_scores` (query and gallery embeddings, keys): one direction.

Results are flat dicts keyed ``"<query modality>-><target modality>/<metric>"`` with the
metrics ``mAP``, ``R@k`` (one per k), ``MRR``, ``medR``, ``meanR``, ``nDCG@<k>`` (defined in
:mod:`jointspace.eval.metrics`) and the counts ``n_queries`` / ``n_skipped``.  Scores are
computed in blocks of queries (:mod:`jointspace.eval.similarity`), so memory stays bounded
however large the gallery: the full query x gallery matrix is never built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .._validation import check_choice, check_int
from ..errors import InputError
from .metrics import TIES, check_ks, ranking_metrics, summarize
from .relevance import make_relevance
from .similarity import BLOCK_BYTES, METRICS, _iter_blocks, check_pair

#: working bytes per relevant (query, item) pair while a block is ranked (gathered scores, indices)
_BYTES_PER_RELEVANT = 16


def _auto_chunk(n_gallery: int, itemsize: int, density: float) -> int:
    per_row = n_gallery * (itemsize + 1 + _BYTES_PER_RELEVANT * density)
    return max(1, int(BLOCK_BYTES // max(per_row, 1)))


def retrieval_scores(queries, gallery, query_keys, gallery_keys, *, metric: str = "cosine",
                     ks: Sequence[int] = (1, 5, 10), ndcg_k: int = 10, chunk_size: int | None = None,
                     ties: str = "pessimistic", progress: Callable[[int], None] | None = None,
                     return_per_query: bool = False):
    """Retrieval metrics of one direction, from raw embeddings.

    Parameters
    ----------
    queries : array-like, shape (nq, d)
    gallery : array-like, shape (ng, d)
    query_keys : array-like, shape (nq,) or (nq, C)
    gallery_keys : array-like, shape (ng,) or (ng, C)
        Relevance: 1-D keys (ints or strings: labels, normalised titles, pair ids) make an
        item relevant when its key equals the query's; multi-hot (n, C) matrices when the
        two share a label.
    metric : {"cosine", "dot", "euclidean"}
        Similarity used for ranking (Euclidean ranks by increasing distance).
    ks : sequence of int
        Cut-offs of Recall@K, each >= 1.
    ndcg_k : int
        Cut-off of nDCG.
    chunk_size : int, optional
        Queries per block; by default sized so a block's working memory is about 64 MB.
    ties : {"pessimistic", "optimistic"}
        How equal scores are ordered (see :mod:`jointspace.eval.metrics`).
    progress : callable, optional
        Called with the number of queries finished after each block.
    return_per_query : bool
        Also return the per-query arrays (``ap``, ``first_rank``, ``ndcg``, ``n_relevant``).

    Returns
    -------
    dict
        ``mAP``, ``R@k``..., ``MRR``, ``medR``, ``meanR``, ``nDCG@<ndcg_k>``, ``n_queries``,
        ``n_skipped``; with ``return_per_query`` a pair (dict, per-query dict).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.eye(3, dtype=np.float32)
    >>> retrieval_scores(x, x, [0, 1, 2], [0, 1, 2])["mAP"]
    1.0
    """
    check_choice(metric, "metric", METRICS)
    check_choice(ties, "ties", TIES)
    ks = check_ks(ks)
    ndcg_k = check_int(ndcg_k, "ndcg_k", low=1)
    Q, G = check_pair(queries, gallery, names=("queries", "gallery"))
    relevance = make_relevance(query_keys, gallery_keys, Q.shape[0], G.shape[0])
    if chunk_size is None:
        chunk_size = _auto_chunk(G.shape[0], Q.dtype.itemsize, relevance.density())
    chunk_size = check_int(chunk_size, "chunk_size", low=1)
    per_query = ranking_metrics(_iter_blocks(Q, G, metric, chunk_size), relevance, ndcg_k=ndcg_k,
                                ties=ties, owned=True, progress=progress)
    summary = summarize(per_query, ks, ndcg_k)
    return (summary, per_query) if return_per_query else summary


def random_ranking_scores(query_keys, gallery_keys, *, ks: Sequence[int] = (1, 5, 10), ndcg_k: int = 10,
                          repeats: int = 5, seed: int = 0, chunk_size: int | None = None) -> dict:
    """Metrics of a random ranking (the chance baseline), averaged over ``repeats`` draws.

    Every query ranks the gallery by independent uniform random scores, so each ordering
    is equally likely; no embeddings are involved.

    Parameters
    ----------
    query_keys : array-like, shape (nq,) or (nq, C)
    gallery_keys : array-like, shape (ng,) or (ng, C)
        Relevance keys, as in :func:`retrieval_scores`.
    ks, ndcg_k, chunk_size
        As in :func:`retrieval_scores`.
    repeats : int
        Number of random rankings averaged.
    seed : int
        Seed of the random generator, in [0, 2**32 - 1] (results are deterministic given it).

    Returns
    -------
    dict
        The same keys as :func:`retrieval_scores`, each the mean over the draws.
    """
    ks = check_ks(ks)
    ndcg_k = check_int(ndcg_k, "ndcg_k", low=1)
    repeats = check_int(repeats, "repeats", low=1)
    seed = check_int(seed, "seed", low=0, high=2**32 - 1)
    relevance = make_relevance(query_keys, gallery_keys)
    nq, ng = relevance.n_queries, relevance.n_gallery
    if chunk_size is None:
        chunk_size = _auto_chunk(ng, 8, relevance.density())
    chunk_size = check_int(chunk_size, "chunk_size", low=1)
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(repeats):
        blocks = ((s, rng.random((min(chunk_size, nq - s), ng))) for s in range(0, nq, chunk_size))
        runs.append(summarize(ranking_metrics(blocks, relevance, ndcg_k=ndcg_k, owned=True), ks, ndcg_k))
    return {k: (float(np.mean([r[k] for r in runs])) if isinstance(runs[0][k], float) else runs[0][k])
            for k in runs[0]}


def _parse_directions(directions, available: Sequence[str], targets: Sequence[str],
                      context: str = "") -> list[tuple[str, str]]:
    """``(query, target)`` modality pairs; ``context`` (e.g. which modalities the model knows)
    is added to the messages."""
    context = f" ({context})" if context else ""
    if directions is None:
        pairs = [(a, b) for a in available for b in targets if a != b]
        if not pairs:
            raise InputError(f"directions: need two modalities to evaluate cross-modal retrieval, "
                             f"got {', '.join(available) or 'none'}{context}")
        return pairs
    if isinstance(directions, str):
        directions = [directions]
    out = []
    for d in directions:
        if isinstance(d, str):
            parts = d.split("->")
            if len(parts) != 2:
                raise InputError(f"directions: expected 'query->target' strings or (query, target) "
                                 f"tuples, got {d!r}")
            d = (parts[0].strip(), parts[1].strip())
        if not (isinstance(d, (tuple, list)) and len(d) == 2):
            raise InputError(f"directions: expected 'query->target' strings or (query, target) tuples, got {d!r}")
        q, t = d
        if q not in available:
            raise InputError(f"directions: query modality must be one of {', '.join(available) or 'none'}; "
                             f"got {q!r}{context}")
        if t not in targets:
            raise InputError(f"directions: target modality must be one of {', '.join(targets) or 'none'}; "
                             f"got {t!r}{context}")
        out.append((q, t))
    return out


def evaluate_embeddings(embeddings: Mapping[str, np.ndarray], keys, *, directions=None,
                        gallery: Mapping[str, np.ndarray] | None = None, gallery_keys=None,
                        metric: str = "cosine", ks: Sequence[int] = (1, 5, 10), ndcg_k: int = 10,
                        chunk_size: int | None = None, ties: str = "pessimistic",
                        progress: Callable[[int], None] | None = None) -> dict:
    """Retrieval metrics for every direction between precomputed embeddings.

    Parameters
    ----------
    embeddings : mapping of str to array, each shape (n, d)
        One array per modality, rows aligned (row i of every modality is sample i).
    keys : array-like, shape (n,) or (n, C)
        Relevance keys of the samples (see :func:`retrieval_scores`).
    directions : sequence of "q->t" strings or (q, t) tuples, optional
        Default: every ordered pair of distinct modalities.
    gallery : mapping of str to array, each shape (m, d), optional
        A separate gallery (default: ``embeddings`` itself), with ``gallery_keys`` (m,) or (m, C).
    metric, ks, ndcg_k, chunk_size, ties, progress
        As in :func:`retrieval_scores`.

    Returns
    -------
    dict
        ``"<q>-><t>/<metric>"`` -> value, for every direction.
    """
    if not isinstance(embeddings, Mapping) or not embeddings:
        raise InputError("embeddings: expected a mapping of modality name -> (n, d) array, "
                         f"got {type(embeddings).__name__}")
    if gallery is None:
        if gallery_keys is not None:
            raise InputError("gallery_keys: given without gallery")
        gallery, gallery_keys = embeddings, keys
    elif gallery_keys is None:
        raise InputError("gallery_keys: expected keys for the gallery, got None")
    dirs = _parse_directions(directions, list(embeddings), list(gallery))
    out: dict = {}
    for q, t in dirs:
        try:
            res = retrieval_scores(embeddings[q], gallery[t], keys, gallery_keys, metric=metric, ks=ks,
                                   ndcg_k=ndcg_k, chunk_size=chunk_size, ties=ties, progress=progress)
        except InputError as exc:
            raise InputError(f"{q}->{t}: {exc}") from None
        for name, value in res.items():
            out[f"{q}->{t}/{name}"] = value
    return out


def evaluate_retrieval(model, pairs, *, directions=None, relevance: str = "auto",
                       ks: Sequence[int] = (1, 5, 10), ndcg_k: int = 10, metric: str = "cosine",
                       chunk_size: int | None = None, gallery=None, ties: str = "pessimistic",
                       progress: Callable[[int], None] | None = None) -> dict:
    """Cross-modal retrieval metrics of a fitted joint model on paired data.

    Every sample's item in the query modality ranks all items of the target modality
    (of ``gallery`` if given, else of ``pairs``).

    Parameters
    ----------
    model : JointModel
        A fitted model (``model.encode``, ``model.modalities_``).
    pairs : Pairs
        Evaluation samples (queries, and the gallery unless ``gallery`` is given).
    directions : sequence of "q->t" or (q, t), optional
        Default: every ordered pair of distinct modalities that the model knows and the
        pairs hold (e.g. ``image->text`` and ``text->image``).
    relevance : {"auto", "label", "id"} or a metadata column
        Passed to :meth:`Pairs.relevance_keys`: shared label (default when labels exist),
        pair identity, or equal metadata values (e.g. a normalised title).  With a
        ``gallery``, ``"auto"`` is one rule for both sides: labels when both have them, ids
        when neither has (labels on one side only are refused).
    ks, ndcg_k, metric, chunk_size, ties, progress
        As in :func:`retrieval_scores`.
    gallery : Pairs, optional
        Samples whose items form the gallery.

    Returns
    -------
    dict
        ``"<q>-><t>/<metric>"`` -> value for metrics ``mAP``, ``R@k``, ``MRR``, ``medR``,
        ``meanR``, ``nDCG@<ndcg_k>``, ``n_queries``, ``n_skipped``.
    """
    from ..data.pairs import Pairs

    if not isinstance(pairs, Pairs):
        raise InputError(f"pairs: expected a Pairs, got {type(pairs).__name__}")
    if gallery is not None and not isinstance(gallery, Pairs):
        raise InputError(f"gallery: expected a Pairs, got {type(gallery).__name__}")
    known = getattr(model, "modalities_", None)
    if known is None or not hasattr(model, "encode"):
        raise InputError(f"model: expected a fitted joint model, got {type(model).__name__}"
                         + ("" if hasattr(model, "encode") else " (no encode method)"))
    g = pairs if gallery is None else gallery
    q_mods = [m for m in pairs.modalities if m in known]
    t_mods = [m for m in g.modalities if m in known]
    held = f"the model knows {', '.join(known)}; the pairs hold {', '.join(pairs.modalities)}"
    if gallery is not None:
        held += f", the gallery {', '.join(g.modalities)}"
    dirs = _parse_directions(directions, q_mods, t_mods, held)
    normalize = metric == "cosine"
    encoded: dict = {}

    def encode(source, m):
        key = (id(source), m)
        if key not in encoded:
            encoded[key] = model.encode(m, source[m], normalize=normalize)
        return encoded[key]

    if gallery is not None and relevance == "auto":
        # one rule for both sides: a label compared with a sample id would mean nothing
        labelled = (pairs.labels is not None, gallery.labels is not None)
        if labelled[0] != labelled[1]:
            raise InputError(f"relevance: 'auto' means labels, but {'gallery' if labelled[0] else 'pairs'} has none "
                             f"({'pairs' if labelled[0] else 'gallery'} has); expected labels on both or on "
                             "neither, or relevance='id' or a metadata column")
        relevance = "label" if labelled[0] else "id"
    keys = pairs.relevance_keys(relevance)
    g_keys = keys if gallery is None else gallery.relevance_keys(relevance)
    q_emb = {q: encode(pairs, q) for q, _ in dirs}
    g_emb = {t: encode(g, t) for _, t in dirs}
    return evaluate_embeddings(q_emb, keys, directions=dirs, gallery=g_emb, gallery_keys=g_keys,
                               metric=metric, ks=ks, ndcg_k=ndcg_k, chunk_size=chunk_size, ties=ties,
                               progress=progress)
