"""LLM-sized payloads through the engine: [moe] keys, payload sizes, airtime/energy scaling, the
model's bits inside the air payload, and the accuracy intervals of every row."""

import numpy as np
import pytest

from dmoe.cosim import load_model, run_point
from dmoe.cosim.config import StudyConfig
from dmoe.cosim.models import channel_config
from dmoe.cosim.rounds import _transmit
from dmoe.cosim.study import expand_study
from dmoe.cosim.intervals import wilson_interval
from dmoe.moe import PayloadLayout

TOKENS = 32
FAR = {"distances_m": [3000.0] * 8, "tx_power_dbm": 0.0}


@pytest.fixture(scope="module")
def model():
    return load_model(StudyConfig().moe)


def _by_scheme(rows):
    return {row["scheme"]: row for row in rows}


def test_presets_set_air_width_and_bits_and_conflicts_name_the_key():
    moe = StudyConfig.model_validate({"moe": {"air_preset": "mixtral-8x7b"}}).moe
    assert (moe.air_width, moe.bits_per_value) == (4096, 16)
    for name, width in (("olmoe-1b-7b", 2048), ("deepseek-v2-lite", 2048),
                        ("qwen1.5-moe-a2.7b", 2048)):
        moe = StudyConfig.model_validate({"moe": {"air_preset": name}}).moe
        assert (moe.air_width, moe.bits_per_value) == (width, 16)
    # A sweep against "none" (no preset) keeps the given width and bits there.
    points = expand_study({"moe": {"air_preset": ["none", "olmoe-1b-7b"]}})
    assert [(p.config.moe.air_width, p.config.moe.bits_per_value) for p in points] == [
        (None, 8), (2048, 16)]
    with pytest.raises(ValueError, match=r"moe\.bits_per_value = 8 conflicts with moe\.air_pr"):
        expand_study({"moe": {"air_preset": "mixtral-8x7b", "bits_per_value": 8}})
    with pytest.raises(ValueError, match=r"'moe\.air_preset' = 'gpt-4'"):
        expand_study({"moe": {"air_preset": "gpt-4"}})
    with pytest.raises(ValueError, match=r"'moe\.air_width' = 0"):
        expand_study({"moe": {"air_width": 0}})


def test_an_air_width_below_the_models_is_refused(model):
    with pytest.raises(ValueError, match=r"config key 'moe\.air_width' = 16: the air payload"):
        run_point({"num_tokens": 4, "moe": {"air_width": 16}})


def test_unset_payload_keys_leave_the_point_key_as_it_was():
    from dmoe.cosim.config import point_key
    assert "air_" not in point_key(StudyConfig())
    assert '"air_width":4096' in point_key(StudyConfig.model_validate(
        {"moe": {"air_preset": "mixtral-8x7b"}}))


def test_ideal_energy_and_airtime_scale_with_the_air_payload(model):
    # E = P B / r and t = B / r (MODEL.md): with the same decisions, both scale by B'/B.
    common = {"num_tokens": TOKENS, "schemes": ["top_k", "des"], "importance": 0.8,
              "phy": {"fidelity": "ideal"}}
    own = _by_scheme(run_point(common))
    big = _by_scheme(run_point({**common, "moe": {"air_width": 4096}}))
    width = model.width
    ratio = (16 + 4096 * 8) / (16 + width * 8)
    for scheme in common["schemes"]:
        assert own[scheme]["payload_bits"] == 16 + width * 8
        assert big[scheme]["payload_bits"] == 16 + 4096 * 8
        assert big[scheme]["energy_per_token_j"] == pytest.approx(
            ratio * own[scheme]["energy_per_token_j"], rel=1e-9)
        assert big[scheme]["latency_per_token_s"] == pytest.approx(
            ratio * own[scheme]["latency_per_token_s"], rel=1e-9)
        assert big[scheme]["accuracy"] == own[scheme]["accuracy"]  # nothing fails


def test_every_row_carries_the_wilson_interval_of_its_accuracy(model):
    rows = run_point({"num_tokens": TOKENS, "schemes": ["des", "top_1"]})
    for row in rows:
        low, high = wilson_interval(round(row["accuracy"] * TOKENS), TOKENS)
        assert (row["accuracy_ci_low"], row["accuracy_ci_high"]) == pytest.approx(
            (float(low), float(high)))
        assert row["accuracy_ci_low"] <= row["accuracy"] <= row["accuracy_ci_high"]


@pytest.mark.parametrize("fidelity", ["abstraction", "link"])
def test_failed_links_corrupt_the_models_bits_at_the_air_payloads_bit_error_rate(fidelity):
    # The engine's own transmit path at a lossy SNR: over the failed links, the share of the
    # model's bits that arrive flipped equals the share of air-payload bits in error.
    from dmoe.phy import LinkSimulator, sample_links
    tokens, experts, subcarriers = (64, 4, 8) if fidelity == "abstraction" else (3, 2, 8)
    config = StudyConfig.model_validate({"channel": {
        "num_subcarriers": subcarriers, "distances_m": [400.0] * experts, "tx_power_dbm": 0.0}})
    cfg = channel_config(config, 1)
    links = sample_links(cfg, batch_size=tokens, num_links=experts, seed=3)
    sim = LinkSimulator(cfg, fidelity=fidelity, max_retransmissions=0, execution="eager")
    layout = PayloadLayout(272, 4000 if fidelity == "abstraction" else 1200)
    rng = np.random.default_rng(0)
    proxy = rng.integers(0, 2, (tokens, experts, layout.proxy_bits), dtype=np.uint8)
    mask = np.zeros((tokens, experts, subcarriers), bool)
    mask[:, np.arange(experts), np.arange(experts)] = True      # one subcarrier per link
    zeros = np.zeros((tokens, experts))
    phase = _transmit(sim, links, mask, layout.air_bits, proxy, 11, "dispatch", (zeros, zeros),
                      layout)
    failed = ~phase.delivered
    assert failed.sum() >= 4, "the test needs failed links"
    flipped = (phase.received != proxy).sum(axis=-1)
    assert np.all(flipped[~failed] == 0)
    proxy_rate = flipped[failed].sum() / (failed.sum() * layout.proxy_bits)
    air_rate = phase.bit_errors[failed].sum() / (failed.sum() * layout.air_bits)
    trials = failed.sum() * layout.proxy_bits
    assert air_rate > 0.01
    assert abs(proxy_rate - air_rate) < 5 * np.sqrt(air_rate * (1 - air_rate) / trials) + 0.01


def test_corrupt_runs_with_an_llm_payload_and_sees_its_bit_errors(model):
    common = {"num_tokens": TOKENS, "schemes": ["top_k"], "channel": FAR,
              "moe": {"air_width": 1024}}
    drop = _by_scheme(run_point({**common, "phy": {"on_failure": "drop"}}))["top_k"]
    corrupt = _by_scheme(run_point({**common, "phy": {"on_failure": "corrupt"}}))["top_k"]
    # Same link outcomes (on_failure does not enter the link seed), different use of them.
    assert corrupt["drop_rate"] == drop["drop_rate"] > 0.5
    assert corrupt["ber"] > 0.05
    assert corrupt["payload_bits"] == 16 + 1024 * 8


def test_a_sweep_against_a_preset_is_stored_and_records_the_air_width(tmp_path):
    from dmoe.cosim import read_results, run_study
    from dmoe.cosim.study import load_study as load
    study = load({"num_tokens": 8, "schemes": ["top_k"], "phy": {"fidelity": "ideal"},
                  "moe": {"air_preset": ["none", "olmoe-1b-7b"]}})
    run_study(study, tmp_path / "run", progress=False)
    table, _ = read_results(tmp_path / "run")
    assert list(table["moe.air_width"]) == [32, 2048]
    assert list(table["payload_bits"]) == [16 + 32 * 8, 16 + 2048 * 16]
