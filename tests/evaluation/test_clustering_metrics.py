"""Tests of the numpy/scipy clustering metrics against hand values and slow direct formulas."""
import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from hirl_mm.evaluation import (adjusted_mutual_info, adjusted_rand_index, clustering_scores,
                                contingency_matrix, hungarian_accuracy,
                                normalized_mutual_info, purity)


def _slow_ami(labels_true, labels_pred) -> float:
    """AMI from the definition: E[MI] as an explicit sum over hypergeometric cell counts."""
    n = len(labels_true)
    a = [int(np.sum(labels_true == c)) for c in np.unique(labels_true)]
    b = [int(np.sum(labels_pred == c)) for c in np.unique(labels_pred)]
    emi = 0.0
    for ai in a:
        for bj in b:
            for nij in range(max(1, ai + bj - n), min(ai, bj) + 1):
                prob = Fraction(math.comb(ai, nij) * math.comb(n - ai, bj - nij), math.comb(n, bj))
                emi += float(prob) * nij / n * math.log(n * nij / (ai * bj))
    mi = 0.0
    for x in np.unique(labels_true):
        for y in np.unique(labels_pred):
            nij = int(np.sum((labels_true == x) & (labels_pred == y)))
            if nij:
                ai, bj = int(np.sum(labels_true == x)), int(np.sum(labels_pred == y))
                mi += nij / n * math.log(n * nij / (ai * bj))

    def entropy(sizes):
        return -sum(s / n * math.log(s / n) for s in sizes)

    return (mi - emi) / ((entropy(a) + entropy(b)) / 2 - emi)


def _slow_ari(labels_true, labels_pred) -> float:
    """ARI from explicit pair counting (Hubert & Arabie's comb formula)."""
    pairs = list(itertools.combinations(range(len(labels_true)), 2))
    both = sum(labels_true[i] == labels_true[j] and labels_pred[i] == labels_pred[j]
               for i, j in pairs)
    same_true = sum(labels_true[i] == labels_true[j] for i, j in pairs)
    same_pred = sum(labels_pred[i] == labels_pred[j] for i, j in pairs)
    expected = same_true * same_pred / len(pairs)
    return (both - expected) / ((same_true + same_pred) / 2 - expected)


def _brute_force_acc(labels_true, labels_pred) -> float:
    """Best one-to-one matching by trying every injection of the smaller side."""
    table = contingency_matrix(labels_true, labels_pred)
    if table.shape[0] > table.shape[1]:
        table = table.T
    best = max(
        sum(table[r, c] for r, c in enumerate(cols))
        for cols in itertools.permutations(range(table.shape[1]), table.shape[0]))
    return best / len(labels_true)


def test_contingency_matrix():
    table = contingency_matrix(['b', 'a', 'a', 'c'], [5, 5, 7, 7])
    np.testing.assert_array_equal(table, [[1, 1], [1, 0], [0, 1]])  # rows a, b, c


def test_perfect_and_permuted():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 500)
    for pred in (labels, np.array([3, 6, 0, 1, 5, 2, 4])[labels], labels * 10 + 100):
        assert clustering_scores(labels, pred) == dict(nmi=1.0, ami=1.0, ari=1.0, acc=1.0)


def test_random_labels_score_about_zero():
    rng = np.random.default_rng(1)
    labels_true, labels_pred = rng.integers(0, 10, 20000), rng.integers(0, 10, 20000)
    scores = clustering_scores(labels_true, labels_pred)
    assert abs(scores['ami']) < 2e-3 and abs(scores['ari']) < 2e-3
    assert 0 <= scores['nmi'] < 5e-3  # not adjusted, but tiny for many samples
    assert scores['acc'] < 0.12


def test_hand_computed_values():
    # Contingency [[2,0],[0,1],[0,1]]: sum C(nij,2)=1, rows 1, cols 2, C(4,2)=6, so
    # ARI = (1 - 2/6) / (3/2 - 2/6) = 4/7.
    assert adjusted_rand_index([0, 0, 1, 2], [0, 0, 1, 1]) == pytest.approx(4 / 7, abs=1e-12)
    assert adjusted_rand_index([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(4 / 7, abs=1e-12)
    # pred determines true: MI = H(true) = ln 2, H(pred) = 1.5 ln 2, NMI = 1 / 1.25.
    assert normalized_mutual_info([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(0.8, abs=1e-12)
    # Class 0 -> cluster 0 (2 samples), class 1 -> cluster 2 (3); cluster 1 is unmatched.
    assert hungarian_accuracy([0, 0, 0, 1, 1, 1], [0, 0, 1, 2, 2, 2]) == pytest.approx(5 / 6)
    # More classes than clusters: one class stays unmatched.
    assert hungarian_accuracy([0, 0, 1, 1, 2, 2], [0, 0, 0, 1, 1, 1]) == pytest.approx(4 / 6)


@pytest.mark.parametrize('seed', range(6))
def test_against_slow_formulas(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 25))
    labels_true = rng.integers(0, int(rng.integers(2, 5)), n)
    labels_pred = np.where(rng.random(n) < 0.5, labels_true, rng.integers(0, 4, n))
    if len(np.unique(labels_pred)) == 1 or len(np.unique(labels_true)) == 1:
        pytest.skip('degenerate draw')
    assert adjusted_mutual_info(labels_true, labels_pred) == pytest.approx(
        _slow_ami(labels_true, labels_pred), abs=1e-10)
    assert adjusted_rand_index(labels_true, labels_pred) == pytest.approx(
        _slow_ari(labels_true, labels_pred), abs=1e-12)
    assert hungarian_accuracy(labels_true, labels_pred) == pytest.approx(
        _brute_force_acc(labels_true, labels_pred))
    # NMI and ARI are symmetric; AMI with arithmetic normalisation too.
    for metric in (normalized_mutual_info, adjusted_mutual_info, adjusted_rand_index):
        assert metric(labels_true, labels_pred) == pytest.approx(
            metric(labels_pred, labels_true), abs=1e-12)


def test_single_class_and_cluster():
    ones = np.zeros(6, dtype=int)
    assert clustering_scores(ones, ones) == dict(nmi=1.0, ami=1.0, ari=1.0, acc=1.0)
    labels = np.array([0, 0, 0, 1, 1, 2])
    for true, pred in ((labels, ones), (ones, labels)):
        scores = clustering_scores(true, pred)
        assert scores['nmi'] == 0.0 and scores['ami'] == 0.0 and scores['ari'] == 0.0
        assert scores['acc'] == pytest.approx(0.5)
    singletons = np.arange(6)
    assert clustering_scores(singletons, singletons[::-1]) == dict(
        nmi=1.0, ami=1.0, ari=1.0, acc=1.0)


def test_large_tables_are_fast_enough():
    rng = np.random.default_rng(2)
    labels_true = rng.integers(0, 1000, 20000)
    labels_pred = np.where(rng.random(20000) < 0.5, labels_true, rng.integers(0, 1000, 20000))
    scores = clustering_scores(labels_true, labels_pred)  # a 1000 x 1000 table
    assert 0.3 < scores['ami'] < 0.7 and 0.0 < scores['ari'] < 1.0


def test_inputs():
    with pytest.raises(ValueError, match='differ in length'):
        normalized_mutual_info([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match='empty'):
        clustering_scores([], [])
    with pytest.raises(ValueError, match='1-D'):
        adjusted_rand_index(np.zeros((2, 2)), np.zeros((2, 2)))
    true, pred = torch.tensor([0, 0, 1, 1]), torch.tensor([1, 1, 0, 0])
    assert clustering_scores(true, pred) == dict(nmi=1.0, ami=1.0, ari=1.0, acc=1.0)


def test_purity_counts_each_clusters_majority_label():
    # Cluster 0 holds labels {0, 0, 1}, cluster 1 {1, 2}: majorities 2 + 1 of 5 samples.
    assert purity([0, 0, 1, 1, 2], [0, 0, 0, 1, 1]) == pytest.approx(3 / 5)
    assert purity([3, 1, 2], [7, 8, 9]) == 1.0  # one sample per cluster
    assert purity([0, 1, 0, 1], [0, 0, 0, 0]) == 0.5
