"""Run settings of dmoe.phy: precision (single / double) and execution mode (eager / graph / xla).

Checks dtypes (of the outputs and of the TensorFlow graphs' intermediate tensors), channel
statistics in double precision against closed forms, single vs double rate distributions, and
the bit-true link chain in every execution mode.
"""

import math

import numpy as np
import pytest
import scipy.special
import tensorflow as tf

from dmoe.phy import ChannelConfig, Links, LinkSimulator, sample_links
from dmoe.phy import _bittrue, _channels
from test_phy_channels import C, _ref_umi  # TR 38.901 UMi path loss, written out there

_SINGLE = {tf.float32, tf.complex64}
_DOUBLE = {tf.float64, tf.complex128}
_DTYPES = {"single": (np.complex64, np.float32), "double": (np.complex128, np.float64)}


def _assert_links_dtypes(links, precision):
    complex_dtype, real_dtype = _DTYPES[precision]
    assert links.precision == precision
    for name in ("h_dispatch", "h_return"):
        assert getattr(links, name).dtype == complex_dtype
    for name in ("snr_dispatch", "snr_return", "csi_snr_dispatch", "csi_snr_return",
                 "distances_m"):
        assert getattr(links, name).dtype == real_dtype
    assert links.rate().dtype == np.float64
    assert links.rate(model="mcs", view="true").dtype == np.float64


def _compiled_graphs(response, precision):
    """Graphs of the compiled ``response`` functions traced so far in ``precision``."""
    return [concrete.graph for key, function in _channels._COMPILED.items()
            if key[0] is response and key[3] == precision
            for concrete in function._list_all_concrete_functions()]


def _single_to_double_ops(graph):
    """Ops that turn a float32/complex64 tensor into a float64/complex128 one."""
    return [op.name for op in graph.get_operations()
            if any(t.dtype in _SINGLE for t in op.inputs)
            and any(t.dtype in _DOUBLE for t in op.outputs)]


# --- dtypes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("precision", ["single", "double"])
def test_rayleigh_dtypes(precision):
    cfg = ChannelConfig(num_subcarriers=8, num_rounds=2, csi="ls")
    links = sample_links(cfg, batch_size=3, num_links=2, seed=0, precision=precision)
    _assert_links_dtypes(links, precision)
    assert links.shape == (3, 2, 2, 8)


@pytest.mark.parametrize("precision", ["single", "double"])
def test_tdl_dtypes_and_float64_graph(precision):
    cfg = ChannelConfig(model="tdl", profile="C", num_subcarriers=8, num_rounds=2, csi="ls")
    links = sample_links(cfg, batch_size=2, num_links=2, seed=1, execution="graph",
                         precision=precision)
    _assert_links_dtypes(links, precision)
    channel = _channels._linklevel_model("tdl", "C", cfg.delay_spread_s,
                                         cfg.carrier_frequency_hz, cfg.speed_mps, precision)
    assert channel.precision == precision
    if precision == "double":
        # Every tensor of the traced TDL -> OFDM graph is double: the channel is computed in
        # float64/complex128, not cast at the end.
        graphs = _compiled_graphs(_channels._tdl_cdl_response, "double")
        assert graphs
        for graph in graphs:
            for op in graph.get_operations():
                assert not any(t.dtype in _SINGLE for t in op.outputs), op.name


def test_umi_double_dtypes_and_graph():
    cfg = ChannelConfig(model="umi", num_subcarriers=8, num_rounds=1, csi="ls")
    links = sample_links(cfg, batch_size=2, num_links=2, seed=2, execution="graph",
                         precision="double")
    _assert_links_dtypes(links, "double")
    graphs = _compiled_graphs(_channels._system_level_response, "double")
    assert graphs
    for graph in graphs:
        # Sionna draws the random ray-coupling permutations from float32 normals (argsort
        # keys); no float32 value ever flows into the float64 channel.
        assert _single_to_double_ops(graph) == []
        assert not any(t.dtype == tf.complex64 for op in graph.get_operations()
                       for t in op.outputs)


def test_from_channel_keeps_precision():
    cfg = ChannelConfig(num_subcarriers=4)
    h = np.full((1, 1, 2, 4), 1e-4, dtype=np.complex128)
    double = Links.from_channel(cfg, h, csi_h_dispatch=h.astype(np.complex64))
    _assert_links_dtypes(double, "double")
    single = Links.from_channel(cfg, h.astype(np.complex64), csi_h_dispatch=h)
    _assert_links_dtypes(single, "single")
    np.testing.assert_allclose(double.snr_dispatch, single.snr_dispatch, rtol=1e-6)


# --- statistics in double precision -----------------------------------------------------------

def test_rayleigh_double_mean_power_is_pathloss_gain():
    distances = (30.0, 120.0)
    cfg = ChannelConfig(distances_m=distances, num_subcarriers=64)
    h = sample_links(cfg, batch_size=64, num_links=2, seed=3, precision="double").h_dispatch
    for k, d in enumerate(distances):
        power = np.abs(h[:, :, k]).ravel() ** 2 / 10 ** (
            -_ref_umi(d, cfg.carrier_frequency_hz, los=False) / 10)
        # 4096 i.i.d. Exp(1) samples: mean 1 within 5 standard errors (std of Exp(1) is 1).
        assert abs(power.mean() - 1.0) < 5 / math.sqrt(power.size)


def test_rayleigh_double_round_correlation_is_jakes():
    speed = 20.0
    cfg = ChannelConfig(pathloss=False, num_rounds=2, speed_mps=speed, num_subcarriers=64)
    h = sample_links(cfg, batch_size=64, num_links=2, seed=4, precision="double").h_dispatch
    product = np.real(h[:, 1] * np.conj(h[:, 0])).ravel()
    # Clarke/Jakes: E[h_1 conj(h_0)] = J0(2 pi f_d T) for unit-power fading.
    rho = scipy.special.j0(2 * math.pi * speed * cfg.carrier_frequency_hz / C
                           * cfg.round_interval_s)
    assert abs(product.mean() - rho) < 5 * product.std() / math.sqrt(product.size)


def test_tdl_double_normalised_power_is_one():
    cfg = ChannelConfig(model="tdl", profile="A", pathloss=False, num_subcarriers=32)
    h = sample_links(cfg, batch_size=64, num_links=4, seed=5, precision="double").h_dispatch
    # Links are independent; subcarriers of one link are correlated, so average per link.
    per_link = np.mean(np.abs(h) ** 2, axis=(1, 3)).ravel()
    assert abs(per_link.mean() - 1.0) < 5 * per_link.std() / math.sqrt(per_link.size)


@pytest.mark.parametrize("model", ["rayleigh", "tdl"])
def test_single_and_double_rates_agree_statistically(model):
    cfg = ChannelConfig(model=model, num_subcarriers=32, csi="ls")
    means, variances = [], []
    for seed, precision in ((6, "single"), (7, "double")):
        links = sample_links(cfg, batch_size=64, num_links=4, seed=seed, precision=precision)
        per_link = links.rate(view="csi").mean(axis=(1, 3)).ravel()   # independent links
        means.append(per_link.mean())
        variances.append(per_link.var() / per_link.size)
    assert abs(means[0] - means[1]) < 5 * math.sqrt(sum(variances))


# --- bit-true link chain ----------------------------------------------------------------------

_LINK_CFG = ChannelConfig(num_subcarriers=12)


def _flat_links(snr_db, num_links, dtype):
    amplitude = math.sqrt(10 ** (snr_db / 10) * _LINK_CFG.noise_power_w
                          / _LINK_CFG.subcarrier_power_w)
    return Links.from_channel(_LINK_CFG, np.full((1, 1, num_links, 12), amplitude, dtype=dtype))


@pytest.mark.parametrize("execution, precision", [("eager", "double"), ("graph", "double"),
                                                  ("xla", "double"), ("xla", "single")])
def test_bit_true_high_snr_delivers_low_snr_fails(execution, precision):
    sim = LinkSimulator(_LINK_CFG, fidelity="link", max_retransmissions=1,
                        execution=execution, precision=precision)
    mask = np.ones((1, 1, 2, 12), dtype=bool)
    payload = np.random.default_rng(0).integers(0, 2, (1, 1, 2, 200), dtype=np.uint8)
    # MCS 9 (QPSK, rate 0.66): error-free at 40 dB; at -15 dB (-12 dB after combining two
    # attempts) far below its ~3 dB threshold.
    high = sim.transmit(_flat_links(40.0, 2, _DTYPES[precision][0]), 200, mask, mcs=9,
                        payload=payload, seed=1)
    assert high.delivered.all() and (high.bit_errors == 0).all()
    np.testing.assert_array_equal(high.received, payload)
    assert (high.retransmissions == 0).all()
    low = sim.transmit(_flat_links(-15.0, 2, np.complex64), 200, mask, mcs=9, seed=1)
    assert not low.delivered.any() and (low.bit_errors > 0).all()
    assert (high.execution, high.precision) == (execution, precision)


def test_bit_true_chain_double_dtypes():
    chain = _bittrue.TBChain(200, 132, 2, 0.66, execution="eager", precision="double")
    assert {block.precision for block in (chain.encoder, chain.decoder, chain.mapper,
                                          chain.demapper)} == {"double"}
    x = chain.encode(tf.zeros([1, chain.tb_size], tf.float64))
    assert x.dtype == tf.complex128
    num_re = chain.num_re
    llr, bits, ok = chain.receive(
        x, tf.ones([1, 4], tf.complex128), tf.zeros([1, num_re], tf.int32),
        tf.zeros([1, 1, 4], tf.complex128), tf.ones([1, 1], tf.float64),
        tf.zeros([1, num_re], tf.complex128), tf.zeros([1, chain.num_coded_bits], tf.float64))
    assert llr.dtype == tf.float64 and bits.dtype == tf.float64
    assert bool(ok.numpy().all())


def test_abstraction_accepts_and_records_run_settings():
    sim = LinkSimulator(_LINK_CFG, execution="xla", precision="double")
    out = sim.transmit(_flat_links(40.0, 2, np.complex128), 200, np.ones((1, 1, 2, 12), bool),
                       seed=0)
    assert out.delivered.all()
    assert (out.execution, out.precision, out.fidelity) == ("xla", "double", "abstraction")


# --- argument checks --------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["half", "float64", None, 64])
def test_bad_precision_raises(value):
    with pytest.raises(ValueError, match="precision"):
        sample_links(ChannelConfig(), 1, 1, precision=value)
    with pytest.raises(ValueError, match="precision"):
        LinkSimulator(_LINK_CFG, fidelity="link", precision=value)


@pytest.mark.parametrize("value", ["jit", "XLA", None])
def test_bad_execution_raises(value):
    with pytest.raises(ValueError, match="execution"):
        sample_links(ChannelConfig(), 1, 1, execution=value)
    with pytest.raises(ValueError, match="execution"):
        LinkSimulator(_LINK_CFG, execution=value)
