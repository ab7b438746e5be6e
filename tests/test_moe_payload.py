"""Air payloads: preset sizes, the interleaved layout of the proxy's bits, bit errors on them."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dmoe.moe import (AIR_PRESETS, PayloadLayout, air_preset, from_bits, payload_layout,
                      to_bits)


# Published hidden sizes (model cards / papers, docs/moe.md), bf16 on the air.
PUBLISHED = {"mixtral-8x7b": 4096, "olmoe-1b-7b": 2048, "deepseek-v2-lite": 2048,
             "qwen1.5-moe-a2.7b": 2048}


def test_every_preset_carries_its_published_hidden_size_in_bf16():
    assert set(AIR_PRESETS) == set(PUBLISHED)
    for name, hidden in PUBLISHED.items():
        preset = air_preset(name)
        assert (preset.hidden_size, preset.bits_per_value) == (hidden, 16)
        # 16-bit scale header + hidden values of 16 bits, counted by hand.
        assert preset.payload_bits == {4096: 65552, 2048: 32784}[hidden]
        assert preset.source


def test_unknown_preset_names_the_argument():
    with pytest.raises(ValueError, match="air_preset must be one of"):
        air_preset("gpt-4")


def test_layout_of_a_64_value_proxy_in_a_mixtral_payload():
    layout = payload_layout(width=64, air_width=4096, bits_per_value=16)
    assert (layout.proxy_bits, layout.air_bits) == (16 + 64 * 16, 65552)
    positions = layout.positions
    assert positions[0] == 0 and positions[-1] < 65552
    assert np.all(np.diff(positions) >= 63)  # spread: ~63 air bits between proxy bits
    assert not layout.is_identity


@given(width=st.integers(1, 40), extra=st.integers(0, 200), bits=st.integers(2, 16),
       seed=st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_embed_then_extract_returns_the_proxy_payload(width, extra, bits, seed):
    layout = payload_layout(width, width + extra, bits)
    values = np.random.default_rng(seed).normal(size=(3, width)).astype(np.float32)
    proxy = to_bits(values, bits)
    air = layout.embed(proxy)
    assert air.shape == (3, layout.air_bits) and air.dtype == np.uint8
    assert np.array_equal(layout.extract(air), proxy)
    # Filler is zeros: the air payload holds exactly the proxy's ones.
    assert air.sum() == proxy.sum()
    assert layout.is_identity == (extra == 0)


@given(proxy_bits=st.integers(1, 300), ratio=st.floats(1.0, 70.0), start=st.floats(0, 1),
       length=st.floats(0, 1))
@settings(max_examples=200, deadline=None)
def test_any_stretch_of_air_bits_holds_its_share_of_proxy_bits(proxy_bits, ratio, start, length):
    # A burst (e.g. one failed code block) over s consecutive air bits meets s * m / n proxy
    # bits, to within one: checked by counting positions, not by the layout's formula.
    air_bits = max(proxy_bits, int(proxy_bits * ratio))
    layout = PayloadLayout(proxy_bits, air_bits)
    first = int(start * air_bits)
    stretch = int(length * (air_bits - first))
    inside = np.count_nonzero((layout.positions >= first) & (layout.positions < first + stretch))
    assert abs(inside - stretch * proxy_bits / air_bits) <= 1


def test_a_failed_code_block_corrupts_its_share_of_the_proxy_values():
    # Mixtral payload, 8 equal code blocks, block 3 decoded as garbage (every bit flipped):
    # 1/8 of the proxy's bits, i.e. 1/8 of its 16-bit values, are hit.
    layout = payload_layout(64, 4096, 16)
    values = np.random.default_rng(0).normal(size=(1, 64)).astype(np.float32)
    air = layout.embed(to_bits(values, 16))
    block = layout.air_bits // 8
    air[0, 3 * block:4 * block] ^= 1
    received = layout.extract(air)
    hit = np.count_nonzero(received != to_bits(values, 16))
    assert abs(hit / layout.proxy_bits - 1 / 8) <= 1 / layout.proxy_bits
    decoded = from_bits(received, 16)
    changed = np.count_nonzero(np.abs(decoded - from_bits(to_bits(values, 16), 16)) > 0)
    assert abs(changed - 64 / 8) <= 1  # the values whose 16 bits lie in that block


def test_iid_bit_errors_land_on_the_proxy_at_the_payloads_rate():
    layout = payload_layout(64, 2048, 16)
    rng = np.random.default_rng(1)
    proxy = rng.integers(0, 2, (200, layout.proxy_bits), dtype=np.uint8)
    air = layout.embed(proxy)
    rate = 0.02
    flips = rng.random(air.shape) < rate
    proxy_rate = np.mean(layout.extract(air ^ flips) != proxy)
    trials = proxy.size
    assert abs(proxy_rate - rate) < 4 * np.sqrt(rate * (1 - rate) / trials)


def test_bit_errors_by_count_match_placing_them_at_random_in_the_air_payload():
    # Reference: build the air payload, flip `e` uniformly chosen air bits, read the proxy back.
    layout = PayloadLayout(40, 400)
    rng = np.random.default_rng(2)
    rows, e = 4000, 30
    proxy = np.zeros((rows, 40), np.uint8)
    fast = layout.apply_bit_errors(proxy, np.full(rows, e), rng)
    air = layout.embed(proxy)
    chosen = np.argsort(rng.random((rows, 400)), axis=1)[:, :e]
    np.put_along_axis(air, chosen, 1, axis=1)
    brute = layout.extract(air)
    for hits in (fast.sum(axis=1), brute.sum(axis=1)):
        # Hypergeometric mean e m / n = 3 and variance e (m/n)(1-m/n)(n-e)/(n-1).
        assert abs(hits.mean() - 3.0) < 0.1
        assert abs(hits.var() - 30 * 0.1 * 0.9 * 370 / 399) < 0.25
    # Every proxy bit is equally exposed: each is hit with probability e / n.
    per_bit = fast.mean(axis=0)
    assert np.all(np.abs(per_bit - e / 400) < 5 * np.sqrt(0.075 * 0.925 / rows))


def test_bit_error_counts_at_the_extremes():
    layout = PayloadLayout(20, 100)
    proxy = np.random.default_rng(3).integers(0, 2, (2, 3, 20), dtype=np.uint8)
    rng = np.random.default_rng(4)
    out = layout.apply_bit_errors(proxy, np.array([[0, 0, 0], [100, 100, 100]]), rng)
    assert np.array_equal(out[0], proxy[0])
    assert np.array_equal(out[1], 1 - proxy[1])
    with pytest.raises(ValueError, match="bit_errors must be integers in"):
        layout.apply_bit_errors(proxy, np.full((2, 3), 101), rng)
    with pytest.raises(ValueError, match="bit_errors must have shape"):
        layout.apply_bit_errors(proxy, np.zeros(2), rng)


def test_bad_layouts_name_the_argument():
    with pytest.raises(ValueError, match="air_width must be >= the model's width 64"):
        payload_layout(64, 32, 8)
    with pytest.raises(ValueError, match="air_bits must be >= proxy_bits"):
        PayloadLayout(100, 50)
    with pytest.raises(ValueError, match="proxy must have shape"):
        PayloadLayout(10, 20).embed(np.zeros((2, 11), np.uint8))
    with pytest.raises(ValueError, match="air must have shape"):
        PayloadLayout(10, 20).extract(np.zeros((2, 10), np.uint8))
