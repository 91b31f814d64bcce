r"""How hub-ridden a cross-modal ranking is: k-occurrence and the measures built on it.

The k-occurrence :math:`N_k(g)` of a gallery item :math:`g` is the number of queries that
have :math:`g` among their :math:`k` nearest gallery items (Radovanović, Nanopoulos &
Ivanović 2010, "Hubs in space", JMLR 11).  Without hubs every item is retrieved about
:math:`k\,n_q/n_g` times; in a hub-ridden space a few items take many of the top-k slots
and many are never retrieved.  The measures of :func:`hubness_report`:

- skewness of the :math:`N_k` distribution, :math:`E[(N_k-\mu)^3]/\sigma^3` (Radovanović et
  al.'s :math:`S_{N_k}`; 0 for a symmetric spread, large and positive with hubs);
- hub occurrence: the share of all top-k slots taken by hubs, items with
  :math:`N_k \ge h\,\bar N_k` (:math:`h` = ``hub_size``, 2 by default, as in Flexer & Schnitzer
  2015, whose :math:`h\,k` this is when queries and gallery are as many; with five captions
  per image, text queries retrieve each image :math:`5k` times on average, and the threshold
  rises with that mean);
- anti-hub occurrence: the share of gallery items never retrieved (:math:`N_k = 0`);
- Robin Hood index: the share of the top-k slots that would have to move from items above
  the mean occurrence to items below it to make every occurrence equal (Feldbauer, Leodolter,
  Flexer & Schnitzer 2018), :math:`\tfrac12 \sum_g |N_k(g) - \bar N_k| / \sum_g N_k(g)`.

:mod:`jointspace.eval.hubness` corrects rankings for hubs (CSLS); these measure whether a
correction was needed and what it achieved.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_float, check_int
from .similarity import check_pair, iter_similarity_chunks


def k_occurrence(queries, gallery, k: int = 10, metric: str = "cosine", chunk_size: int | None = None
                 ) -> np.ndarray:
    """How many queries have each gallery item among their ``k`` most similar.

    Parameters
    ----------
    queries : array-like, shape (n, d)
    gallery : array-like, shape (m, d)
    k : int
        Neighbourhood size, 1 to m.
    metric : {"cosine", "dot", "euclidean"}
        The similarity that ranks the gallery (see
        :func:`~jointspace.eval.similarity.iter_similarity_chunks`).
    chunk_size : int, optional
        Query rows scored at a time (default: about 64 MB of scores).

    Returns
    -------
    ndarray of int64, shape (m,)
        :math:`N_k(g)`; it sums to ``n * k``.  Equal scores are ordered by gallery row, the
        earlier first.
    """
    Q, G = check_pair(queries, gallery, ("queries", "gallery"))
    k = check_int(k, "k", low=1, high=G.shape[0])
    counts = np.zeros(G.shape[0], dtype=np.int64)
    for _, S in iter_similarity_chunks(Q, G, metric, chunk_size):
        if not np.isfinite(S).all():
            from ..errors import InputError

            raise InputError("queries: their scores against the gallery overflow (inf or NaN); expected finite "
                             "vectors of moderate size")
        top = np.argsort(-S, axis=1, kind="stable")[:, :k]
        counts += np.bincount(top.ravel(), minlength=G.shape[0])
    return counts


def hubness_report(queries, gallery, k: int = 10, metric: str = "cosine", hub_size: float = 2.0,
                   chunk_size: int | None = None) -> dict:
    r"""Skewness, hub and anti-hub occurrence and the Robin Hood index of the k-occurrence.

    Parameters
    ----------
    queries, gallery, k, metric, chunk_size
        As in :func:`k_occurrence` (``metric="dot"`` ranks vectors from
        :func:`~jointspace.eval.hubness.csls_vectors` by CSLS).
    hub_size : float
        An item is a hub when its k-occurrence is at least ``hub_size`` times the mean
        occurrence :math:`k\,n_q/n_g` (``hub_size * k`` when queries and gallery are as many).

    Returns
    -------
    dict
        ``k``, ``skewness`` (0 when every item is retrieved equally often),
        ``hub_occurrence``, ``antihub_occurrence``, ``robinhood`` and ``max_occurrence`` (the
        largest :math:`N_k`); plain numbers, JSON-ready.
    """
    hub_size = check_float(hub_size, "hub_size", low=0.0, low_open=True)
    n_k = k_occurrence(queries, gallery, k, metric, chunk_size).astype(np.float64)
    k = int(k)
    centred = n_k - n_k.mean()
    sd = np.sqrt(np.mean(centred ** 2))
    total = n_k.sum()
    return {"k": k,
            "skewness": float(np.mean(centred ** 3) / sd ** 3) if sd > 0 else 0.0,
            # N_k >= h * total / m, compared without the rounding of the mean (29 >= 7 * (29 / 7) was False)
            "hub_occurrence": float(n_k[n_k * n_k.size >= hub_size * total].sum() / total),
            "antihub_occurrence": float(np.mean(n_k == 0)),
            "robinhood": float(0.5 * np.abs(centred).sum() / total),
            "max_occurrence": int(n_k.max())}


__all__ = ["hubness_report", "k_occurrence"]
