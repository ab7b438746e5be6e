"""Bit payloads of activations: layout, round trip, error propagation (pure numpy)."""

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

from dmoe.moe import from_bits, payload_bits, quantization_step, to_bits

finite = st.floats(-1e4, 1e4, allow_nan=False, width=32)


@given(values=arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 12)), elements=finite),
       bits_per_value=st.integers(2, 16))
def test_round_trip_within_half_a_step(values, bits_per_value):
    bits = to_bits(values, bits_per_value)
    assert bits.shape == (values.shape[0], payload_bits(values.shape[1], bits_per_value))
    assert bits.dtype == np.uint8 and np.all((bits == 0) | (bits == 1))
    decoded = from_bits(bits, bits_per_value)
    peak = np.max(np.abs(values), axis=1, keepdims=True).astype(np.float64)
    # The float16 scale is rounded up by at most one float16 ulp (2^-10 relative).
    step = peak * (1 + 2.0**-10) / (2 ** (bits_per_value - 1) - 1)
    assert np.all(np.abs(decoded - values) <= 0.5 * step + 1e-6 * (1 + peak))


@given(position=st.integers(0, 16 + 8 * 6 - 1), seed=st.integers(0, 2**16))
def test_any_single_bit_flip_changes_the_decoded_values(position, seed):
    values = np.random.default_rng(seed).normal(size=(1, 6)).astype(np.float32)
    bits = to_bits(values, 8)
    flipped = bits.copy()
    flipped[0, position] ^= 1
    assert not np.array_equal(from_bits(flipped, 8), from_bits(bits, 8))


def test_layout_header_is_the_float16_scale_then_offset_binary_codes():
    values = np.array([[1.0, -1.0, 0.0, 0.5]], np.float32)
    bits = to_bits(values, 4)
    header = int("".join(map(str, bits[0, :16])), 2)
    assert np.array([header], np.uint16).view(np.float16)[0] == np.float16(1.0)
    codes = [int("".join(map(str, bits[0, 16 + 4 * i:20 + 4 * i])), 2) for i in range(4)]
    # Q = 7: code = round(v * 7) + 7 (0.5 * 7 = 3.5 rounds half to even: 4)
    assert codes == [14, 0, 7, 11]


def test_msb_flip_moves_a_value_by_half_the_code_range():
    values = np.array([[0.0, 1.0]], np.float32)
    bits = to_bits(values, 8)
    bits[0, 16] ^= 1
    decoded = from_bits(bits, 8)
    assert decoded[0, 0] == pytest.approx(128 / 127, rel=1e-3)
    assert decoded[0, 1] == pytest.approx(1.0, rel=1e-3)


def test_corrupted_header_never_gives_non_finite_values():
    values = np.ones((1, 3), np.float32)
    bits = to_bits(values, 8)
    bits[0, 1:6] = 1  # float16 exponent all ones: inf / NaN
    assert np.all(np.isfinite(from_bits(bits, 8)))


def test_leading_axes_are_kept_and_zero_tokens_survive():
    values = np.zeros((2, 3, 5), np.float32)
    values[1, 2] = np.arange(5)
    bits = to_bits(values, 6)
    assert bits.shape == (2, 3, 16 + 30)
    np.testing.assert_allclose(from_bits(bits, 6), values, atol=quantization_step(values, 6).max())


@pytest.mark.parametrize("call", [
    lambda: to_bits(np.ones((2, 3)), 1),
    lambda: to_bits(np.ones((2, 3)), 25),
    lambda: to_bits(np.array([[np.nan, 1.0]]), 8),
    lambda: from_bits(np.ones((2, 17), np.uint8), 2),
    lambda: from_bits(np.full((1, 24), 2, np.uint8), 8),
    lambda: from_bits(to_bits(np.ones((1, 3)), 8), 8, width=4),
])
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()
