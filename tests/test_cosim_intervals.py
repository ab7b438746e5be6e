"""95 % intervals of accuracies: Wilson score intervals against independent references."""

import math

import numpy as np
import pytest
from scipy.stats import binom, binomtest

from dmoe.cosim.intervals import wilson_interval

Z95 = 1.959963984540054


def _roots(k, n, z=Z95):
    # (k/n - p)^2 = z^2 p (1 - p) / n  <=>  (1 + z^2/n) p^2 - (2 k/n + z^2/n) p + (k/n)^2 = 0
    share = k / n
    return sorted(np.roots([1 + z * z / n, -(2 * share + z * z / n), share * share]).real)


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 10), (8, 10), (37, 449), (440, 449),
                                 (1999, 2000), (512, 1024)])
def test_wilson_equals_the_roots_of_its_defining_quadratic_and_scipy(k, n):
    low, high = wilson_interval(k, n)
    assert np.allclose([low, high], _roots(k, n), atol=1e-9)
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert np.allclose([low, high], [ref.low, ref.high], atol=1e-12)


def test_hand_computed_bounds_at_zero_and_all_successes():
    # k = 0: low = 0, high = z^2 / (n + z^2); k = n mirrors it.
    n = 10
    low, high = wilson_interval([0, n], [n, n])
    assert low[0] == 0.0 and math.isclose(high[0], Z95**2 / (n + Z95**2), rel_tol=1e-12)
    assert high[1] == 1.0 and math.isclose(low[1], n / (n + Z95**2), rel_tol=1e-12)


@pytest.mark.parametrize("n", [20, 100, 1000])
def test_coverage_is_close_to_95_percent(n):
    # Exact coverage: sum of the binomial probabilities of the k whose interval holds p.
    k = np.arange(n + 1)
    low, high = wilson_interval(k, n)
    coverage = np.array([binom.pmf(k, n, p)[(low <= p) & (p <= high)].sum()
                         for p in np.linspace(0.02, 0.98, 49)])
    assert 0.94 <= coverage.mean() <= 0.96
    assert coverage.min() >= 0.90


def test_coverage_by_simulation():
    rng = np.random.default_rng(0)
    p, n = 0.83, 300
    k = rng.binomial(n, p, size=20000)
    low, high = wilson_interval(k, n)
    assert abs(np.mean((low <= p) & (p <= high)) - 0.95) < 0.01


def test_interval_is_vectorised_and_brackets_the_share():
    k = np.array([[0, 3], [7, 9]])
    low, high = wilson_interval(k, 9)
    assert low.shape == high.shape == (2, 2)
    assert np.all((low <= k / 9) & (k / 9 <= high) & (low >= 0) & (high <= 1))
    # A lower confidence gives a narrower interval.
    low80, high80 = wilson_interval(k, 9, confidence=0.8)
    assert np.all(high80 - low80 < high - low)


def test_rows_carry_an_interval_for_every_accuracy_summed_over_chunks():
    from dmoe.cosim import Tally

    chunks = []
    for correct, total, sort in ((5, 6, (1, 2)), (3, 4, (0, 0))):
        tally = Tally(num_layers=2, max_experts=2, compute_energy_j=0.0, compute_time_s=0.0)
        tally.add_counts({"accuracy": (correct, total), "accuracy_sort": sort}, total)
        chunks.append(tally)
    merged = Tally.merge(chunks)
    assert merged.counts == {"accuracy": (8, 10), "accuracy_sort": (1, 2)}
    low, high = merged.interval("accuracy")
    assert merged.accuracy() == 0.8
    assert np.allclose([low, high], _roots(8, 10))
    assert np.allclose(merged.interval("accuracy_sort"), _roots(1, 2))
    assert all(math.isnan(v) for v in Tally(1, 1, 0.0, 0.0).interval("accuracy"))


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="0 <= successes <= trials"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="confidence must be a float in"):
        wilson_interval(1, 10, confidence=95)


def test_tradeoff_figures_draw_the_intervals_as_error_bars(tmp_path, monkeypatch):
    import json

    from matplotlib.axes import Axes

    from dmoe.cosim.plots import _synthetic_table, plot_results

    drawn = []
    errorbar = Axes.errorbar

    def spy(self, x, y, yerr=None, **kwargs):
        drawn.append(np.asarray(yerr, dtype=float))
        return errorbar(self, x, y, yerr=yerr, **kwargs)

    monkeypatch.setattr(Axes, "errorbar", spy)
    table = _synthetic_table()
    # Homogeneous schemes only, so that no layer-wise comparison figure adds its own bars.
    table = table[~table["scheme"].str.endswith("_layerwise")]
    for name, data in (("with", table), ("without", table.drop(
            columns=["accuracy_ci_low", "accuracy_ci_high"]))):
        run = tmp_path / name
        run.mkdir()
        data.to_parquet(run / "results.parquet")
        (run / "manifest.json").write_text(json.dumps({"axes": {"importance": []}}))
        drawn.clear()
        written = plot_results(run, formats=("png",), log=lambda line: None)
        assert "tradeoff" in written
        if name == "with":
            # One curve per scheme, bars below and above each point, none negative.
            assert len(drawn) == table["scheme"].nunique()
            assert all(bars.shape[0] == 2 and np.all(bars >= 0) and np.any(bars > 0)
                       for bars in drawn)
        else:
            assert drawn == []
