"""Training reproducibility, the modrec generator, the trace task and the cache."""

import numpy as np
import pytest

from dmoe.moe import MoEConfig, TraceMoE, build_moe, load_default_moe, load_trained_moe, train_moe
from dmoe.moe._data import modrec_features, modrec_received_symbols

TINY = dict(task="digits", num_layers=2, num_experts=4, width=16, expert_hidden=8, epochs=2)


def _weights(model):
    return [v.numpy() for v in model.network.weights]


@pytest.fixture(scope="module")
def trained_twice():
    config = MoEConfig(seed=5, **TINY)
    return config, train_moe(config), train_moe(config)


def test_same_seed_same_weights_and_accuracy(trained_twice):
    _, first, second = trained_twice
    for a, b in zip(_weights(first), _weights(second)):
        np.testing.assert_array_equal(a, b)
    x, y = first.test_data()
    assert first.accuracy(x, y, "top_k", 2) == second.accuracy(x, y, "top_k", 2)


def test_other_seed_other_initial_weights_same_seed_same():
    a, b = build_moe(MoEConfig(seed=5, **TINY)), build_moe(MoEConfig(seed=5, **TINY))
    c = build_moe(MoEConfig(seed=6, **TINY))
    assert all(np.array_equal(u, v) for u, v in zip(_weights(a), _weights(b)))
    kernels = [i for i, v in enumerate(a.network.weights) if "kernel" in v.path]
    assert not any(np.array_equal(_weights(a)[i], _weights(c)[i]) for i in kernels)


def test_training_beats_the_untrained_model(trained_twice):
    config, trained, _ = trained_twice
    untrained = build_moe(config)
    x, y = trained.test_data()
    assert trained.accuracy(x, y) > untrained.accuracy(x, y) + 0.3


def test_train_rejects_non_config_and_trace():
    with pytest.raises(TypeError):
        train_moe({"task": "digits"})
    with pytest.raises(ValueError):
        load_default_moe("imagenet")


# Fourth-order cumulants of unit-energy constellations (closed form): C40 = E y^4 - 3 (E y^2)^2,
# C42 = E|y|^4 - |E y^2|^2 - 2. BPSK: -2, -2; QPSK: 1 (magnitude), -1; 16QAM: 0.68, -0.68;
# 64QAM: 0.619, -0.619.
@pytest.mark.parametrize("order_index,c40,c42", [(0, 2.0, -2.0), (1, 1.0, -1.0),
                                                 (2, 0.68, -0.68), (3, 0.619, -0.619)])
def test_modrec_features_match_closed_form_cumulants_at_high_snr(order_index, c40, c42):
    rng = np.random.default_rng(0)
    labels = np.full(4, order_index)
    received = modrec_received_symbols((2, 4, 16, 64), labels, np.full(4, 60.0),
                                       np.array([False, True, False, True]), 4096, rng)
    features = modrec_features(received)
    np.testing.assert_allclose(features[:, -2], c40, atol=0.08)
    np.testing.assert_allclose(features[:, -1], c42, atol=0.08)


def test_modrec_noise_power_matches_the_snr():
    rng = np.random.default_rng(1)
    labels = np.zeros(2000, int)
    received = modrec_received_symbols((2, 4), labels, np.full(2000, 10.0), np.zeros(2000, bool), 64, rng)
    noise = received - np.sign(received.real)  # BPSK over AWGN at 10 dB: decisions are ~always right
    assert np.mean(np.abs(noise) ** 2) == pytest.approx(0.1, rel=0.03)


def test_modrec_tiny_model_learns_above_chance():
    config = MoEConfig(task="modrec", modrec_examples=1200, epochs=3, num_experts=4, width=16,
                       expert_hidden=8, modrec_snr_db=(20.0,))
    model = train_moe(config)
    x, y = model.test_data()
    assert x.shape[1] == 3 * 64 + 6 and set(np.unique(y)) <= {0, 1, 2, 3}
    assert model.accuracy(x, y) > 0.25 + 0.2


def test_trace_from_logits_retained_mass(tmp_path):
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(50, 3, 6))
    path = tmp_path / "router.npz"
    np.savez(path, logits=logits)
    trace = build_moe(MoEConfig(task="trace", trace_path=str(path), trace_width=64))
    assert isinstance(trace, TraceMoE) and (trace.num_layers, trace.num_experts) == (3, 6)
    gates = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    tokens, target = trace.test_data()
    np.testing.assert_allclose(trace.relevance(1, tokens), gates[:, 1], rtol=1e-5)
    assert trace.accuracy(tokens, target, "top_k", 1) == pytest.approx(gates.max(-1).mean(), rel=1e-5)
    assert trace.accuracy(tokens, target, "all") == pytest.approx(1.0, rel=1e-5)
    assert trace.accuracy(tokens, target, "none") == 0.0
    assert trace.payload_bits(0, 8) == trace.to_bits(rng.normal(size=(2, 64)), 8).shape[1]
    with pytest.raises(ValueError):
        trace.relevance(3, tokens)
    with pytest.raises(ValueError):
        trace.relevance(0, np.array([50]))
    with pytest.raises(NotImplementedError):
        trace.expert_outputs(0, tokens)


def test_trace_rejects_bad_files(tmp_path):
    np.savez(tmp_path / "flat.npz", gates=np.full((4, 3), 1 / 3))
    np.savez(tmp_path / "unnormalised.npz", gates=np.ones((4, 2, 3)))
    np.savez(tmp_path / "other.npz", scores=np.ones((4, 2, 3)))
    for name in ("flat", "unnormalised", "other"):
        with pytest.raises(ValueError):
            build_moe(MoEConfig(task="trace", trace_path=str(tmp_path / f"{name}.npz")))


def test_cache_writes_one_file_and_reuses_it(trained_twice, tmp_path, monkeypatch):
    import dmoe.moe.defaults as defaults

    config, trained, _ = trained_twice
    calls = []
    monkeypatch.setattr(defaults, "train_moe", lambda c: calls.append(c) or trained)
    monkeypatch.setitem(defaults.DEFAULT_CONFIGS, "digits", config)
    monkeypatch.setattr(defaults, "_MEMO", {})
    first = load_default_moe("digits", cache_dir=str(tmp_path))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert calls == [config] and len(files) == 1
    assert files[0].startswith("digits-") and files[0].endswith(".keras")
    monkeypatch.setattr(defaults, "_MEMO", {})
    second = load_default_moe("digits", cache_dir=str(tmp_path))
    assert second is not first and len(calls) == 1  # read from disk, not retrained
    for a, b in zip(_weights(first), _weights(second)):
        np.testing.assert_array_equal(a, b)
    third = load_trained_moe(config, cache_dir=str(tmp_path))
    assert third is second and len(calls) == 1  # same file, memoised in the process
    trace = load_default_moe("trace", cache_dir=str(tmp_path))
    tokens, target = trace.test_data()
    assert len(tokens) == len(first.test_data()[1])
    assert trace.accuracy(tokens, target, "top_k", 2) >= trace.accuracy(tokens, target, "top_k", 1)
