"""The protocol engine against independent references (small: rayleigh, <= 64 tokens, L = 2)."""

import numpy as np
import pytest

from dmoe.cosim import NONDETERMINISTIC_COLUMNS, load_model, run_point
from dmoe.cosim.config import StudyConfig
from dmoe.cosim.schemes import decide
from dmoe.scheduler import link_energy_airtime

TOKENS = 48
NEAR = {"distances_m": [10.0] * 8, "tx_power_dbm": 23.0}        # mean SNR ~ 50 dB
FAR = {"distances_m": [3000.0] * 8, "tx_power_dbm": 0.0}        # mean SNR ~ -55 dB


def _by_scheme(rows):
    return {row["scheme"]: row for row in rows}


@pytest.fixture(scope="module")
def model():
    return load_model(StudyConfig().moe)


def _deterministic(row):
    return {k: v for k, v in row.items() if k not in NONDETERMINISTIC_COLUMNS}


def test_rho_one_des_and_top_d_select_the_same_experts(model):
    rows = _by_scheme(run_point({
        "num_tokens": TOKENS, "schemes": ["des", "jesa", "top_k"], "importance": 1.0,
        "max_experts": 2}))
    des, jesa, top = rows["des"], rows["jesa"], rows["top_k"]
    assert des["topk_agreement"] == 1.0 and top["topk_agreement"] == 1.0
    assert jesa["topk_agreement"] == 1.0
    assert des["experts_per_token"] == 2.0
    # Same sets and the same subcarrier rule: same realisation, same accuracy and energy.
    assert des["accuracy"] == top["accuracy"]
    assert des["energy_per_token_j"] == pytest.approx(top["energy_per_token_j"])


def test_ideal_links_equal_the_phy_free_moe(model):
    # Every test token once (the engine draws without replacement when it can), so the
    # accuracy is the moe package's own top-D accuracy up to the 16-bit quantisation.
    x, y = model.test_data()
    rows = _by_scheme(run_point({
        "num_tokens": len(y), "schemes": ["top_k"], "max_experts": 2,
        "moe": {"bits_per_value": 16}, "phy": {"fidelity": "ideal"}}))
    reference = model.accuracy(x, y, selection="top_k", k=2)
    assert abs(rows["top_k"]["accuracy"] - reference) <= 1.0 / len(y) + 1e-12
    assert rows["top_k"]["drop_rate"] == 0.0


def test_high_snr_realises_the_plan(model):
    common = {"num_tokens": TOKENS, "schemes": ["des", "top_k", "jesa"], "importance": 0.8,
              "channel": NEAR}
    ideal = _by_scheme(run_point({**common, "phy": {"fidelity": "ideal"}}))
    real = _by_scheme(run_point({**common, "phy": {"fidelity": "abstraction"}}))
    assert ideal["des"]["mean_snr_db"] > 40
    for scheme in common["schemes"]:
        assert real[scheme]["drop_rate"] == 0.0
        assert real[scheme]["residual_bler"] == 0.0
        assert real[scheme]["accuracy"] == ideal[scheme]["accuracy"]
        assert real[scheme]["arrived_relevance"] == pytest.approx(real[scheme]["relevance_kept"])
        assert real[scheme]["experts_per_token"] == ideal[scheme]["experts_per_token"]
        # Realised energy = plan x (pilot overhead, MCS granularity, the odd HARQ retry).
        ratio = real[scheme]["energy_per_token_j"] / real[scheme]["planned_energy_per_token_j"]
        assert 0.9 <= ratio <= 1.6


def test_low_snr_drops_links_and_loses_accuracy(model):
    common = {"num_tokens": TOKENS, "schemes": ["top_k"], "channel": FAR}
    ideal = run_point({**common, "phy": {"fidelity": "ideal"}})[0]
    dropped = run_point({**common, "phy": {"on_failure": "drop"}})[0]
    corrupted = run_point({**common, "phy": {"on_failure": "corrupt"}})[0]
    assert dropped["mean_snr_db"] < -20
    assert dropped["drop_rate"] > 0.5 and dropped["bler"] > 0.5
    assert dropped["accuracy"] < ideal["accuracy"] - 0.1
    assert dropped["arrived_relevance"] < 0.5
    # Corrupted payloads are combined anyway: bit errors reach the activations.
    assert corrupted["ber"] > 0.1
    assert corrupted["arrived_relevance"] == pytest.approx(corrupted["relevance_kept"])
    assert corrupted["accuracy"] < ideal["accuracy"] - 0.1


def test_jesa_beats_random_subcarriers_and_optimal_bounds_jesa(model):
    """Same channel draws and tokens, decision by decision (planned energy)."""
    from dmoe.phy import ChannelConfig, sample_links
    from dmoe.scheduler import JointProblem

    x, _ = model.test_data()
    hidden = model.embed(x[:32])
    relevance = model.relevance(0, hidden).astype(np.float64)
    cfg = ChannelConfig(num_subcarriers=16)
    links = sample_links(cfg, batch_size=32, num_links=model.num_experts, seed=5)
    rate_d = np.maximum(links.rate(direction="dispatch")[:, 0], 1.0)
    rate_u = np.maximum(links.rate(direction="return")[:, 0], 1.0)
    bits = model.payload_bits(0, 8)
    problem = JointProblem(relevance=relevance, rate_dispatch=rate_d, payload_bits_dispatch=bits,
                           rate_return=rate_u, payload_bits_return=bits,
                           subcarrier_power_w=cfg.subcarrier_power_w, max_experts=3,
                           importance=0.8)
    rng = np.random.default_rng(0)

    def planned(scheme):
        decision = decide(scheme, problem, rng=rng)
        # Independent of the scheduler's own bookkeeping: E = P_sc |N| B / sum r per link.
        e_d, _ = link_energy_airtime(rate_d, decision.dispatch, bits, cfg.subcarrier_power_w)
        e_u, _ = link_energy_airtime(rate_u, decision.returned, bits, cfg.subcarrier_power_w)
        # Disjoint subcarriers within a phase, one set per selected link.
        assert np.all(decision.dispatch.sum(axis=1) <= 1)
        assert np.all(decision.dispatch.any(axis=-1) == decision.selected)
        return (e_d + e_u).sum(axis=-1)

    jesa, optimal = planned("jesa"), planned("optimal")
    random_subcarriers = planned("des_random_subcarriers")
    assert np.mean(jesa) < np.mean(random_subcarriers)
    assert np.all(optimal <= jesa * (1 + 1e-9))


def test_same_config_same_rows_and_layerwise_schemes_run(model):
    config = {"num_tokens": 32, "schemes": ["des_layerwise", "jesa_layerwise", "random", "wlr"],
              "layer_importance": [0.5, 1.0], "channel": {"speed_mps": 10.0}}
    first = [_deterministic(row) for row in run_point(config)]
    second = [_deterministic(row) for row in run_point(config)]
    assert first == second
    rows = _by_scheme(first)
    # Layer-wise rho = (0.5, 1.0): the last layer is Top-D, so agreement is at least 1/2.
    assert rows["des_layerwise"]["topk_agreement"] >= 0.5
    for row in first:
        assert row["execution_mode"] == "graph" and row["device"]
        assert row["importance"] == 0.9 and row["layer_importance"] == "[0.5, 1.0]"
        assert row["channel.model"] == "rayleigh"


def test_gate_trace_accuracy_is_the_arrived_relevance_mass():
    trace = load_model(StudyConfig(moe={"task": "trace"}).moe)
    tokens, _ = trace.test_data()
    rows = _by_scheme(run_point({"num_tokens": len(tokens), "schemes": ["top_k"],
                                 "max_experts": 2, "moe": {"task": "trace"},
                                 "phy": {"fidelity": "ideal"}}))
    reference = trace.accuracy(tokens, selection="top_k", k=2)
    assert rows["top_k"]["accuracy"] == pytest.approx(reference, rel=1e-5)


def test_point_checks_against_the_model(model):
    with pytest.raises(ValueError, match="max_experts.*K = 8"):
        run_point({"max_experts": 9})
    with pytest.raises(ValueError, match="layer_importance.*L = 2"):
        run_point({"schemes": ["des_layerwise"], "layer_importance": [0.5, 0.6, 0.7]})
    with pytest.raises(ValueError, match="distances_m.*K = 8"):
        run_point({"channel": {"distances_m": [10.0, 20.0]}})


def test_execution_mode_is_applied_recorded_and_restored(model):
    import tensorflow as tf

    before = tf.config.functions_run_eagerly()
    config = {"num_tokens": 16, "schemes": ["des"], "phy": {"fidelity": "ideal"}}
    eager = run_point({**config, "execution": {"mode": "eager"}})[0]
    graph = run_point({**config, "execution": {"mode": "graph"}})[0]
    assert tf.config.functions_run_eagerly() == before
    assert (eager["execution_mode"], graph["execution_mode"]) == ("eager", "graph")
    assert eager["experts_per_token"] == graph["experts_per_token"]
