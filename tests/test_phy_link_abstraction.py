"""Abstraction internals against Sionna's own blocks and 5G NR rules."""

import numpy as np
import pytest
import tensorflow as tf
from sionna.sys import EESM

from dmoe.phy import _abstraction as _abs


def test_numpy_eesm_equals_sionna_eesm_block():
    rng = np.random.default_rng(0)
    num_links, num_subcarriers = 40, 12
    sinr = 10.0 ** (rng.uniform(-5, 25, (num_links, num_subcarriers)) / 10.0)
    used = rng.random((num_links, num_subcarriers)) < 0.6
    used[:, 0] = True
    mcs = rng.integers(3, 28, num_links)
    ours = _abs.effective_sinr(sinr, used, mcs, 1)
    masked = np.where(used, sinr, 0.0).astype(np.float32).reshape(num_links, 1, num_subcarriers,
                                                                  1, 1)
    reference = EESM()(tf.constant(masked), tf.constant(mcs.reshape(-1, 1).astype(np.int32)),
                       mcs_table_index=1).numpy().ravel()
    np.testing.assert_allclose(ours, reference, rtol=2e-4)


def test_transport_block_holds_the_payload_at_the_mcs_code_rate():
    payload = np.array([1, 24, 100, 777, 3824, 3825, 8448, 20000, 50000])
    for mcs in (3, 10, 20, 27):
        num_re, tb_size, cb_size, num_cb, num_tb = _abs.segment(
            payload, np.full(payload.shape, mcs), 1)
        qm, rate, _ = _abs.mcs_table_arrays(1)
        assert np.all(num_tb * tb_size >= payload)
        # TS 38.212: code blocks of at most 8448 bits (3840 for R <= 1/4).
        assert np.all(cb_size <= 8448)
        # The grid is not much larger than payload / (Q_m R) (TB-size quantisation and the
        # 24-bit minimum TB aside).
        big = payload >= 777
        assert np.all(num_re[big] * qm[mcs] * rate[mcs] <= payload[big] * 1.1 + 200)


def test_symbol_duration_follows_the_nr_numerology():
    # 14 symbols (with cyclic prefix) per slot; slot = 1 ms / 2**mu.
    for spacing, slot in [(15e3, 1e-3), (30e3, 0.5e-3), (60e3, 0.25e-3), (120e3, 0.125e-3)]:
        assert abs(_abs.ofdm_symbol_duration_s(spacing) * 14 - slot) < 1e-15


def test_effective_sinr_ignores_unused_subcarriers_far_below_the_used_ones():
    # An unused subcarrier deep in a fade must neither change the effective SINR nor overflow.
    from dmoe.phy._abstraction import effective_sinr
    sinr = np.array([[1e-12, 100.0, 100.0, 1e-12]])
    used = np.array([[False, True, True, False]])
    with np.errstate(over="raise", invalid="raise"):
        value = effective_sinr(sinr, used, np.array([20]), 1)
    assert value[0] == pytest.approx(100.0, rel=1e-12)  # equal SINRs: EESM is that SINR
