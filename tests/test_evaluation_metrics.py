"""Ranking metrics against hand-computed cases."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from personalize.evaluation.metrics import (average_precision_at_k, catalog_coverage, hit_matrix, ndcg_at_k, novelty,
                                            ranking_metrics)

L2 = math.log2


def test_hand_computed_single_customer():
    # list a,b,c,d = 0,1,2,3 ; relevant {0, 2, 7}
    m = ranking_metrics(np.array([[0, 1, 2, 3]]), [{0, 2, 7}])
    assert m["precision"][0] == pytest.approx(2 / 4)
    assert m["recall"][0] == pytest.approx(2 / 3)
    assert m["hit_rate"][0] == 1.0
    dcg = 1 / L2(2) + 1 / L2(4)
    idcg = 1 / L2(2) + 1 / L2(3) + 1 / L2(4)
    assert m["ndcg"][0] == pytest.approx(dcg / idcg)
    assert m["map"][0] == pytest.approx((1 / 1 + 2 / 3) / 3)


def test_ideal_dcg_and_ap_normalized_by_min_relevant_k():
    # 5 relevant items, k = 2, both hits: perfect scores (normalized over min(R, k) = 2)
    m = ranking_metrics(np.array([[3, 4]]), [{0, 1, 2, 3, 4}])
    assert m["ndcg"][0] == pytest.approx(1.0)
    assert m["map"][0] == pytest.approx(1.0)
    assert m["recall"][0] == pytest.approx(2 / 5)
    # one hit at rank 2 out of a single relevant item
    m = ranking_metrics(np.array([[9, 4, 8]]), [{4}])
    assert m["ndcg"][0] == pytest.approx(1 / L2(3))
    assert m["map"][0] == pytest.approx(0.5)
    assert m["precision"][0] == pytest.approx(1 / 3)


def test_vectorized_rows_padding_and_misses():
    rec = np.array([[0, 1, -1], [5, 6, 7], [2, -1, -1]])
    rel = sp.csr_matrix(np.array([[1, 0, 0, 0, 0, 0, 0, 0],
                                  [0, 0, 0, 0, 0, 0, 0, 1],
                                  [0, 0, 0, 0, 0, 0, 0, 1]], dtype=bool))
    m = ranking_metrics(rec, rel)
    np.testing.assert_allclose(m["hit_rate"], [1, 1, 0])
    np.testing.assert_allclose(m["precision"], [1 / 3, 1 / 3, 0])
    np.testing.assert_allclose(m["recall"], [1, 1, 0])
    np.testing.assert_allclose(m["ndcg"], [1, 1 / L2(4), 0])
    np.testing.assert_allclose(m["map"], [1, 1 / 3, 0])


def test_k_truncates_and_pads():
    rec = np.array([[1, 0]])
    assert ranking_metrics(rec, [{0}], k=1)["hit_rate"][0] == 0.0
    m = ranking_metrics(rec, [{0}], k=4)
    assert m["precision"][0] == pytest.approx(1 / 4)


def test_duplicates_count_once():
    hits, n_rel = hit_matrix(np.array([[3, 3, 1]]), [{3}])
    assert hits.tolist() == [[True, False, False]]
    assert n_rel.tolist() == [1]


def test_no_relevant_items_gives_zero_not_nan():
    m = ranking_metrics(np.array([[1, 2]]), sp.csr_matrix((1, 5), dtype=bool))
    assert all(v[0] == 0.0 for v in m.values())


def test_perfect_ranking_beats_reversed():
    rel = [{0, 1}]
    good = ndcg_at_k(*hit_matrix(np.array([[0, 1, 5, 6]]), rel))
    bad = ndcg_at_k(*hit_matrix(np.array([[5, 6, 0, 1]]), rel))
    assert good[0] == pytest.approx(1.0) and bad[0] < good[0]
    assert average_precision_at_k(*hit_matrix(np.array([[5, 6, 0, 1]]), rel))[0] == pytest.approx((1 / 3 + 2 / 4) / 2)


def test_coverage_and_novelty():
    rec = np.array([[0, 1], [1, -1]])
    assert catalog_coverage(rec, 4) == pytest.approx(0.5)
    buyers = np.array([8, 2, 0, 0])  # of 8 customers
    assert novelty(rec, buyers, 8) == pytest.approx((0 + 2 + 2) / 3)
    assert novelty(np.array([[2]]), buyers, 8) == pytest.approx(3.0)  # never bought: floored at 1/8


def test_shape_errors():
    with pytest.raises(ValueError):
        hit_matrix(np.array([1, 2]), [{1}])
    with pytest.raises(ValueError):
        hit_matrix(np.array([[1, 2]]), [{1}, {2}])
