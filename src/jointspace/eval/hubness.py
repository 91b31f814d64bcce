r"""Hubness correction for cross-modal retrieval: cross-domain similarity local scaling (CSLS).

In a joint space some gallery items ("hubs") sit close to very many queries and crowd the
top of every ranking.  CSLS (Conneau et al., 2018, "Word translation without parallel data",
eq. 6) discounts each gallery item :math:`g` by how close it is to queries in general,
measured on a *bank* of queries :math:`\mathcal B` (e.g. the training split's texts, as in
querybank normalisation, Bogolin et al., 2022):

.. math::

    r(g) = \frac1k \sum_{b \in \mathcal N_k(g)} \cos(b, g), \qquad
    \mathrm{CSLS}(q, g) = 2 \cos(q, g) - r(g) - r_{\mathcal G}(q),

where :math:`\mathcal N_k(g)` are the :math:`k` bank queries most similar to :math:`g`.  The
last term depends on the query only, so it never changes a query's ranking and is left out.

:func:`csls_vectors` folds the penalty into one extra column, so that the inner product of the
returned vectors is :math:`\tfrac12(2\cos(q, g) - r(g))`: a flat inner-product FAISS index or
:func:`jointspace.eval.retrieval.evaluate_embeddings` with ``metric="dot"`` then ranks by CSLS
with no other change.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_int
from .similarity import check_pair, iter_similarity_chunks, l2_normalize


def hub_penalty(gallery, bank, k: int = 10, chunk_size: int | None = None) -> np.ndarray:
    """Mean cosine similarity of each gallery item to its ``k`` nearest bank queries.

    Parameters
    ----------
    gallery : array-like, shape (m, d)
    bank : array-like, shape (n_bank, d)
        Queries that stand for the queries to come (e.g. the training split's texts).
    k : int
        Neighbourhood size, 1 to ``n_bank``.
    chunk_size : int, optional
        Gallery rows scored at a time (default: about 64 MB of scores).

    Returns
    -------
    r : ndarray, shape (m,)
        :math:`r(g)` of the module formula, float32 when gallery and bank are both float32,
        float64 otherwise (the two are brought to one dtype, as in
        :func:`~jointspace.eval.similarity.check_pair`).
    """
    G, B = check_pair(gallery, bank, ("gallery", "bank"))
    k = check_int(k, "k", low=1, high=B.shape[0])
    r = np.empty(G.shape[0], dtype=G.dtype)
    for start, S in iter_similarity_chunks(G, B, "cosine", chunk_size):
        top = np.partition(S, S.shape[1] - k, axis=1)[:, S.shape[1] - k:]
        r[start:start + S.shape[0]] = top.mean(1)
    return r


def csls_vectors(queries, gallery, bank, k: int = 10, chunk_size: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    r"""Queries and gallery with one added column each, so that their inner product ranks by CSLS.

    Parameters
    ----------
    queries : array-like, shape (n, d)
    gallery : array-like, shape (m, d)
    bank : array-like, shape (n_bank, d)
        Queries of the same modality as ``queries``, not the evaluated ones (e.g. training texts).
    k : int
        Neighbourhood size of :func:`hub_penalty`.
    chunk_size : int, optional
        As in :func:`hub_penalty`.

    Returns
    -------
    q : ndarray, shape (n, d + 1)
        :math:`[\hat q, 1]` with :math:`\hat q = q / \lVert q\rVert`.
    g : ndarray, shape (m, d + 1)
        :math:`[\hat g, -r(g)/2]`; then :math:`q^\top g = \cos(q, g) - r(g)/2`.
    """
    Q, G = check_pair(queries, gallery, ("queries", "gallery"))
    r = hub_penalty(G, bank, k, chunk_size)
    q = np.hstack([l2_normalize(Q), np.ones((Q.shape[0], 1), Q.dtype)])
    g = np.hstack([l2_normalize(G), (-0.5 * r)[:, None].astype(G.dtype)])
    return q, g


def evaluate_csls(embeddings, keys, bank, k: int = 10, directions=None, **metric_options) -> dict:
    """Retrieval metrics like :func:`~jointspace.eval.retrieval.evaluate_embeddings`, ranked by CSLS.

    Parameters
    ----------
    embeddings : mapping of str to array, each shape (n, d)
        Rows aligned across modalities (row i of each is sample i).
    keys : array-like, shape (n,) or (n, C)
        Relevance keys of the samples.
    bank : mapping of str to array, each shape (n_bank, d)
        Per query modality, the bank of :func:`hub_penalty` (e.g. that modality's training
        embeddings); the direction ``q->t`` uses ``bank[q]``.
    k : int
        Neighbourhood size.
    directions : sequence of "q->t" strings or (q, t) tuples, optional
        Default: every ordered pair of distinct modalities.
    metric_options
        ``ks``, ``ndcg_k``, ``ties`` as in :func:`~jointspace.eval.retrieval.retrieval_scores`.

    Returns
    -------
    dict
        ``"<q>-><t>/<metric>"`` -> value.
    """
    from ..errors import InputError
    from .retrieval import _parse_directions, evaluate_embeddings

    from collections.abc import Mapping

    if not isinstance(bank, Mapping):
        raise InputError(f"bank: expected a mapping of query modality -> bank embeddings (n_bank, d), "
                         f"got {type(bank).__name__}")
    if not isinstance(embeddings, Mapping):
        raise InputError(f"embeddings: expected a mapping of modality -> embeddings (n, d), "
                         f"got {type(embeddings).__name__}")
    out = {}
    for q, t in _parse_directions(directions, list(embeddings), list(embeddings)):
        if q not in bank:
            raise InputError(f"bank: expected a bank of {q!r} embeddings for {q}->{t}, got {sorted(bank)}")
        qa, ga = csls_vectors(embeddings[q], embeddings[t], bank[q], k)
        out.update(evaluate_embeddings({q: qa}, keys, gallery={t: ga}, gallery_keys=keys, directions=[(q, t)],
                                       metric="dot", **metric_options))
    return out


__all__ = ["csls_vectors", "evaluate_csls", "hub_penalty"]
