"""The fast MCS selection returns exactly what the all-curves selection returns."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dmoe.phy._mcs import _pdsch_bler_tables, select_mcs
from dmoe.phy._mcs_fast import select_mcs_fast


def _same(snr_db, **kwargs):
    expected_mcs, expected_bler = select_mcs(snr_db, **kwargs)
    mcs, bler = select_mcs_fast(snr_db, **kwargs)
    assert mcs.dtype == expected_mcs.dtype and mcs.shape == expected_mcs.shape
    np.testing.assert_array_equal(mcs, expected_mcs)
    np.testing.assert_array_equal(bler, expected_bler)   # bit for bit


def _table_values(table):
    """BLER values that occur in the table (targets that tie with grid points)."""
    bler = _pdsch_bler_tables()[0][table - 1]
    values = np.unique(bler[np.isfinite(bler)])
    return values[(values > 0) & (values < 1)]


@settings(max_examples=30)
@given(table=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1),
       target=st.one_of(st.floats(1e-4, 0.9), st.integers(0, 10**6)),
       block=st.sampled_from([24, 100, 500, 1000, 2000, 8000]))
def test_equals_select_mcs_on_random_and_grid_snrs(table, seed, target, block):
    if isinstance(target, int):  # a value taken from the table itself: exact ties
        values = _table_values(table)
        target = float(values[target % len(values)])
    rng = np.random.default_rng(seed)
    grid = _pdsch_bler_tables()[1]
    snr = np.concatenate([
        rng.normal(12.0, 12.0, size=600),                        # anywhere, clamped outside
        rng.choice(grid, size=200),                              # exactly on grid points
        rng.choice(grid, size=100) + rng.normal(0, 1e-12, 100),  # next to grid points
        [-np.inf, np.inf, np.nan, -100.0, 100.0, grid[0], grid[-1]]])
    _same(snr.reshape(1, 1, -1), table=table, bler_target=target,
          code_block_size=block)


def test_shapes_and_scalars_like_select_mcs():
    _same(np.float64(7.3))
    _same(np.linspace(-8, 35, 2 * 3 * 4 * 5).reshape(2, 3, 4, 5), table=2, bler_target=0.01)


@pytest.mark.parametrize("kwargs, word", [
    ({"bler_target": 0.0}, "bler_target"), ({"bler_target": 1.0}, "bler_target"),
    ({"table": 3}, "table"), ({"code_block_size": 0}, "code_block_size")])
def test_rejects_what_select_mcs_rejects(kwargs, word):
    with pytest.raises(ValueError, match=word):
        select_mcs_fast([10.0], **kwargs)
