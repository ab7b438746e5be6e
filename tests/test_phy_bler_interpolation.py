"""The one BLER interpolation of the PDSCH tables (used by bler_awgn and the PHY abstraction)."""

import numpy as np

from dmoe.phy import _abstraction, _mcs


def test_interpolation_is_the_table_on_the_grid_and_the_chord_between():
    bler, snr_grid, cbs_grid = _mcs._pdsch_bler_tables()
    mcs, cbs, point = 10, 3, 150
    low, high = float(bler[0, mcs, cbs, point]), float(bler[0, mcs, cbs, point + 1])
    on_grid = _mcs.interpolate_bler(snr_grid[point], mcs, cbs, 1)
    midway = _mcs.interpolate_bler((snr_grid[point] + snr_grid[point + 1]) / 2, mcs, cbs, 1)
    assert on_grid == low
    assert np.isclose(midway, (low + high) / 2, rtol=1e-12, atol=0)


def test_halfway_code_block_sizes_take_the_smaller_block_everywhere():
    _, _, cbs_grid = _mcs._pdsch_bler_tables()
    step = cbs_grid[1] - cbs_grid[0]
    sizes = cbs_grid[:3] + step / 2                                # exactly halfway
    assert _mcs.code_block_index(sizes, cbs_grid).tolist() == [0, 1, 2]
    assert _mcs.code_block_index([cbs_grid[0] - 1e4, cbs_grid[-1] + 1e4], cbs_grid).tolist() \
        == [0, len(cbs_grid) - 1]
    # bler_awgn and the abstraction's per-TB rate (one code block) agree at a halfway size.
    snr_db, mcs, size = 8.0, 12, float(sizes[1])
    tb = _abstraction.tb_error_rate(np.array([10 ** (snr_db / 10)]), np.array([mcs]),
                                    np.array([size]), np.array([1]), 1)
    assert np.isclose(tb[0], _mcs.bler_awgn(snr_db, mcs, code_block_size=size), rtol=1e-12)


def test_an_mcs_without_a_table_has_bler_one():
    bler, _, _ = _mcs._pdsch_bler_tables()
    missing = np.flatnonzero(np.isnan(bler[0, :, 0, 0]))
    if missing.size:
        assert np.all(_mcs.interpolate_bler(np.array([0.0, 30.0]), missing[0], 0, 1) == 1.0)
