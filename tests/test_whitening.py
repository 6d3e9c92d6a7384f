"""The whitened cosine from one product per side equals whitening both sides outright."""

from __future__ import annotations

import numpy as np

from service.whitening import fit_whitening


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_cosines_and_query_side_match_whitening_both_sides() -> None:
    rng = np.random.default_rng(7)
    # correlated, non-negative features like pooled CNN ones, then unit length as stored
    mixing = rng.standard_normal((64, 64)) * np.linspace(3, 0.1, 64)
    collection = unit(np.abs(rng.standard_normal((400, 64)) @ mixing).astype(np.float32))
    whitening = fit_whitening(collection, shrinkage=4.0)
    queries, stored = collection[:5] + 0.01, collection[5:60]
    sides, lengths = whitening.query_sides(queries)
    got = whitening.cosines(stored, sides, lengths)
    expected = whitening.apply(stored) @ whitening.apply(queries).T
    np.testing.assert_allclose(got, expected, atol=2e-5)
    # ranking the plain vectors by the query side = ranking by the whitened inner product
    by_side = unit(stored) @ whitening.query_side(queries).T
    inner = (whitening.apply(stored) * np.linalg.norm(
        (stored - whitening.mean) @ whitening.matrix, axis=1, keepdims=True)) @ whitening.apply(
        queries).T
    for column in range(len(queries)):
        assert list(np.argsort(-by_side[:, column])) == list(np.argsort(-inner[:, column]))
    np.testing.assert_allclose(np.linalg.norm(whitening.query_side(queries), axis=1), 1, 1e-6)
