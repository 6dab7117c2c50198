"""The gateway benchmark's verdicts: bootstrap intervals of an added percentile, and
whether such an interval meets a target (benchmarks/measure.py)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import measure  # noqa: E402


def _paired(shift_ms: float, n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """A long-tailed base latency (like Trino's SELECT 1) and the same rounds *shift_ms*
    slower with a little noise of their own."""
    rng = np.random.default_rng(seed)
    base = 30 + rng.gamma(2.0, 8.0, n)
    return base + shift_ms + rng.normal(0, 0.5, n), base


def test_the_interval_holds_the_true_shift_and_narrows_with_more_rounds():
    few = measure.added_percentile_interval(*_paired(4.0, 100), 50)
    many = measure.added_percentile_interval(*_paired(4.0, 2000), 50)
    for low, high in (few, many):
        assert low < 4.0 < high
    assert many[1] - many[0] < few[1] - few[0]


def test_rounds_are_resampled_whole_so_a_slow_round_stays_on_both_sides():
    values, base = _paired(2.0, 1000)
    low, high = measure.added_percentile_interval(values, base, 95)
    # Resampled independently, the two sides' tails would move apart by far more.
    assert high - low < 3.0
    assert low < 2.0 < high


def test_unpaired_or_empty_samples_are_refused():
    with pytest.raises(ValueError):
        measure.added_percentile_interval([1.0, 2.0], [1.0], 50)
    with pytest.raises(ValueError):
        measure.added_percentile_interval([], [], 50)


@pytest.mark.parametrize(
    ("interval", "expected"),
    [((1.0, 2.9), "met"), ((1.0, 3.0), "met"), ((3.1, 5.0), "missed"), ((2.0, 4.0), "not decided")],
)
def test_a_verdict_names_only_what_the_whole_interval_shows(interval, expected):
    assert measure.verdict(interval, 3.0) == expected
