"""Planning rates and the 5G NR MCS look-up against TS 38.214 and information theory."""

import numpy as np
import pytest

from dmoe.phy import bler_awgn, mcs_rate, mcs_table, select_mcs, shannon_rate

# TS 38.214 Table 5.1.3.1-1 (table 1) and 5.1.3.1-2 (table 2): (Q_m, 1024 x R) per index.
_TS38214 = {
    1: [(2, 120), (2, 157), (2, 193), (2, 251), (2, 308), (2, 379), (2, 449), (2, 526),
        (2, 602), (2, 679), (4, 340), (4, 378), (4, 434), (4, 490), (4, 553), (4, 616),
        (4, 658), (6, 438), (6, 466), (6, 517), (6, 567), (6, 616), (6, 666), (6, 719),
        (6, 772), (6, 822), (6, 873), (6, 910), (6, 948)],
    2: [(2, 120), (2, 193), (2, 308), (2, 449), (2, 602), (4, 378), (4, 434), (4, 490),
        (4, 553), (4, 616), (4, 658), (6, 466), (6, 517), (6, 567), (6, 616), (6, 666),
        (6, 719), (6, 772), (6, 822), (6, 873), (8, 682.5), (8, 711), (8, 754), (8, 797),
        (8, 841), (8, 885), (8, 916.5), (8, 948)],
}


def test_shannon_rate_closed_form():
    snr = np.array([0.0, 1.0, 3.0, 1e3])
    np.testing.assert_allclose(shannon_rate(snr, 15e3), 15e3 * np.array(
        [0.0, 1.0, 2.0, np.log2(1001.0)]))
    with pytest.raises(ValueError, match="subcarrier_spacing_hz"):
        shannon_rate(snr, 0.0)


@pytest.mark.parametrize("table", [1, 2])
def test_mcs_table_matches_ts38214(table):
    info = mcs_table(table)
    reference = _TS38214[table]
    np.testing.assert_array_equal(info.modulation_order[:len(reference)],
                                  [q for q, _ in reference])
    np.testing.assert_allclose(info.code_rate[:len(reference)],
                               [r / 1024 for _, r in reference], atol=1e-6)
    np.testing.assert_allclose(info.spectral_efficiency, info.modulation_order * info.code_rate)


@pytest.mark.parametrize("table", [1, 2])
def test_bler_threshold_respects_capacity(table):
    """No code beats capacity: the SNR at 10 % BLER exceeds 2**SE - 1 for every MCS."""
    info = mcs_table(table)
    snr_db = np.arange(-5.0, 30.0, 0.05)
    for m in info.index[info.has_bler_table]:
        bler = bler_awgn(snr_db, m, table)
        assert np.all(np.diff(bler) <= 1e-6), f"BLER of MCS {m} must fall with SNR"
        # Every MCS reaches 10 % (table 2 MCS 27 only on the tail above Sionna's 25 dB).
        assert np.any(bler <= 0.1), f"MCS {m} never reaches 10 % BLER below 30 dB"
        threshold_db = snr_db[np.argmax(bler <= 0.1)]
        capacity_db = 10 * np.log10(2 ** info.spectral_efficiency[m] - 1)
        assert threshold_db > capacity_db


def test_select_mcs_is_highest_meeting_target():
    snr_db = np.linspace(-8.0, 32.0, 161)
    for table in (1, 2):
        info = mcs_table(table)
        mcs, bler = select_mcs(snr_db, table=table, bler_target=0.1)
        for s, m, b in zip(snr_db, mcs, bler):
            higher = info.index[info.has_bler_table & (info.index > m)]
            assert all(bler_awgn(s, h, table) > 0.1 for h in higher)
            if m >= 0:
                assert b <= 0.1 and b == pytest.approx(bler_awgn(s, m, table))
            else:
                assert b == 1.0


def test_mcs_rate_below_shannon_and_saturates():
    snr = 10 ** (np.linspace(-10.0, 40.0, 201) / 10)
    for table in (1, 2):
        rate = mcs_rate(snr, 30e3, table=table)
        assert np.all(rate <= shannon_rate(snr, 30e3))
        assert rate[0] == 0.0
        info = mcs_table(table)
        usable = [m for m in info.index[info.has_bler_table] if bler_awgn(40.0, m, table) <= 0.1]
        top = info.spectral_efficiency[max(usable)]
        assert 0.99 * 30e3 * top <= rate[-1] <= 30e3 * top
    grid = np.random.default_rng(0).exponential(10.0, size=(2, 3, 4, 5))
    assert mcs_rate(grid, 30e3).shape == grid.shape


def test_rate_model_validation():
    with pytest.raises(ValueError, match="table"):
        mcs_table(3)
    with pytest.raises(ValueError, match="bler_target"):
        mcs_rate(1.0, 30e3, bler_target=1.0)
    with pytest.raises(ValueError, match="subcarrier_spacing_hz"):
        mcs_rate(1.0, -1.0)
    with pytest.raises(ValueError, match="mcs_index"):
        bler_awgn(0.0, 29)
