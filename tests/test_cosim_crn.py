"""Common random numbers across sweep points, failure semantics, and config guards."""

import numpy as np
import pytest

from dmoe.cosim import NONDETERMINISTIC_COLUMNS, run_point
from dmoe.cosim.study import expand_study

TOKENS = 32
MID = {"distances_m": [150.0] * 8}


def _by_scheme(rows):
    return {row["scheme"]: row for row in rows}


def test_transmit_power_sweep_sees_the_same_channel_draws():
    # Same fading and geometry at every power: the mean SNR in dB moves by exactly the power
    # step (a different draw would move it by the step plus sampling noise).
    common = {"num_tokens": TOKENS, "schemes": ["top_k"], "phy": {"fidelity": "ideal"}}
    low = run_point({**common, "channel": {**MID, "tx_power_dbm": 20.0}})[0]
    high = run_point({**common, "channel": {**MID, "tx_power_dbm": 23.0}})[0]
    assert high["mean_snr_db"] - low["mean_snr_db"] == pytest.approx(3.0, abs=1e-6)


def test_csi_quality_sweep_sees_the_same_true_channel():
    common = {"num_tokens": TOKENS, "schemes": ["top_k"], "phy": {"fidelity": "ideal"}}
    perfect = run_point({**common, "channel": {**MID, "csi": "perfect"}})[0]
    estimated = run_point({**common, "channel": {**MID, "csi": "ls"}})[0]
    assert perfect["mean_snr_db"] == estimated["mean_snr_db"]


def test_drop_and_corrupt_see_the_same_link_outcomes():
    # on_failure only decides what is done with a failed block, not which blocks fail. One MoE
    # layer, so that the decisions cannot differ through a hidden state the failures changed.
    common = {"num_tokens": TOKENS, "schemes": ["top_k", "des"], "importance": 0.8,
              "moe": {"num_layers": 1},
              "channel": {"distances_m": [400.0] * 8, "tx_power_dbm": 0.0}}
    drop = _by_scheme(run_point({**common, "phy": {"on_failure": "drop"}}))
    corrupt = _by_scheme(run_point({**common, "phy": {"on_failure": "corrupt"}}))
    assert drop["top_k"]["bler"] > 0  # the check means something only if blocks fail
    for scheme in common["schemes"]:
        assert drop[scheme]["bler"] == corrupt[scheme]["bler"]
        assert drop[scheme]["energy_dispatch_j"] == corrupt[scheme]["energy_dispatch_j"]
        assert drop[scheme]["retransmissions"] == corrupt[scheme]["retransmissions"]


def test_a_gate_trace_treats_corrupt_as_drop():
    # A trace has no activations to corrupt: an expert whose dispatch failed is not computed
    # and returns nothing, so both settings give the same rows.
    common = {"num_tokens": TOKENS, "schemes": ["top_k"], "max_experts": 2,
              "compute_energy_j": 1e-3, "moe": {"task": "trace"},
              "channel": {"distances_m": [400.0] * 8, "tx_power_dbm": 0.0}}
    drop = run_point({**common, "phy": {"on_failure": "drop"}})[0]
    corrupt = run_point({**common, "phy": {"on_failure": "corrupt"}})[0]
    assert drop["drop_rate"] > 0
    for key, value in drop.items():
        if key not in NONDETERMINISTIC_COLUMNS and key not in ("phy.on_failure", "point_seed"):
            assert corrupt[key] == value or (value != value and corrupt[key] != corrupt[key]), key


@pytest.mark.parametrize("raw, words", [
    ({"max_experts": 2, "channel": {"num_subcarriers": 1}}, "num_subcarriers"),
    ({"schemes": ["top_2"], "max_experts": 1, "channel": {"num_subcarriers": 1}},
     "num_subcarriers"),
    ({"importance": [0.5, 0.5]}, "more than once"),
    ({"schemes": ["des_layerwise"], "layer_importance": [0.5, float("nan")]}, "layer_importance"),
    ({"compute_energy_j": float("inf")}, "compute_energy_j"),
])
def test_config_guards(raw, words):
    with pytest.raises(ValueError, match=words):
        expand_study(raw)
