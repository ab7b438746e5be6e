"""Behaviour of the default MoE: accuracy, specialisation, the layer step, bad input."""

import numpy as np
import pytest

from dmoe.moe import MoEConfig, MoEModel, load_default_moe


@pytest.fixture(scope="session")
def digits():
    # Trained once per session (seconds), or read from the user cache when already built.
    return load_default_moe("digits")


@pytest.fixture(scope="session")
def test_split(digits):
    return digits.test_data()


def _binomial_noise(p, n):
    return 2.0 * np.sqrt(max(p * (1.0 - p), 0.01 * 0.99) / n)


def test_public_shapes(digits, test_split):
    x, y = test_split
    assert x.ndim == 2 and x.dtype == np.float32 and y.shape == (x.shape[0],)
    assert (digits.num_layers, digits.num_experts) == (digits.config.num_layers, digits.config.num_experts)
    h = digits.embed(x)
    assert h.shape == (x.shape[0], digits.width) and h.dtype == np.float32
    assert digits.expert_outputs(0, h).shape == (x.shape[0], digits.num_experts, digits.width)
    assert digits.head(h).shape == (x.shape[0], digits.num_classes)


def test_top2_accuracy_at_least_95_percent(digits, test_split):
    assert digits.accuracy(*test_split, selection="top_k", k=2) >= 0.95


def test_least_relevant_expert_loses_ten_points_against_top1(digits, test_split):
    top1 = digits.accuracy(*test_split, selection="top_k", k=1)
    least = digits.accuracy(*test_split, selection="least_relevant", k=1)
    assert least <= top1 - 0.10


def test_top2_no_worse_than_top1_beyond_noise(digits, test_split):
    x, _ = test_split
    top1 = digits.accuracy(*test_split, selection="top_k", k=1)
    top2 = digits.accuracy(*test_split, selection="top_k", k=2)
    assert top2 >= top1 - _binomial_noise(top1, len(x))


def test_accuracy_equals_manual_layer_by_layer_pass(digits, test_split):
    x, y = test_split
    h = digits.embed(x)
    for layer in range(digits.num_layers):
        g = digits.relevance(layer, h)
        # top-2 by an independent rule: the two largest entries of each row
        second = np.sort(g, axis=1)[:, -2:-1]
        h = digits.apply_layer(layer, h, selected=g >= second)
    manual = np.mean(np.argmax(digits.head(h), axis=1) == y)
    assert manual == pytest.approx(digits.accuracy(x, y, selection="top_k", k=2))


def test_relevance_is_a_distribution(digits, test_split):
    h = digits.embed(test_split[0][:50])
    for layer in range(digits.num_layers):
        g = digits.relevance(layer=layer, hidden=h)
        assert g.shape == (50, digits.num_experts)
        assert np.all(g >= 0)
        np.testing.assert_allclose(g.sum(axis=1), 1.0, atol=1e-5)


def test_renormalised_combination_matches_numpy(digits, test_split):
    rng = np.random.default_rng(3)
    h = digits.embed(test_split[0][:40])
    g = digits.relevance(0, h)
    f = digits.expert_outputs(0, h)
    mask = rng.random(g.shape) < 0.4
    mask[0] = True
    mask[1] = False
    mask[2] = [True] + [False] * (digits.num_experts - 1)
    w = np.where(mask, g, 0.0)
    w = np.divide(w, w.sum(axis=1, keepdims=True), out=np.zeros_like(w), where=w.sum(1, keepdims=True) > 0)
    expected = h + np.einsum("bk,bkw->bw", w, f)
    got = digits.apply_layer(0, h, selected=mask)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # Weights of the selected experts sum to one: a single selected expert enters with weight 1.
    np.testing.assert_allclose(got[2], h[2] + f[2, 0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(digits.combine(0, h, f, mask), got, rtol=1e-6, atol=1e-6)


def test_explicit_weights_are_used_as_given_on_the_selected_set(digits, test_split):
    h = digits.embed(test_split[0][:10])
    f = digits.expert_outputs(0, h)
    weights = np.full((10, digits.num_experts), 0.3, np.float32)
    mask = np.zeros((10, digits.num_experts), bool)
    mask[:, [1, 4]] = True
    got = digits.apply_layer(0, h, selected=mask, weights=weights)
    np.testing.assert_allclose(got, h + 0.3 * (f[:, 1] + f[:, 4]), rtol=1e-5, atol=1e-5)


def test_empty_selection_passes_the_residual_unchanged(digits, test_split):
    h = digits.embed(test_split[0][:20])
    mask = np.zeros((20, digits.num_experts), bool)
    mask[::2, 0] = True
    out = digits.apply_layer(1, h, selected=mask)
    np.testing.assert_array_equal(out[1::2], h[1::2])
    assert not np.allclose(out[::2], h[::2])


def test_unselected_returns_are_ignored_even_if_not_finite(digits, test_split):
    h = digits.embed(test_split[0][:8])
    f = digits.expert_outputs(0, h)
    mask = np.zeros((8, digits.num_experts), bool)
    mask[:, 3] = True
    dropped = f.copy()
    dropped[:, :3] = np.nan
    np.testing.assert_allclose(digits.combine(0, h, dropped, mask), digits.combine(0, h, f, mask))


def test_bits_round_trip_and_flips_reach_the_logits(digits, test_split):
    x = test_split[0][:30]
    h = digits.embed(x)
    for bits_per_value in (4, 8, 16):
        bits = digits.to_bits(h, bits_per_value=bits_per_value)
        assert bits.dtype == np.uint8 and set(np.unique(bits)) <= {0, 1}
        assert bits.shape == (30, digits.payload_bits(0, bits_per_value=bits_per_value))
        h2 = digits.from_bits(bits, bits_per_value=bits_per_value)
        step = np.max(np.abs(h), axis=1, keepdims=True) / (2 ** (bits_per_value - 1) - 1)
        assert np.all(np.abs(h2 - h) <= 0.5 * step * 1.01 + 1e-7)
    bits = digits.to_bits(h, bits_per_value=8)
    flipped = bits.copy()
    flipped[:, 16 + 8 * np.arange(digits.width)] ^= 1  # the MSB of every value
    corrupted = digits.from_bits(flipped, bits_per_value=8)
    assert np.all(np.any(corrupted != digits.from_bits(bits, 8), axis=1))
    assert not np.allclose(digits.head(corrupted), digits.head(digits.from_bits(bits, 8)))


def test_save_and_load_keep_the_model(digits, test_split, tmp_path):
    path = tmp_path / "digits.keras"
    digits.save(path)
    loaded = MoEModel.load(path)
    assert loaded.config == digits.config
    h = digits.embed(test_split[0][:16])
    np.testing.assert_array_equal(loaded.relevance(1, h), digits.relevance(1, h))
    np.testing.assert_array_equal(loaded.test_data()[1], test_split[1])


@pytest.mark.parametrize("call", [
    lambda m, h: m.relevance(0, h[:, :-1]),
    lambda m, h: m.relevance(m.num_layers, h),
    lambda m, h: m.relevance(-1, h),
    lambda m, h: m.apply_layer(0, h, np.ones((len(h), m.num_experts + 1), bool)),
    lambda m, h: m.apply_layer(0, h, np.ones((len(h) - 1, m.num_experts), bool)),
    lambda m, h: m.apply_layer(0, h, np.ones((len(h), m.num_experts), bool), np.ones((len(h), 2))),
    lambda m, h: m.combine(0, h, np.zeros((len(h), m.num_experts, 3)), np.ones((len(h), m.num_experts), bool)),
    lambda m, h: m.head(h[:, :5]),
    lambda m, h: m.embed(h),
    lambda m, h: m.payload_bits(m.num_layers, 8),
    lambda m, h: m.payload_bits(0, 1),
    lambda m, h: m.to_bits(h[:, :-1], 8),
    lambda m, h: m.from_bits(m.to_bits(h, 8)[:, :-1], 8),
    lambda m, h: m.from_bits(m.to_bits(h, 8), 4),
    lambda m, h: m.accuracy(*m.test_data(), selection="best", k=2),
    lambda m, h: m.accuracy(*m.test_data(), selection="top_k", k=0),
])
def test_bad_input_raises_value_error(digits, test_split, call):
    h = digits.embed(test_split[0][:6])
    with pytest.raises(ValueError):
        call(digits, h)


@pytest.mark.parametrize("fields", [
    {"task": "vision"}, {"num_experts": 0}, {"top_k": 9, "num_experts": 8}, {"seed": -1},
    {"test_fraction": 1.0}, {"task": "trace"}, {"modrec_orders": (2, 3)},
])
def test_bad_config_raises_value_error(fields):
    with pytest.raises(ValueError):
        MoEConfig(**fields)
