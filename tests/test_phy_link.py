"""LinkSimulator: energy/airtime accounting, HARQ, link adaptation, bit-true vs abstraction."""

import numpy as np
import pytest

from dmoe.phy import ChannelConfig, Links, LinkSimulator

NUM_SUBCARRIERS = 16
CFG = ChannelConfig(num_subcarriers=NUM_SUBCARRIERS, subcarrier_spacing_hz=30e3)


def awgn_links(snr_db, num_links, cfg=CFG):
    """Links with the same flat channel on every subcarrier: per-subcarrier SNR = snr_db."""
    amplitude = np.sqrt(10.0 ** (snr_db / 10.0) * cfg.noise_power_w / cfg.subcarrier_power_w)
    h = np.full((1, 1, num_links, cfg.num_subcarriers), amplitude, dtype=np.complex64)
    return Links.from_channel(cfg, h)


def full_mask(links):
    return np.ones(links.shape, dtype=bool)


def abstraction_threshold_db(mcs, payload_bits, grid=np.arange(-8.0, 30.0, 0.05)):
    """SNR where the abstraction's first-attempt TB error probability falls to 10 %."""
    sim = LinkSimulator(CFG, max_retransmissions=0)
    snr = 10.0 ** (grid / 10.0)[:, None] * np.ones((1, NUM_SUBCARRIERS))
    tbler, _ = sim._block_error_rate(snr, np.ones(snr.shape, bool),
                                     np.full(len(grid), payload_bits), np.full(len(grid), mcs))
    return float(grid[np.argmax(tbler <= 0.1)])


# ----------------------------------------------------------------- accounting
def test_energy_is_subcarrier_power_times_subcarriers_times_airtime():
    cfg = ChannelConfig(num_subcarriers=32)
    links = awgn_links(15.0, 6, cfg)
    mask = np.zeros(links.shape, dtype=bool)
    for link, count in enumerate([1, 2, 5, 8, 17, 32]):
        mask[0, 0, link, :count] = True
    out = LinkSimulator(cfg).transmit(links, 3000, mask, mcs=10, seed=0)
    tx_power_w = 10.0 ** ((23.0 - 30.0) / 10.0)
    expected = tx_power_w / 32 * mask.sum(axis=-1) * out.airtime_s
    np.testing.assert_allclose(out.energy_j, expected, rtol=1e-12)
    # 5G NR numerology 1 (30 kHz): 14 OFDM symbols incl. cyclic prefix per 0.5 ms slot, so the
    # airtime is a whole number of 1/28000 s symbols.
    symbols = out.airtime_s * 28000.0
    np.testing.assert_allclose(symbols, np.round(symbols), atol=1e-6)
    assert np.all(out.airtime_s > 0)


def test_airtime_close_to_payload_over_spectral_efficiency():
    # One subcarrier, a long TB: airtime ~ B / (Q_m R) symbols plus one pilot per 13 data
    # symbols, independent of the code's segmentation details up to TB-size quantisation.
    cfg = ChannelConfig(num_subcarriers=1)
    links = awgn_links(30.0, 1, cfg)
    payload_bits = 20000
    for mcs, spectral_efficiency in [(4, 2 * 308 / 1024), (13, 4 * 490 / 1024),
                                     (24, 6 * 754 / 1024)]:
        out = LinkSimulator(cfg).transmit(links, payload_bits, full_mask(links), mcs=mcs, seed=0)
        symbols = payload_bits / spectral_efficiency * 14 / 13
        assert out.airtime_s[0, 0, 0] == pytest.approx(symbols / 28000.0, rel=0.04)


def test_airtime_grows_as_mcs_falls():
    links = awgn_links(30.0, 1)
    sim = LinkSimulator(CFG)
    airtimes = [sim.transmit(links, 4000, full_mask(links), mcs=m, seed=0).airtime_s.item()
                for m in (3, 6, 9, 12, 15, 18, 21, 24, 27)]
    assert all(a > b for a, b in zip(airtimes, airtimes[1:])), airtimes


def test_link_without_subcarriers_is_not_transmitted():
    links = awgn_links(20.0, 3)
    mask = full_mask(links)
    mask[0, 0, 1] = False
    for fidelity in ("abstraction", "link"):
        out = LinkSimulator(CFG, fidelity=fidelity).transmit(links, 800, mask, mcs=10, seed=0)
        assert out.delivered.tolist() == [[[True, False, True]]]
        assert out.airtime_s[0, 0, 1] == 0 and out.energy_j[0, 0, 1] == 0
        assert out.mcs[0, 0, 1] == -1


# -------------------------------------------------------------------- HARQ / LA
def test_retransmissions_reduce_failures():
    payload_bits, mcs = 800, 10
    snr_db = abstraction_threshold_db(mcs, payload_bits) - 0.5   # first-attempt BLER ~ 50 %
    links = awgn_links(snr_db, 400)
    fail = {}
    for retx in (0, 1, 3):
        out = LinkSimulator(CFG, max_retransmissions=retx).transmit(
            links, payload_bits, full_mask(links), mcs=mcs, seed=3)
        fail[retx] = 1.0 - out.delivered.mean()
        assert np.all(out.retransmissions <= retx)
        # Airtime counts every attempt.
        np.testing.assert_allclose(out.airtime_s / out.airtime_s.min(),
                                   1 + out.retransmissions)
    assert fail[0] > 0.2 and fail[1] < fail[0] / 2 and fail[3] <= fail[1]
    # Bit-true chain: chase combining of 3 extra attempts (+6 dB) rescues the blocks.
    links = awgn_links(snr_db, 24)
    one = LinkSimulator(CFG, "link", max_retransmissions=0).transmit(
        links, payload_bits, full_mask(links), mcs=mcs, seed=1)
    four = LinkSimulator(CFG, "link", max_retransmissions=3).transmit(
        links, payload_bits, full_mask(links), mcs=mcs, seed=1)
    assert (1 - four.delivered.mean()) < (1 - one.delivered.mean())
    assert four.retransmissions.max() >= 1


def test_link_adaptation_meets_target_and_follows_snr():
    sim = LinkSimulator(CFG, max_retransmissions=0, bler_target=0.1)
    chosen = []
    for snr_db in (0.0, 8.0, 16.0, 24.0):
        links = awgn_links(snr_db, 300)
        out = sim.transmit(links, 1500, full_mask(links), mcs=None, seed=5)
        assert len(np.unique(out.mcs)) == 1
        chosen.append(int(out.mcs[0, 0, 0]))
        # Realised first-attempt BLER within Monte-Carlo reach of the 10 % target.
        assert out.block_error.mean() <= 0.1 + 3 * np.sqrt(0.1 * 0.9 / 300)
    assert chosen == sorted(chosen) and chosen[0] < chosen[-1]


def test_link_adaptation_uses_the_csi_view_not_the_true_channel():
    true = awgn_links(20.0, 50)
    stale_h = true.h_dispatch / np.sqrt(10.0 ** (12.0 / 10.0))   # scheduler believes 8 dB
    links = Links.from_channel(CFG, true.h_dispatch, csi_h_dispatch=stale_h)
    out = LinkSimulator(CFG).transmit(links, 1500, full_mask(links), mcs=None, seed=0)
    reference = LinkSimulator(CFG).transmit(awgn_links(8.0, 50), 1500, full_mask(links),
                                            mcs=None, seed=0)
    np.testing.assert_array_equal(out.mcs, reference.mcs)
    # Realised on the true (better) channel: nothing fails.
    assert out.block_error.sum() == 0


# --------------------------------------------------- bit-true against abstraction
@pytest.mark.parametrize("mcs", [10, 15, 20])      # 16QAM R 0.33, 16QAM R 0.60, 64QAM R 0.55
def test_abstraction_snr_at_10_percent_bler_within_1db_of_bit_true(mcs):
    payload_bits = 800
    threshold = abstraction_threshold_db(mcs, payload_bits)
    sim = LinkSimulator(CFG, fidelity="link", max_retransmissions=0)
    links_low, links_high = awgn_links(threshold - 1.0, 60), awgn_links(threshold + 1.0, 60)
    low = sim.transmit(links_low, payload_bits, full_mask(links_low), mcs=mcs, seed=11)
    high = sim.transmit(links_high, payload_bits, full_mask(links_high), mcs=mcs, seed=12)
    # The bit-true BLER crosses 10 % between threshold - 1 dB and threshold + 1 dB.
    assert low.block_error.mean() > 0.1, (threshold, low.block_error.mean())
    assert high.block_error.mean() < 0.1, (threshold, high.block_error.mean())


def test_bit_true_received_payload_carries_the_bit_errors():
    rng = np.random.default_rng(0)
    payload_bits = 800
    payload = rng.integers(0, 2, (1, 1, 4, 900), dtype=np.uint8)
    amplitude = np.sqrt(CFG.noise_power_w / CFG.subcarrier_power_w)
    snr_db = np.array([30.0, 30.0, -2.0, -2.0])
    h = (amplitude * 10.0 ** (snr_db / 20.0))[None, None, :, None] * np.ones(
        (1, 1, 1, NUM_SUBCARRIERS))
    links = Links.from_channel(CFG, h.astype(np.complex64))
    out = LinkSimulator(CFG, "link", max_retransmissions=0).transmit(
        links, payload_bits, full_mask(links), mcs=10, payload=payload, seed=0)
    assert out.received.shape == payload.shape
    errors = [(out.received[0, 0, k, :800] != payload[0, 0, k, :800]).sum() for k in range(4)]
    assert out.bit_errors.ravel().tolist() == errors
    assert out.delivered.ravel().tolist() == [True, True, False, False]
    assert errors[0] == 0 and errors[1] == 0 and errors[2] > 0 and errors[3] > 0
    assert np.all(out.received[..., 800:] == 0)   # beyond the payload: nothing


def test_abstraction_failed_blocks_get_uncoded_bit_errors():
    links = awgn_links(-3.0, 20)
    payload = np.zeros((1, 1, 20, 2000), dtype=np.uint8)
    out = LinkSimulator(CFG, max_retransmissions=0).transmit(
        links, 2000, full_mask(links), mcs=10, payload=payload, seed=0)
    assert not out.delivered.any()
    np.testing.assert_array_equal(out.received.sum(axis=-1), out.bit_errors)
    # Uncoded 16QAM at -3 dB (minus the LS-estimation loss): BER ~ 0.3; not 0, not 0.5.
    ber = out.bit_errors.mean() / 2000
    assert 0.2 < ber < 0.45


# ------------------------------------------------------------ inputs and seeds
def test_invalid_inputs_name_the_field():
    links = awgn_links(10.0, 2)
    sim = LinkSimulator(CFG)
    with pytest.raises(ValueError, match="subcarriers"):
        sim.transmit(links, 100, np.ones((1, 1, 2, 8), bool), mcs=5)
    with pytest.raises(ValueError, match="payload_bits"):
        sim.transmit(links, -1, full_mask(links), mcs=5)
    with pytest.raises(ValueError, match="payload_bits"):
        sim.transmit(links, np.array([1, 2, 3]), full_mask(links), mcs=5)
    with pytest.raises(ValueError, match="mcs"):
        sim.transmit(links, 100, full_mask(links), mcs=40)
    with pytest.raises(ValueError, match="direction"):
        sim.transmit(links, 100, full_mask(links), mcs=5, direction="uplink")
    with pytest.raises(ValueError, match="payload"):
        sim.transmit(links, 100, full_mask(links), mcs=5, payload=np.zeros((1, 1, 2, 50)))
    with pytest.raises(ValueError, match="fidelity"):
        LinkSimulator(CFG, fidelity="system")
    with pytest.raises(ValueError, match="max_retransmissions"):
        LinkSimulator(CFG, max_retransmissions=-1)
    with pytest.raises(ValueError, match="bler_target"):
        LinkSimulator(CFG, bler_target=1.5)
    with pytest.raises(ValueError, match="mcs_table"):
        LinkSimulator(CFG, mcs_table=7)


@pytest.mark.parametrize("fidelity", ["abstraction", "link"])
def test_same_seed_same_result_different_seed_different_draws(fidelity):
    payload_bits, mcs = 800, 10
    links = awgn_links(abstraction_threshold_db(mcs, payload_bits) - 0.3, 40)
    sim = LinkSimulator(CFG, fidelity=fidelity, max_retransmissions=1)
    first = sim.transmit(links, payload_bits, full_mask(links), mcs=mcs, seed=7)
    again = sim.transmit(links, payload_bits, full_mask(links), mcs=mcs, seed=7)
    other = sim.transmit(links, payload_bits, full_mask(links), mcs=mcs, seed=8)
    for name in ("delivered", "bit_errors", "airtime_s", "energy_j", "retransmissions",
                 "block_error"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.block_error, other.block_error)


def test_low_rate_payload_is_split_into_several_transport_blocks():
    # MCS 4 (QPSK, R = 0.30 < 1/3): 5000 bits would need LDPC base graph 1 below rate 1/3,
    # which Sionna cannot code; the payload goes as two TBs of <= 3800 bits, back to back.
    from dmoe.phy import _abstraction as _abs
    num_re, tb_size, _, num_cb, num_tb = _abs.segment(np.array([5000]), np.array([4]), 1)
    assert num_tb[0] == 2 and 2 * tb_size[0] >= 5000 and tb_size[0] <= 3824
    links = awgn_links(10.0, 3)
    payload = np.random.default_rng(1).integers(0, 2, (1, 1, 3, 5000), dtype=np.uint8)
    out = LinkSimulator(CFG, "link", max_retransmissions=0).transmit(
        links, 5000, full_mask(links), mcs=4, payload=payload, seed=0)
    assert out.delivered.all() and out.bit_errors.sum() == 0
    np.testing.assert_array_equal(out.received, payload)
    data_symbols = -(-num_re[0] // NUM_SUBCARRIERS)
    expected = (data_symbols + -(-data_symbols // 13)) / 28000.0
    np.testing.assert_allclose(out.airtime_s, expected)
