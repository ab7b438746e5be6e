"""The fast MCS selection returns exactly what a brute force over every BLER curve returns.

The reference evaluates ``bler_awgn`` for every MCS that has a BLER table and takes the highest
one meeting the target (what ``select_mcs`` did before it used the fast path).
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dmoe.phy._mcs import (DEFAULT_CODE_BLOCK_SIZE, _pdsch_bler_tables, bler_awgn, mcs_table,
                           select_mcs)
from dmoe.phy._mcs_fast import select_mcs_fast


def _brute_force(snr_db, table=1, bler_target=0.1, code_block_size=DEFAULT_CODE_BLOCK_SIZE):
    snr_db = np.asarray(snr_db, dtype=np.float64)
    info = mcs_table(table)
    mcs = np.full(snr_db.shape, -1, dtype=np.int32)
    bler = np.ones(snr_db.shape)
    for index in info.index[info.has_bler_table]:  # ascending: the last that fits wins
        value = bler_awgn(snr_db, np.full(snr_db.shape, index), table, code_block_size)
        fits = value <= bler_target
        mcs = np.where(fits, index, mcs).astype(np.int32)
        bler = np.where(fits, value, bler)
    return mcs, bler


def _same(snr_db, **kwargs):
    expected_mcs, expected_bler = _brute_force(snr_db, **kwargs)
    for selection in (select_mcs_fast, select_mcs):
        mcs, bler = selection(snr_db, **kwargs)
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
    for selection in (select_mcs_fast, select_mcs):
        with pytest.raises(ValueError, match=word):
            selection([10.0], **kwargs)
