"""Evaluation in the joint space: similarity, ranking metrics, retrieval, reports.

``evaluate_retrieval(model, pairs)`` is the usual entry point; ``retrieval_scores`` works on
raw embeddings.  Everything is computed in blocks of queries, so memory stays bounded.
"""

from .hubness_measures import hubness_report, k_occurrence
from .metrics import ranking_metrics, ranking_metrics_dense, summarize
from .probes import probe_accuracy
from .redundancy import (debiased_linear_cka, hsic_score, linear_cka, mean_abs_cosine, normalized_cross_frobenius,
                         redundancy_report)
from .relevance import DenseRelevance, KeyRelevance, MultiLabelRelevance, make_relevance
from .report import format_table, make_report, print_report, read_json, render_table, write_json
from .retrieval import evaluate_embeddings, evaluate_retrieval, random_ranking_scores, retrieval_scores
from .similarity import METRICS, iter_similarity_chunks, pairwise_distance, pairwise_similarity

__all__ = [
    "METRICS", "DenseRelevance", "KeyRelevance", "MultiLabelRelevance", "evaluate_embeddings",
    "evaluate_retrieval", "format_table", "hsic_score", "hubness_report", "k_occurrence", "linear_cka", "mean_abs_cosine",
    "normalized_cross_frobenius", "debiased_linear_cka", "probe_accuracy", "redundancy_report", "iter_similarity_chunks", "make_relevance", "make_report",
    "pairwise_distance", "pairwise_similarity", "print_report", "ranking_metrics",
    "random_ranking_scores", "ranking_metrics_dense", "read_json", "render_table", "retrieval_scores", "summarize", "write_json",
]
