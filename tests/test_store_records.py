"""The conversion every vector read goes through: the client's float lists -> float32."""

from __future__ import annotations

import numpy as np

from service.store.records import float32_rows, record_from


def test_float32_rows_rounds_exactly_as_numpy_does() -> None:
    rng = np.random.default_rng(3)
    rows = [list(map(float, rng.standard_normal(1280) * 10.0 ** rng.integers(-40, 30)))
            for _ in range(7)]
    rows[0][:4] = [float("nan"), float("inf"), -0.0, 5e-46]  # nan, inf, signed zero, denormal
    got = float32_rows(rows)
    expected = np.array(rows, dtype=np.float32)
    assert got.dtype == np.float32 and got.shape == (7, 1280) and got.flags.writeable
    assert got.tobytes() == expected.tobytes()  # bit for bit


def test_float32_rows_takes_any_sequence_and_nothing() -> None:
    assert float32_rows([]).shape == (0, 0)
    np.testing.assert_array_equal(float32_rows([(1.0, 2.0), [3.0, 4.5]]), [[1, 2], [3, 4.5]])
    record = record_from(7, {"mobilenet": [0.25, -1.0]}, None)
    assert record.id == "7" and record.payload == {}
    np.testing.assert_array_equal(record.vectors["mobilenet"], np.float32([0.25, -1.0]))
