"""External clustering metrics (NMI, AMI, ARI, Hungarian accuracy) with numpy and scipy only.

Definitions and degenerate cases follow scikit-learn's defaults (arithmetic-mean
normalisation for NMI and AMI), so values are comparable with published numbers.
"""
from typing import Any, Dict, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import gammaln

__all__ = [
    'contingency_matrix', 'normalized_mutual_info', 'adjusted_mutual_info',
    'adjusted_rand_index', 'hungarian_accuracy', 'purity', 'clustering_scores'
]


def _as_labels(labels: Any, name: str) -> np.ndarray:
    """A 1-D numpy array from an array-like or a (possibly GPU) tensor."""
    if hasattr(labels, 'detach'):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f'{name} must be 1-D, got shape {labels.shape}.')
    return labels


def _check_pair(labels_true: Any, labels_pred: Any) -> Tuple[np.ndarray, np.ndarray]:
    """Validate and convert a pair of labelings."""
    labels_true = _as_labels(labels_true, 'labels_true')
    labels_pred = _as_labels(labels_pred, 'labels_pred')
    if labels_true.shape[0] != labels_pred.shape[0]:
        raise ValueError(f'labels_true and labels_pred differ in length: '
                         f'{labels_true.shape[0]} vs {labels_pred.shape[0]}.')
    if labels_true.shape[0] == 0:
        raise ValueError('labels_true and labels_pred are empty.')
    return labels_true, labels_pred


def contingency_matrix(labels_true: Any, labels_pred: Any) -> np.ndarray:
    """Dense contingency table ``n[i, j]`` = #samples of class i put in cluster j.

    Rows follow the sorted unique values of ``labels_true``, columns those of ``labels_pred``;
    labels may be any sortable values (not necessarily 0..K-1).

    Args:
        labels_true (array-like): Ground-truth labels, shape (N,).
        labels_pred (array-like): Cluster assignments, shape (N,).

    Returns:
        np.ndarray: int64 array of shape (num_classes, num_clusters).
    """
    labels_true, labels_pred = _check_pair(labels_true, labels_pred)
    _, rows = np.unique(labels_true, return_inverse=True)
    _, cols = np.unique(labels_pred, return_inverse=True)
    rows, cols = rows.ravel(), cols.ravel()  # numpy 2 may keep the input shape
    num_cols = int(cols.max()) + 1
    counts = np.bincount(rows * num_cols + cols, minlength=(int(rows.max()) + 1) * num_cols)
    return counts.reshape(-1, num_cols).astype(np.int64)


def _entropy(counts: np.ndarray) -> float:
    """Shannon entropy (nats) of a labeling given its cluster sizes."""
    counts = counts[counts > 0].astype(np.float64)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def _mutual_info(contingency: np.ndarray) -> float:
    """Mutual information (nats) of the two labelings summarised by a contingency table."""
    if 1 in contingency.shape:
        return 0.0  # exactly; the sum below would leave rounding noise
    n = float(contingency.sum())
    a = contingency.sum(axis=1).astype(np.float64)
    b = contingency.sum(axis=0).astype(np.float64)
    i, j = np.nonzero(contingency)
    nij = contingency[i, j].astype(np.float64)
    mi = (nij / n) * (np.log(nij) + np.log(n) - np.log(a[i]) - np.log(b[j]))
    # Rounding can make an exactly-zero MI slightly negative.
    return max(float(mi.sum()), 0.0)


def _expected_mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """Exact E[MI] under the permutation model (hypergeometric cell counts), Vinh et al. 2010.

    E[MI] only depends on the two marginals, so rows (columns) of equal size are grouped and
    their contribution multiplied by the group size: a labeling of N samples has at most
    ``sqrt(2 N)`` distinct cluster sizes. For each distinct row size the sum over (column
    size, n_ij) is one vectorised grid, computed in log space with ``gammaln``.

    Args:
        a (np.ndarray): Row (class) sizes, all positive.
        b (np.ndarray): Column (cluster) sizes, all positive, same total as ``a``.

    Returns:
        float: The expected mutual information in nats.
    """
    n = int(a.sum())
    a_vals, a_mult = np.unique(a, return_counts=True)
    b_vals, b_mult = np.unique(b, return_counts=True)
    b_vals = b_vals.astype(np.float64)[:, None]  # (B, 1) against the n_ij axis
    b_mult = b_mult.astype(np.float64)[:, None]
    gln_n = gammaln(n + 1)
    gln_b = gammaln(b_vals + 1) + gammaln(n - b_vals + 1)
    emi = 0.0
    for a_i, mult in zip(a_vals.astype(np.float64), a_mult):
        # n_ij runs over [max(1, a + b - n), min(a, b)]; build the widest range, mask the rest.
        lo = max(1.0, a_i + float(b_vals.min()) - n)
        hi = min(a_i, float(b_vals.max()))
        if hi < lo:
            continue
        nij = np.arange(lo, hi + 1, dtype=np.float64)[None, :]  # (1, K)
        valid = (nij >= np.maximum(1.0, a_i + b_vals - n)) & (nij <= np.minimum(a_i, b_vals))
        # Clamp the masked-out cells so gammaln/log never see a non-positive argument.
        b_minus = np.where(valid, b_vals - nij, 0.0)
        rest = np.where(valid, n - a_i - b_vals + nij, 0.0)
        log_prob = (gammaln(a_i + 1) + gammaln(n - a_i + 1) + gln_b - gln_n - gammaln(nij + 1) -
                    gammaln(a_i - nij + 1) - gammaln(b_minus + 1) -
                    gammaln(rest + 1))
        term = (nij / n) * (np.log(n) + np.log(nij) - np.log(a_i) - np.log(b_vals))
        cell = np.where(valid, term * np.exp(np.where(valid, log_prob, -np.inf)), 0.0)
        emi += float(mult) * float((b_mult * cell).sum())
    return emi


def _is_relabelling(contingency: np.ndarray) -> bool:
    """True when the labelings are identical up to a renaming of the groups.

    Every row and column has at least one non-zero cell, so a square table with as many
    non-zero cells as rows is a permutation matrix.
    """
    num_rows, num_cols = contingency.shape
    return num_rows == num_cols and int(np.count_nonzero(contingency)) == num_rows


def normalized_mutual_info(labels_true: Any, labels_pred: Any) -> float:
    """Normalised mutual information, ``MI / mean(H(true), H(pred))`` (arithmetic mean).

    As in scikit-learn: 1.0 when both labelings are a single group (and, exactly, for any
    two identical partitions); 0.0 whenever MI is 0 (e.g. exactly one of them is a single
    group).

    Args:
        labels_true (array-like): Ground-truth labels, shape (N,).
        labels_pred (array-like): Cluster assignments, shape (N,).

    Returns:
        float: NMI in [0, 1].
    """
    contingency = contingency_matrix(labels_true, labels_pred)
    # Identical partitions score exactly 1; this includes sklearn's special case of a single
    # class and a single cluster (both entropies 0).
    if _is_relabelling(contingency):
        return 1.0
    mi = _mutual_info(contingency)
    if mi == 0.0:
        return 0.0
    normalizer = (_entropy(contingency.sum(axis=1)) + _entropy(contingency.sum(axis=0))) / 2
    return float(mi / normalizer)


def adjusted_mutual_info(labels_true: Any, labels_pred: Any) -> float:
    """Adjusted mutual information, ``(MI - E[MI]) / (mean(H_true, H_pred) - E[MI])``.

    Arithmetic-mean normalisation and the exact expected MI, as scikit-learn's default.
    About 0 for independent labelings, exactly 1.0 for identical ones (up to relabelling,
    including both being a single group, or both all singletons); may be negative; 0.0 when
    exactly one of them is a single group.

    Args:
        labels_true (array-like): Ground-truth labels, shape (N,).
        labels_pred (array-like): Cluster assignments, shape (N,).

    Returns:
        float: AMI (at most 1).
    """
    contingency = contingency_matrix(labels_true, labels_pred)
    # Identical partitions score exactly 1. This also settles the 0/0 cases where the
    # marginals allow a single table (one group each, or all singletons each), as sklearn does.
    if _is_relabelling(contingency):
        return 1.0
    # One side a single group: MI = E[MI] = 0 exactly (rounding would leave ~1e-17).
    if 1 in contingency.shape:
        return 0.0
    a, b = contingency.sum(axis=1), contingency.sum(axis=0)
    mi = _mutual_info(contingency)
    emi = _expected_mutual_info(a, b)
    normalizer = (_entropy(a) + _entropy(b)) / 2
    denominator = normalizer - emi
    # normalizer >= E[MI] in exact arithmetic; keep the sign and avoid 0/0 at a perfect match.
    eps = np.finfo(np.float64).eps
    denominator = min(denominator, -eps) if denominator < 0 else max(denominator, eps)
    return float((mi - emi) / denominator)


def adjusted_rand_index(labels_true: Any, labels_pred: Any) -> float:
    """Adjusted Rand index (Hubert & Arabie), computed exactly on integer pair counts.

    1.0 when the labelings agree on every pair (including both being a single group);
    about 0 for independent labelings; may be negative.

    Args:
        labels_true (array-like): Ground-truth labels, shape (N,).
        labels_pred (array-like): Cluster assignments, shape (N,).

    Returns:
        float: ARI in [-1, 1].
    """
    contingency = contingency_matrix(labels_true, labels_pred)
    n = int(contingency.sum())
    # Sums of squares are <= N^2 and fit int64; their products below are Python ints, since
    # products of pair counts overflow int64 from N ~ 5e4 on.
    sum_squares = int((contingency**2).sum())
    sum_a2 = int((contingency.sum(axis=1)**2).sum())
    sum_b2 = int((contingency.sum(axis=0)**2).sum())
    # Ordered pair counts: together in both / in true only / in pred only / in neither.
    tp = sum_squares - n
    fn = sum_a2 - sum_squares
    fp = sum_b2 - sum_squares
    tn = n * n - tp - fn - fp - n
    if fn == 0 and fp == 0:
        return 1.0
    return float(2 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)))


def hungarian_accuracy(labels_true: Any, labels_pred: Any) -> float:
    """Clustering accuracy under the best one-to-one cluster-to-class matching.

    The matching maximises the matched samples of the contingency table
    (``scipy.optimize.linear_sum_assignment``); it also works when the number of clusters
    differs from the number of classes: samples of unmatched clusters (or classes) count as
    errors.

    Args:
        labels_true (array-like): Ground-truth labels, shape (N,).
        labels_pred (array-like): Cluster assignments, shape (N,).

    Returns:
        float: Accuracy as a fraction in [0, 1].
    """
    contingency = contingency_matrix(labels_true, labels_pred)
    rows, cols = linear_sum_assignment(contingency, maximize=True)
    return float(contingency[rows, cols].sum() / contingency.sum())


def purity(labels_true: Any, labels_pred: Any) -> float:
    """Fraction of samples that carry their cluster's majority label.

    Unlike the other scores it rewards many small clusters (1 for one sample per cluster),
    so it is read together with NMI; it answers "how clean is each cluster".

    Args:
        labels_true (array-like): Ground-truth labels, shape (N,).
        labels_pred (array-like): Cluster assignments, shape (N,).

    Returns:
        float: In (0, 1].
    """
    contingency = contingency_matrix(labels_true, labels_pred)
    return float(contingency.max(axis=0).sum() / contingency.sum())


def clustering_scores(labels_true: Any, labels_pred: Any) -> Dict[str, float]:
    """All external clustering metrics at once.

    Args:
        labels_true (array-like): Ground-truth labels, shape (N,).
        labels_pred (array-like): Cluster assignments, shape (N,).

    Returns:
        Dict[str, float]: ``nmi``, ``ami``, ``ari`` and ``acc`` (Hungarian accuracy, a
        fraction in [0, 1]).
    """
    return dict(
        nmi=normalized_mutual_info(labels_true, labels_pred),
        ami=adjusted_mutual_info(labels_true, labels_pred),
        ari=adjusted_rand_index(labels_true, labels_pred),
        acc=hungarian_accuracy(labels_true, labels_pred))
