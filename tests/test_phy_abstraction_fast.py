"""The compact abstraction path against straightforward dense references written here.

``LinkSimulator`` evaluates link adaptation and the abstraction realisation on each link's used
subcarriers only (``_abstraction.compact_subcarriers``), sizes transport blocks once per distinct
(payload, MCS) pair, and ``mcs_rate`` runs in place. The references below work on the full
[M, S] arrays, one link at a time, with a plain log-sum-exp EESM and the closed-form QAM BER.
"""

import numpy as np
import pytest
from scipy.special import erfc

from dmoe.phy import ChannelConfig, LinkSimulator, Links, bler_awgn, mcs_rate, mcs_table
from dmoe.phy import _abstraction as _abs
from dmoe.phy._mcs import SNR_GRID_END_DB


# ----------------------------------------------------------------- dense references
def _dense_eesm(sinr, used, mcs, table):
    """Per link: -beta log(mean_{used} exp(-sinr / beta)) as a log-sum-exp, clipped."""
    betas = _abs.eesm_beta(table)
    out = np.empty(len(sinr))
    for row in range(len(sinr)):
        values = sinr[row][used[row]]
        if values.size == 0:
            out[row] = 1e-3
            continue
        beta = betas[mcs[row]] if betas[mcs[row]] > 0 else 1.0
        terms = -values / beta
        top = terms.max()
        lse = top + np.log(np.sum(np.exp(terms - top)))
        out[row] = -beta * (lse - np.log(values.size))
    return np.clip(out, 1e-3, 10.0 ** (SNR_GRID_END_DB / 10.0))


def _dense_tbler(snr, used, bits, mcs, table, attempt):
    """TB error rate of attempt ``attempt`` on the full [M, S] arrays."""
    num_re, _, cb_size, num_cb, _ = _abs.segment(bits, mcs, table)
    count = used.sum(axis=1)
    data = -(-num_re // count)
    pilots = -(-data // 13)
    sinr = attempt * (snr / (1.0 + 1.0 / pilots)[:, None])
    return _abs.tb_error_rate(_dense_eesm(sinr, used, mcs, table), mcs, cb_size, num_cb, table)


def _dense_select(snr, used, bits, table, target):
    """Highest MCS (with a BLER table) whose TB error rate <= target; lowest if none."""
    candidates = np.flatnonzero(mcs_table(table).has_bler_table)
    tbler = np.stack([_dense_tbler(snr, used, bits, np.full(len(bits), m), table, 1)
                      for m in candidates], axis=1)                      # [M, k]
    fits = tbler <= target
    best = np.where(fits.any(axis=1), len(candidates) - 1 - np.argmax(fits[:, ::-1], axis=1), 0)
    return candidates[best], tbler


def _qam_ber(sinr, bits_per_symbol):
    points = 2.0 ** bits_per_symbol
    q = 0.5 * erfc(np.sqrt(3.0 * sinr / (points - 1.0)) / np.sqrt(2.0))
    return np.clip(4.0 / bits_per_symbol * (1.0 - 1.0 / np.sqrt(points)) * q, 0.0, 0.5)


def _links(seed, shape, spread_db=(-5.0, 30.0)):
    rng = np.random.default_rng(seed)
    batch, rounds, num_links, num_subcarriers = shape
    cfg = ChannelConfig(num_subcarriers=num_subcarriers)
    # Mean SNR per link uniform in spread_db (the config's P_sc / N0 taken out).
    offset_db = 10.0 * np.log10(cfg.subcarrier_power_w / cfg.noise_power_w)
    gain = 10.0 ** ((rng.uniform(*spread_db, (batch, rounds, num_links, 1)) - offset_db) / 20.0)
    h = gain * (rng.normal(size=shape) + 1j * rng.normal(size=shape)) / np.sqrt(2.0)
    csi = h + 0.3 * gain * (rng.normal(size=shape) + 1j * rng.normal(size=shape)) / np.sqrt(2.0)
    return cfg, Links.from_channel(cfg, h, csi_h_dispatch=csi), rng


def _masks(rng, shape):
    """[batch, rounds, links, S]: a third of the links on one subcarrier, the others on many
    (random densities), three links on none."""
    mask = rng.random(shape) < rng.uniform(0.05, 1.0, shape[:-1] + (1,))
    third = shape[2] // 3
    mask[:, :, :third] = False
    single = rng.integers(0, shape[-1], shape[:2] + (third, 1))
    np.put_along_axis(mask[:, :, :third], single, True, axis=-1)
    mask[0, 0, third:third + 3] = False                         # not transmitted
    return mask


# --------------------------------------------------------------------------- tests
def test_compact_subcarriers_keeps_each_rows_used_values_in_order():
    rng = np.random.default_rng(1)
    used = rng.random((50, 24)) < rng.uniform(0, 1, (50, 1))
    used[3] = False
    values = rng.normal(size=(50, 24))
    compact_used, compact = _abs.compact_subcarriers(used, values)
    assert compact_used.shape == compact.shape == (50, max(1, used.sum(axis=1).max()))
    for row in range(50):
        count = used[row].sum()
        assert compact_used[row].tolist() == [True] * count + [False] * (compact.shape[1] - count)
        np.testing.assert_array_equal(compact[row, :count], values[row][used[row]])
        assert np.all(compact[row, count:] == 0.0)
    none_used, none_values = _abs.compact_subcarriers(np.zeros((2, 5), bool), np.ones((2, 5)))
    assert none_used.shape == (2, 1) and not none_used.any() and np.all(none_values == 0)


def test_segment_of_an_array_equals_segment_of_each_element():
    rng = np.random.default_rng(2)
    for table in (1, 2):
        candidates = np.flatnonzero(mcs_table(table).has_bler_table)
        bits = rng.integers(1, 12000, (6, 1))
        bits[0, 0] = 1
        mcs = rng.choice(candidates, (1, 9))
        together = _abs.segment(bits, mcs, table)               # broadcast [6, 9]
        saved = dict(_abs._SEGMENT_CACHE)                        # pylint: disable=protected-access
        _abs._SEGMENT_CACHE.clear()                              # pylint: disable=protected-access
        try:
            for i in range(6):
                for j in range(9):
                    alone = _abs.segment(np.array([bits[i, 0]]), np.array([mcs[0, j]]), table)
                    assert [int(part[i, j]) for part in together] == [int(a[0]) for a in alone]
        finally:
            _abs._SEGMENT_CACHE.update(saved)                    # pylint: disable=protected-access


@pytest.mark.parametrize("table", [1, 2])
def test_tb_error_rate_and_link_adaptation_equal_the_dense_reference(table):
    cfg, links, rng = _links(10 + table, (2, 1, 60, 32))
    used = _masks(rng, links.shape).reshape(-1, 32)
    keep = used.any(axis=1)
    used = used[keep]
    assert (used.sum(axis=1) == 1).sum() >= 30 and (used.sum(axis=1) >= 8).sum() >= 30
    snr = links.csi_snr_dispatch.reshape(-1, 32)[keep]
    bits = rng.integers(1, 9000, len(snr))
    bits[:20] = 1024                                              # repeated payloads
    sim = LinkSimulator(cfg, mcs_table=table)
    candidates = np.flatnonzero(mcs_table(table).has_bler_table)
    mcs = rng.choice(candidates, len(snr))
    for attempt in (1, 2, 4):
        tbler, _ = sim._block_error_rate(snr, used, bits, mcs, attempt)  # pylint: disable=W0212
        np.testing.assert_allclose(tbler, _dense_tbler(snr, used, bits, mcs, table, attempt),
                                   rtol=1e-9, atol=1e-13)
    expected, reference_tbler = _dense_select(snr, used, bits, table, sim.bler_target)
    chosen = sim.select_mcs(snr, used, bits)
    # Rows where a candidate's TB error rate ties with the target to 1e-9 may go either way.
    tie = np.any(np.abs(reference_tbler - sim.bler_target) < 1e-9, axis=1)
    assert tie.sum() <= 2
    np.testing.assert_array_equal(chosen[~tie], expected[~tie])
    assert len(np.unique(chosen)) >= 5                            # many MCSs exercised


@pytest.mark.parametrize("table, retransmissions", [(1, 3), (2, 1)])
def test_abstraction_transmit_equals_the_dense_reference(table, retransmissions):
    cfg, links, rng = _links(20 + table, (2, 2, 30, 16), spread_db=(-6.0, 20.0))
    mask = _masks(rng, links.shape)
    bits = rng.integers(0, 5000, links.shape[:3])
    bits[1, 1, :2] = 0
    sim = LinkSimulator(cfg, mcs_table=table, max_retransmissions=retransmissions)
    out = sim.transmit(links, bits, mask, seed=7)

    # Dense reference: same draws in the same order (one uniform per link and attempt, then
    # one binomial per link).
    flat_used = mask.reshape(-1, 16)
    flat_bits = bits.reshape(-1)
    sent = flat_used.any(axis=1) & (flat_bits > 0)
    used, payload = flat_used[sent], flat_bits[sent]
    mcs, _ = _dense_select(links.csi_snr_dispatch.reshape(-1, 16)[sent], used, payload, table,
                           sim.bler_target)
    snr = links.snr_dispatch.reshape(-1, 16)[sent].astype(np.float64)
    draws = np.random.default_rng(7)
    num_attempts = retransmissions + 1
    ok = np.stack([draws.random(len(snr)) >= _dense_tbler(snr, used, payload, mcs, table, a)
                   for a in range(1, num_attempts + 1)], axis=1)
    attempts = np.where(ok.any(axis=1), np.argmax(ok, axis=1) + 1, num_attempts)
    num_re = _abs.segment(payload, mcs, table)[0]
    count = used.sum(axis=1)
    data = -(-num_re // count)
    pilots = -(-data // 13)
    single = snr / (1.0 + 1.0 / pilots)[:, None]
    qm = mcs_table(table).modulation_order[mcs].astype(np.float64)
    ber = np.array([_qam_ber(attempts[i] * single[i][used[i]], qm[i]).mean()
                    for i in range(len(snr))])
    errors = draws.binomial(payload, np.where(ok.any(axis=1), 0.0, ber))
    airtime = attempts * (data + pilots) * _abs.ofdm_symbol_duration_s(cfg.subcarrier_spacing_hz)

    assert ok[:, 0].mean() < 0.99 and (attempts > 1).any()       # HARQ exercised
    assert (errors > 0).any()
    np.testing.assert_array_equal(out.mcs.reshape(-1)[sent], mcs)
    np.testing.assert_array_equal(out.mcs.reshape(-1)[~sent], -1)
    np.testing.assert_array_equal(out.delivered.reshape(-1)[sent], ok.any(axis=1))
    np.testing.assert_array_equal(out.delivered.reshape(-1)[~sent],
                                  ((flat_bits == 0) & flat_used.any(axis=1))[~sent])
    np.testing.assert_array_equal(out.block_error.reshape(-1)[sent], ~ok[:, 0])
    np.testing.assert_array_equal(out.retransmissions.reshape(-1)[sent], attempts - 1)
    np.testing.assert_array_equal(out.bit_errors.reshape(-1)[sent], errors)
    np.testing.assert_allclose(out.airtime_s.reshape(-1)[sent], airtime, rtol=1e-15)
    np.testing.assert_array_equal(out.airtime_s.reshape(-1)[~sent], 0.0)
    np.testing.assert_allclose(out.energy_j.reshape(-1)[sent],
                               cfg.subcarrier_power_w * count * airtime, rtol=1e-15)


@pytest.mark.parametrize("table", [1, 2])
def test_mcs_rate_equals_brute_force_over_every_bler_curve(table):
    rng = np.random.default_rng(30 + table)
    snr = np.concatenate([10.0 ** (rng.normal(10.0, 12.0, 3000) / 10.0), [0.0, np.inf, 1e-30]])
    snr = snr.reshape(3, -1)
    info = mcs_table(table)
    with np.errstate(divide="ignore"):
        snr_db = 10.0 * np.log10(snr)
    rate = np.zeros(snr.shape)
    for m in info.index[info.has_bler_table]:          # ascending: the last that fits wins
        bler = bler_awgn(snr_db, np.full(snr.shape, m), table)
        rate = np.where(bler <= 0.1, 30e3 * info.spectral_efficiency[m] * (1.0 - bler), rate)
    np.testing.assert_array_equal(mcs_rate(snr, 30e3, table=table), rate)
    np.testing.assert_array_equal(mcs_rate(snr.astype(np.float32), 30e3, table=table),
                                  mcs_rate(snr.astype(np.float32).astype(np.float64), 30e3,
                                           table=table))
    scalar = mcs_rate(100.0, 30e3, table=table)
    assert np.ndim(scalar) == 0 and scalar == mcs_rate(np.array([100.0]), 30e3, table=table)[0]
