"""Transport-block and grid sizing: every MCS codes every payload, both fidelities agree.

Regression for small payloads at high code rates (272 bits at MCS 28 on one subcarrier used to
ask Sionna's LDPC encoder for rate 288/294 > 0.95) and for the 24-bit minimum TB of tiny
payloads.
"""

import numpy as np
import pytest
from sionna.phy.fec.ldpc import LDPC5GEncoder
from sionna.phy.nr.utils import calculate_tb_size

from dmoe.phy import ChannelConfig, Links, LinkSimulator
from dmoe.phy import _abstraction as _abs

MCSS = (3, 10, 20, 27, 28)
PAYLOADS = (1, 17, 272, 528, 4000)
CFG = ChannelConfig(num_subcarriers=3, subcarrier_spacing_hz=30e3)


def high_snr_links(num_links, snr_db=60.0):
    amplitude = np.sqrt(10.0 ** (snr_db / 10.0) * CFG.noise_power_w / CFG.subcarrier_power_w)
    h = np.full((1, 1, num_links, CFG.num_subcarriers), amplitude, dtype=np.complex64)
    return Links.from_channel(CFG, h)


def sweep():
    """One link per (MCS, payload, 1 or 3 subcarriers): [links] arrays and the mask."""
    mcs, bits, width = (np.array(v).ravel() for v in np.meshgrid(MCSS, PAYLOADS, (1, 3),
                                                                  indexing="ij"))
    links = high_snr_links(len(mcs))
    mask = np.arange(CFG.num_subcarriers)[None, :] < width[:, None]
    return links, mcs, bits, mask.reshape(links.shape)


@pytest.mark.parametrize("table", [1, 2])
def test_every_code_block_is_coded_at_most_at_the_mcs_rate(table):
    """TS 38.212 rate matching of the sized grid, checked with Sionna's own TB/LDPC rules."""
    qm, rate, has_table = _abs.mcs_table_arrays(table)
    # The sweep's payloads, the 24-bit minimum TB, and the low-rate split's edges (3753-3824
    # bits once went as one TB of 3824 + 16 CRC bits: base graph 1 below rate 1/3).
    payload = np.array(PAYLOADS + (24, 25, 3752, 3753, 3790, 7600, 20000))
    m, b = (v.ravel() for v in np.meshgrid(np.flatnonzero(has_table), payload, indexing="ij"))
    num_re, tb_size, cb_size, num_cb, num_tb = _abs.segment(b, m, table)
    assert np.all(num_tb * tb_size >= b)
    assert np.all(num_re % num_tb == 0)
    re_per_tb = num_re // num_tb
    # Sionna's TB configuration of one of the link's TBs in that many resource elements.
    tbs, cbs, ncb, _, _, cw = (np.asarray(v) for v in calculate_tb_size(
        qm[m], rate[m], target_tb_size=tb_size.astype(np.float64),
        num_coded_bits=re_per_tb * qm[m]))
    np.testing.assert_array_equal(tbs, tb_size)
    np.testing.assert_array_equal(cbs, cb_size)
    np.testing.assert_array_equal(ncb * num_tb, num_cb)
    shortest = np.where(cw > 0, cw, np.iinfo(np.int32).max).min(axis=-1)
    # Every code block (CRC included) at no more than R (< 0.95, Sionna's limit).
    assert np.all(cb_size <= rate[m] * shortest + 1e-9)
    # TS 38.212 7.2.2 base graph: BG1 for blocks > 3824 bits at R > 1/4 (or > 292 bits at
    # R > 0.67), which without repetition (Sionna) goes no lower than rate 1/3; BG2 1/5.
    k, n = cbs, cw.max(axis=-1)
    bg1 = ((k > 3824) & (rate[m] > 0.25)) | ((k > 292) & (rate[m] > 0.67))
    assert np.all(k / n >= np.where(bg1, 1 / 3, 1 / 5))
    assert np.all(k <= np.where(bg1, 8448, 3840))
    # Sionna's encoder accepts the extremes (it raises otherwise; ~0.1 s per encoder, so only
    # these): the highest rate, and the lowest rate of each base graph.
    ratio = k / n
    for group in (bg1, ~bg1):
        for i in (np.argmax(np.where(group, ratio, -1)), np.argmin(np.where(group, ratio, 2))):
            if group[i]:
                LDPC5GEncoder(int(k[i]), int(n[i]))


def test_bit_true_delivers_every_mcs_and_payload_error_free_at_high_snr():
    # Three chains (a graph trace of 2-5 s each): the reported 272 bits at MCS 28 on one
    # subcarrier, a 1-bit payload (24-bit minimum TB) and a low-rate payload split into two TBs
    # on three subcarriers. The sizing test above covers every other MCS and payload.
    mcs = np.array([28, 20, 3])
    bits = np.array([272, 1, 4000])
    width = np.array([1, 1, 3])
    links = high_snr_links(len(mcs))
    mask = (np.arange(CFG.num_subcarriers)[None, :] < width[:, None]).reshape(links.shape)
    payload = np.random.default_rng(0).integers(0, 2, (1, 1, len(mcs), max(PAYLOADS)),
                                                dtype=np.uint8)
    sim = LinkSimulator(CFG, fidelity="link", max_retransmissions=0)
    out = sim.transmit(links, bits[None, None], mask, mcs=mcs[None, None], payload=payload,
                       seed=0)
    assert out.delivered.all() and not out.block_error.any()
    assert out.bit_errors.sum() == 0
    for k, b in enumerate(bits):
        np.testing.assert_array_equal(out.received[0, 0, k, :b], payload[0, 0, k, :b])
    # Link adaptation at 60 dB picks the top MCS (the reported failure), which now codes.
    adapted = sim.transmit(links, 272, mask, seed=1)
    assert np.all(adapted.mcs == 28) and adapted.delivered.all()
    assert adapted.bit_errors.sum() == 0


def test_both_fidelities_account_the_same_airtime_and_energy():
    links, mcs, bits, mask = sweep()
    out = LinkSimulator(CFG, max_retransmissions=0).transmit(
        links, bits[None, None], mask, mcs=mcs[None, None], seed=0)
    assert out.delivered.all()
    # Airtime: ceil(num_re / |N_k|) data symbols plus one pilot symbol per 13, at 30 kHz.
    num_re = _abs.segment(bits, mcs, 1)[0]
    data = -(-num_re // mask[0, 0].sum(axis=-1))
    np.testing.assert_allclose(out.airtime_s[0, 0], (data + -(-data // 13)) / 28000.0)
    np.testing.assert_allclose(out.energy_j, CFG.subcarrier_power_w * mask.sum(-1) * out.airtime_s)
    # The bit-true chain on the links of the test above (its chains are cached when it ran
    # first): identical airtime and energy.
    pick = [np.flatnonzero((mcs == m) & (bits == b) & (mask[0, 0].sum(-1) == w))[0]
            for m, b, w in [(28, 272, 1), (20, 1, 1), (3, 4000, 3)]]
    link = LinkSimulator(CFG, fidelity="link", max_retransmissions=0).transmit(
        high_snr_links(len(pick)), bits[pick][None, None], mask[:, :, pick],
        mcs=mcs[pick][None, None], seed=0)
    np.testing.assert_array_equal(link.airtime_s[0, 0], out.airtime_s[0, 0, pick])
    np.testing.assert_array_equal(link.energy_j[0, 0], out.energy_j[0, 0, pick])
