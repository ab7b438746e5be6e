"""Execution modes of the MoE (eager / graph / xla): same outputs, XLA compiles, bad modes rejected."""

import numpy as np
import pytest
import tensorflow as tf

from dmoe.moe import EXECUTION_MODES, SELECTIONS, load_default_moe
from dmoe.moe.network import topk_mask

# float32 everywhere. The modes run the same ops but may fuse and order them differently (oneDNN
# kernels in graph mode, XLA fusions), so they agree to float32 rounding, not bit for bit.
RTOL, ATOL = 1e-5, 1e-6
# The head's logits reach |z| ~ 11 and are sums of `width` products: their rounding error is
# ~ eps32 * sum |w h| ~ 3e-6 absolute, even in a logit near zero, so its atol is 1e-5.
HEAD_ATOL = 1e-5
# Against a float64 numpy evaluation of the same equations: float32 error of the model itself.
REF_RTOL, REF_ATOL = 1e-4, 1e-5
BATCH = 64


@pytest.fixture(scope="module")
def digits():
    model = load_default_moe("digits")   # shared, memoised instance: leave it in graph mode
    yield model
    model.execution = "graph"


@pytest.fixture(scope="module")
def tokens(digits):
    return digits.test_data()[0][:BATCH]


def _pass(model, x):
    """Every public TF output of one pass (top-2 with renormalised and with explicit weights)."""
    rng = np.random.default_rng(11)
    hidden = model.embed(x)
    out = {"embed": hidden}
    for layer in range(model.num_layers):
        relevance = model.relevance(layer, hidden)
        outputs = model.expert_outputs(layer, hidden)
        selected = model.select(relevance, "top_k", k=2)
        selected[0] = False                     # an empty row: the residual passes through
        weights = rng.random(relevance.shape).astype(np.float32)
        out[f"relevance_{layer}"] = relevance
        out[f"expert_outputs_{layer}"] = outputs
        out[f"combine_weighted_{layer}"] = model.combine(layer, hidden, outputs, selected, weights)
        hidden = model.combine(layer, hidden, outputs, selected)
        out[f"combine_{layer}"] = hidden
        out[f"selected_{layer}"] = selected
    out["head"] = model.head(hidden)
    return out


def _layer_norm(values, norm):
    mean = values.mean(axis=-1, keepdims=True)
    variance = values.var(axis=-1, keepdims=True)
    gamma, beta = (np.asarray(w, np.float64) for w in (norm.gamma, norm.beta))
    return (values - mean) / np.sqrt(variance + norm.epsilon) * gamma + beta


def _numpy_pass(model, x):
    """The same pass in float64 numpy from the trained weights (docs/moe.md, Architecture)."""
    w = lambda variable: np.asarray(variable, np.float64)  # noqa: E731
    net = model.network
    hidden = x.astype(np.float64) @ w(net.stem.kernel) + w(net.stem.bias)
    out = {"embed": hidden}
    for layer, moe in enumerate(net.moe_layers):
        u = _layer_norm(hidden, moe.norm)
        logits = u @ w(moe.gate_kernel) + w(moe.gate_bias)
        relevance = np.exp(logits - logits.max(axis=1, keepdims=True))
        relevance /= relevance.sum(axis=1, keepdims=True)
        inner = np.maximum(np.einsum("bw,kwf->bkf", u, w(moe.kernel_in)) + w(moe.bias_in), 0.0)
        outputs = np.einsum("bkf,kfw->bkw", inner, w(moe.kernel_out)) + w(moe.bias_out)
        # Renormalised weights on the selected set (the selection itself is taken from the model
        # so that a near-tie cannot make the two passes choose different experts).
        selected = model.select(relevance, "top_k", k=2)
        selected[0] = False
        masked = np.where(selected, relevance, 0.0)
        total = masked.sum(axis=1, keepdims=True)
        weights = np.divide(masked, total, out=np.zeros_like(masked), where=total > 0)
        out[f"relevance_{layer}"] = relevance
        out[f"expert_outputs_{layer}"] = outputs
        hidden = hidden + np.einsum("bk,bkw->bw", weights, outputs)
        out[f"combine_{layer}"] = hidden
    out["head"] = _layer_norm(hidden, net.head_norm) @ w(net.head_dense.kernel) + w(net.head_dense.bias)
    return out


@pytest.fixture(scope="module")
def passes(digits, tokens):
    results = {}
    for mode in EXECUTION_MODES:
        digits.execution = mode
        results[mode] = _pass(digits, tokens)
    digits.execution = "graph"
    return results


def test_modes_are_the_documented_tuple():
    assert EXECUTION_MODES == ("eager", "graph", "xla")


def test_default_mode_is_graph(digits):
    assert load_default_moe("trace").execution == "graph"
    assert type(digits)(digits.network, digits.config).execution == "graph"


@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_outputs_equal_graph_mode(passes, mode):
    graph = passes["graph"]
    for name, expected in graph.items():
        got = passes[mode][name]
        assert got.shape == expected.shape and got.dtype == expected.dtype, name
        if name.startswith("selected"):
            np.testing.assert_array_equal(got, expected, err_msg=name)
        else:
            atol = HEAD_ATOL if name == "head" else ATOL
            np.testing.assert_allclose(got, expected, rtol=RTOL, atol=atol, err_msg=f"{mode} {name}")


@pytest.mark.parametrize("mode", EXECUTION_MODES)
def test_outputs_equal_float64_numpy_reference(digits, tokens, passes, mode):
    reference = _numpy_pass(digits, tokens)
    for name, expected in reference.items():
        atol = 10 * REF_ATOL if name == "head" else REF_ATOL
        np.testing.assert_allclose(passes[mode][name], expected, rtol=REF_RTOL, atol=atol,
                                   err_msg=f"{mode} {name}")


@pytest.mark.parametrize("mode", EXECUTION_MODES)
def test_outputs_equal_keras_layers_called_directly(digits, tokens, passes, mode):
    net, out = digits.network, passes[mode]
    hidden = tf.constant(out["embed"])
    np.testing.assert_allclose(out["embed"], net.stem(tf.constant(tokens)).numpy(), rtol=RTOL, atol=ATOL)
    for layer, moe in enumerate(net.moe_layers):
        np.testing.assert_allclose(out[f"relevance_{layer}"], moe.relevance(hidden).numpy(),
                                   rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(out[f"expert_outputs_{layer}"], moe.expert_outputs(hidden).numpy(),
                                   rtol=RTOL, atol=ATOL)
        hidden = tf.constant(out[f"combine_{layer}"])
    np.testing.assert_allclose(out["head"], net.head_dense(net.head_norm(hidden)).numpy(),
                               rtol=RTOL, atol=HEAD_ATOL)


def test_xla_compiles_every_function(digits, tokens):
    # jit_compile=True never falls back silently: a call either runs XLA code or raises. The HLO
    # is asked for explicitly too, for every function, the tf.cond / bool-mask combine included.
    assert not tf.config.functions_run_eagerly()
    digits.execution = "xla"
    try:
        _pass(digits, tokens)
        functions = digits._functions()
    finally:
        digits.execution = "graph"
    x = tf.constant(tokens)
    hidden = tf.constant(digits.embed(tokens))
    k, width = digits.num_experts, digits.width
    calls = [(functions.embed, (x,)), (functions.head, (hidden,))]
    for layer in range(digits.num_layers):
        calls += [(functions.relevance[layer], (hidden,)),
                  (functions.expert_outputs[layer], (hidden,))]
        for use_relevance in (True, False):
            calls.append((functions.combine[layer], (
                hidden, tf.zeros([BATCH, k, width]), tf.ones([BATCH, k], tf.bool),
                tf.fill([BATCH, k], 0.5), tf.constant(use_relevance))))
    for function, args in calls:
        assert function.function_spec.jit_compile is True
        assert "HloModule" in function.experimental_get_compiler_ir(*args)(stage="hlo")


def test_switching_modes_does_not_retrace(digits, tokens):
    for mode in ("graph", "xla", "eager", "graph", "xla", "graph"):
        digits.execution = mode
        digits.relevance(0, digits.embed(tokens[:5]))   # a new batch size: no retrace either
        digits.relevance(0, digits.embed(tokens))
    digits.execution = "graph"
    for mode in ("graph", "xla"):
        functions = digits._compiled[mode]
        assert functions.embed.experimental_get_tracing_count() == 1
        assert functions.relevance[0].experimental_get_tracing_count() == 1
    assert digits._compiled["eager"].relevance[0] == digits.network.moe_layers[0].relevance


@pytest.mark.parametrize("bad", ["jit", "XLA", "", None, 1, True])
def test_bad_execution_raises_value_error_naming_it(digits, bad):
    with pytest.raises(ValueError, match="execution.*eager.*graph.*xla"):
        digits.execution = bad
    assert digits.execution == "graph"
    with pytest.raises(ValueError, match="execution"):
        type(digits)(digits.network, digits.config, execution=bad)


@pytest.mark.parametrize("mode", EXECUTION_MODES)
def test_trace_accepts_every_mode_with_no_effect(mode):
    trace = load_default_moe("trace")
    tokens, target = trace.test_data()
    before = trace.accuracy(tokens, target, selection="top_k", k=2)
    try:
        trace.execution = mode
        assert trace.execution == mode
        assert trace.accuracy(tokens, target, selection="top_k", k=2) == before
        with pytest.raises(ValueError, match="execution"):
            trace.execution = "jit"
        assert trace.execution == mode
    finally:
        trace.execution = "graph"


def test_numpy_selection_matches_tf_top_k_with_ties(digits):
    # select() is numpy (the same in every mode); tf.math.top_k is the reference, ties included.
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 3, size=(200, digits.num_experts)).astype(np.float32)
    for k in range(1, digits.num_experts + 1):
        np.testing.assert_array_equal(digits.select(scores, "top_k", k),
                                      topk_mask(tf.constant(scores), k).numpy())
        np.testing.assert_array_equal(digits.select(scores, "bottom_k", k),
                                      topk_mask(tf.constant(-scores), k).numpy())
    assert set(SELECTIONS) >= {"top_k", "bottom_k"}
