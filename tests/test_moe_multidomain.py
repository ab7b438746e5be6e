"""The multidomain task: generated sequences, the transformer's step API, layer sensitivity."""

import itertools

import numpy as np
import pytest
from hypothesis import given, strategies as st

from dmoe.moe import (DEFAULT_CONFIGS, MoEConfig, SequenceMoEModel, auto_layer_importance,
                      build_moe, cheapest_covering_set, layer_sensitivity, load_trained_moe,
                      routing_concentration, train_moe)
from dmoe.moe import _sequences as seq

TINY = dict(task="multidomain", num_layers=2, num_experts=4, width=16, expert_hidden=8,
            num_heads=2, multidomain_train=300, multidomain_test=60, epochs=1, batch_size=32)


# ------------------------------------------------------------------------------ data
def test_generator_is_deterministic_and_seed_dependent():
    first = seq.generate_sequences(200, np.random.default_rng(4))
    second = seq.generate_sequences(200, np.random.default_rng(4))
    other = seq.generate_sequences(200, np.random.default_rng(5))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    config = MoEConfig(**TINY)
    a, b = seq.load_sequence_data(config), seq.load_sequence_data(config)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.x_test[:50], a.x_train[:50])  # separate streams


def test_default_test_split_has_every_domain_and_at_least_2000_sequences():
    config = DEFAULT_CONFIGS["multidomain"]
    assert config.multidomain_test >= 2000
    x, y, domain = seq.generate_sequences(config.multidomain_test,
                                          np.random.default_rng([config.seed, 3, 1]))
    assert x.shape == (config.multidomain_test, seq.SEQUENCE_LENGTH)
    counts = np.bincount(domain, minlength=len(seq.DOMAINS))
    assert counts.min() >= config.multidomain_test // len(seq.DOMAINS)
    # Answers sit exactly at the ANS placeholders (dqpsk: on symbols 1..11); position 0 is the
    # domain token.
    dqpsk = domain == seq.DOMAINS.index("dqpsk")
    np.testing.assert_array_equal((y >= 0)[~dqpsk], (x == seq.ANS)[~dqpsk])
    assert np.all((y[dqpsk] >= 0) == (np.arange(seq.SEQUENCE_LENGTH) >= 2))
    np.testing.assert_array_equal(x[:, 0], seq.domain_token(domain))


def _digits(tokens):
    return [int(t) - int(seq.digit_token(0)) for t in tokens]


def _independent_answer(name, question):
    """The answer of one question, computed without the generator's code."""
    if name == "reverse":
        return _digits(question)[::-1]
    if name == "sort":
        return sorted(_digits(question))
    if name == "add":
        a = int("".join(map(str, _digits(question[:2]))))
        b = int("".join(map(str, _digits(question[3:5]))))
        assert question[2] == seq.PLUS
        return [int(c) for c in f"{a + b:03d}"]
    if name == "qam16":
        # Brute force: the nearest of the 16 points (complex distance) to each observed symbol.
        width = 2 * (4 / np.sqrt(10)) / 12
        level = (np.asarray(question) - int(seq.iq_token(0)) + 0.5) * width - 4 / np.sqrt(10)
        observed = level[0::2] + 1j * level[1::2]
        amplitudes = np.array([-3, -1, 1, 3]) / np.sqrt(10)
        points = {(i, q): amplitudes[i] + 1j * amplitudes[q] for i in range(4) for q in range(4)}
        answers = []
        for y in observed:
            i, q = min(points, key=lambda key: abs(y - points[key]))
            answers.append(4 * i + q)
        return answers
    if name == "dqpsk":
        # The phase step between consecutive observed sectors, nearest quarter turn.
        angle = (np.asarray(question) - int(seq.phase_token(0)) + 0.5) * (2 * np.pi / 12)
        ratio = np.exp(1j * np.diff(angle))
        turns = [1, 1j, -1, -1j]
        return [int(np.argmin([abs(r - t) for t in turns])) for r in ratio]
    raise AssertionError(name)


@pytest.mark.parametrize("name", seq.DOMAINS)
def test_every_domain_answer_is_right_by_an_independent_check(name):
    x, y, domain = seq.generate_sequences(150, np.random.default_rng(9), domains=(name,))
    assert np.all(domain == seq.DOMAINS.index(name))
    for tokens, targets in zip(x, y):
        answer_at = np.flatnonzero(targets >= 0)
        question = list(tokens[1:answer_at[0]]) if name != "dqpsk" else list(tokens[1:])
        assert _independent_answer(name, question) == list(targets[answer_at])


def test_wireless_domains_see_noise():
    # The observations are noisy: the same transmitted grid never gives only on-grid levels.
    x, _, _ = seq.generate_sequences(500, np.random.default_rng(2), domains=("qam16",))
    levels = x[:, 1:9] - int(seq.iq_token(0))
    assert len(np.unique(levels)) == 12


# --------------------------------------------------------------------------- the model
@pytest.fixture(scope="module")
def tiny():
    return build_moe(MoEConfig(seed=3, **TINY))


def _forward_logits(model, x, top_k):
    import tensorflow as tf
    logits, _ = model.network.forward(tf.constant(x.astype(np.int32)), top_k)
    return logits.numpy()


def _pass(model, x, rule):
    state = model.embed(x)
    for layer in range(model.num_layers):
        tokens, relevance = model.route(layer, state)
        assert tokens.shape == (len(x) * model.tokens_per_example, model.width)
        assert relevance.dtype == np.float64
        np.testing.assert_allclose(relevance.sum(axis=1), 1.0, atol=1e-5)
        selected = rule(model, relevance)
        state = model.combine(layer, state, model.expert_outputs(layer, tokens), selected)
    return state


@pytest.mark.parametrize("execution", ["eager", "graph", "xla"])
def test_step_with_every_expert_equals_the_networks_dense_forward(tiny, execution):
    x, _ = tiny.test_data()
    tiny.execution = execution
    try:
        state = _pass(tiny, x, lambda m, g: np.ones(g.shape, bool))
        np.testing.assert_allclose(tiny.head(state), _forward_logits(tiny, x, tiny.num_experts),
                                   rtol=1e-4, atol=1e-4)
    finally:
        tiny.execution = "graph"


def test_step_with_top2_equals_the_training_forward(tiny):
    x, _ = tiny.test_data()
    state = _pass(tiny, x, lambda m, g: m.select(g, "top_k", k=2))
    np.testing.assert_allclose(tiny.head(state), _forward_logits(tiny, x, 2), rtol=1e-4, atol=1e-4)


def test_sparse_expert_outputs_match_dense_and_dropped_returns_are_ignored(tiny):
    x, y = tiny.test_data()
    state = tiny.embed(x)
    tokens, relevance = tiny.route(0, state)
    rng = np.random.default_rng(0)
    selected = rng.random(relevance.shape) < 0.4
    dense = tiny.expert_outputs(0, tokens)
    sparse = tiny.expert_outputs(0, tokens, selected)
    np.testing.assert_allclose(sparse[selected], dense[selected], rtol=1e-5, atol=1e-5)
    assert np.all(sparse[~selected] == 0)
    poisoned = np.where(selected[..., None], dense, np.nan)
    a = tiny.combine(0, state, poisoned, selected).hidden
    # The same layer recomputed from a fresh state (no cached route) agrees.
    b = tiny.combine(0, tiny.embed(x), dense, selected).hidden
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # No expert at a position: the position keeps its post-attention stream.
    none = tiny.combine(0, state, dense, np.zeros_like(selected)).hidden
    mid = state._routed[1]
    np.testing.assert_array_equal(none, mid)


def test_evaluate_counts_answer_positions_per_domain(tiny):
    x, y = tiny.test_data()
    state = _pass(tiny, x, lambda m, g: m.select(g, "top_k", k=2))
    counts = tiny.evaluate(state, y)
    predicted = np.argmax(tiny.head(state), axis=-1)
    scored = y >= 0
    assert counts["accuracy"] == (int(((predicted == y) & scored).sum()), int(scored.sum()))
    domain = x[:, 0] - int(seq.domain_token(0))
    for index, name in enumerate(seq.DOMAINS):
        rows = domain == index
        assert counts[f"accuracy_{name}"] == (int(((predicted == y) & scored)[rows].sum()),
                                              int(scored[rows].sum()))
    assert sum(counts[f"accuracy_{n}"][1] for n in seq.DOMAINS) == counts["accuracy"][1]


def test_payload_and_bad_input(tiny):
    x, _ = tiny.test_data()
    state = tiny.embed(x)
    tokens, _ = tiny.route(1, state)
    bits = tiny.to_bits(tokens, 8)
    assert bits.shape == (len(tokens), tiny.payload_bits(1, 8)) == (len(tokens), 16 + 16 * 8)
    np.testing.assert_allclose(tiny.from_bits(bits, 8), tokens, atol=np.abs(tokens).max() / 100)
    with pytest.raises(ValueError, match="layer"):
        tiny.route(2, state)
    with pytest.raises(ValueError, match="x must"):
        tiny.embed(np.zeros((2, 5), int))
    with pytest.raises(TypeError, match="state"):
        tiny.route(0, tokens)
    with pytest.raises(ValueError, match="arrived"):
        tiny.combine(0, state, np.zeros((len(tokens), 4, 16)), np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match="multidomain_domains"):
        MoEConfig(task="multidomain", multidomain_domains=("chess",))
    with pytest.raises(ValueError, match="num_heads"):
        MoEConfig(task="multidomain", width=18, num_heads=4)


def test_training_learns_and_the_cache_returns_the_same_model(tmp_path):
    config = MoEConfig(**dict(TINY, multidomain_train=1500, epochs=2, seed=1))
    trained = load_trained_moe(config, cache_dir=str(tmp_path))
    assert isinstance(trained, SequenceMoEModel)
    x, y = trained.test_data()
    untrained = build_moe(config)
    assert trained.accuracy(x, y) > untrained.accuracy(x, y) + 0.1
    reread = SequenceMoEModel.load(next(tmp_path.glob("multidomain-*.keras")))
    np.testing.assert_array_equal(reread.run(x, y)["accuracy"], trained.run(x, y)["accuracy"])


@pytest.mark.parametrize("num_layers,num_experts", [(8, 4), (2, 32)])
def test_large_sizes_build_and_step(num_layers, num_experts):
    config = MoEConfig(**dict(TINY, num_layers=num_layers, num_experts=num_experts,
                              multidomain_train=64, multidomain_test=20))
    model = train_moe(config)
    counts = model.run(*model.test_data())
    assert counts["accuracy"][1] == int((model.test_data()[1] >= 0).sum())


# ----------------------------------------------------------------------- sensitivity
def test_cheapest_covering_set_matches_enumeration():
    rng = np.random.default_rng(3)
    relevance = rng.dirichlet(np.ones(5), size=40)
    cost = rng.exponential(size=(40, 5))
    for rho in (0.0, 0.4, 0.9, 1.0):
        chosen = cheapest_covering_set(relevance, cost, rho, 2)
        for g, c, s in zip(relevance, cost, chosen):
            gamma = rho * np.sort(g)[-2:].sum()
            best = min((c[list(S)].sum(), S) for size in (1, 2)
                       for S in itertools.combinations(range(5), size)
                       if g[list(S)].sum() >= gamma - 1e-12)
            assert c[s].sum() == pytest.approx(best[0])
            assert 1 <= s.sum() <= 2


def test_layer_sensitivity_is_zero_when_nothing_is_cut_and_shaped_per_layer(tiny):
    x, y = tiny.test_data()
    full = layer_sensitivity(tiny, importance=1.0)     # the cut set is the top-2 set itself
    np.testing.assert_allclose(full, 0.0, atol=1e-12)
    cut = layer_sensitivity(tiny, importance=0.0, seed=2)
    assert cut.shape == (tiny.num_layers,) and np.all(np.abs(cut) <= 1)
    # Seeded: the same costs, the same numbers.
    np.testing.assert_array_equal(cut, layer_sensitivity(tiny, x, y, importance=0.0, seed=2))


def test_routing_concentration_bounds(tiny):
    stats = routing_concentration(tiny)
    assert stats["mutual_information_bits"].shape == (tiny.num_layers,)
    assert np.all(stats["mutual_information_bits"] >= -1e-12)
    assert np.all(stats["mutual_information_bits"] <= np.log2(len(seq.DOMAINS)) + 1e-9)
    assert np.all((stats["top_share"] >= 0.25 - 1e-12) & (stats["top_share"] <= 1))


@given(st.lists(st.floats(-0.2, 1.0), min_size=1, max_size=8), st.floats(0.0, 1.0))
def test_auto_layer_importance_matches_the_homogeneous_budget(sensitivity, importance):
    rho = auto_layer_importance(sensitivity, importance)
    assert rho.shape == (len(sensitivity),)
    assert np.all((rho >= 0) & (rho <= 1))
    assert rho.mean() == pytest.approx(importance, abs=1e-9)
    # More sensitive layers never get a lower requirement.
    order = np.argsort(sensitivity, kind="stable")
    assert np.all(np.diff(rho[order]) >= -1e-9)


def test_auto_layer_importance_rejects_bad_input():
    with pytest.raises(ValueError, match="importance"):
        auto_layer_importance([0.1, 0.2], 1.5)
    with pytest.raises(ValueError, match="sensitivity"):
        auto_layer_importance([np.nan], 0.5)


def test_gate_entropy_is_bounded_and_its_weight_validated(tiny):
    import tensorflow as tf
    x, _ = tiny.test_data()
    _, _, entropy = tiny.network.forward(tf.constant(x), 2, with_entropy=True)
    # Mean entropy of the gate over positions and layers: between 0 and log K nats.
    state = tiny.embed(x)
    expected = []
    for layer in range(tiny.num_layers):
        tokens, relevance = tiny.route(layer, state)
        expected.append(-np.mean(np.sum(relevance * np.log(relevance), axis=1)))
        top2 = tiny.select(relevance, "top_k", k=2)
        state = tiny.combine(layer, state, tiny.expert_outputs(layer, tokens), top2)
    assert float(entropy) == pytest.approx(np.mean(expected), rel=1e-4)
    assert 0 <= float(entropy) <= np.log(tiny.num_experts)
    with pytest.raises(ValueError, match="gate_entropy_weight"):
        MoEConfig(task="multidomain", gate_entropy_weight=-0.1)
