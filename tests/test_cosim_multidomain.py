"""The co-simulation on a token-level transformer MoE: routed positions, per-domain accuracy,
layer_importance = "auto"."""

import json

import numpy as np
import pytest

from dmoe.cosim import run_point
from dmoe.cosim import models as cosim_models
from dmoe.moe import MoEConfig, auto_layer_importance, build_moe
from dmoe.moe._sequences import DOMAINS

TINY = dict(task="multidomain", num_layers=2, num_experts=4, width=16, expert_hidden=8,
            num_heads=2, multidomain_train=64, multidomain_test=40)


@pytest.fixture(scope="module")
def tiny():
    model = build_moe(MoEConfig(seed=2, **TINY))
    # A known sensitivity (the measured one of an untrained model is noise): layer 0 matters.
    cosim_models._SENSITIVITY[model] = {2: np.array([0.30, 0.02])}
    return model


def _point(**changes):
    config = {"num_tokens": 13 * 6, "schemes": ["des", "top_k", "des_layerwise"],
              "importance": 0.4, "layer_importance": "auto", "max_experts": 2,
              "channel": {"num_subcarriers": 16}, "moe": {"task": "multidomain"},
              "phy": {"fidelity": "abstraction"}}
    config.update(changes)
    return config


def test_every_position_is_a_routed_token_and_accuracy_is_counted_per_domain(tiny):
    rows = {row["scheme"]: row for row in run_point(_point(), model=tiny)}
    top = rows["top_k"]
    # Two experts per routed position and layer: the divisor is sequences x positions.
    assert top["experts_per_token"] == pytest.approx(2.0)
    present = [name for name in DOMAINS if not np.isnan(top[f"accuracy_{name}"])]
    assert present and all(0.0 <= top[f"accuracy_{name}"] <= 1.0 for name in present)
    assert 0.0 <= top["accuracy"] <= 1.0
    assert min(top[f"accuracy_{n}"] for n in present) <= top["accuracy"] \
        <= max(top[f"accuracy_{n}"] for n in present)
    assert top["chunk_size"] % tiny.tokens_per_example == 0


def test_auto_layer_importance_matches_the_homogeneous_budget(tiny):
    for rho in (0.1, 0.4, 0.8):
        rows = run_point(_point(importance=rho), model=tiny)
        used = json.loads(rows[0]["layer_importance_used"])
        assert np.mean(used) == pytest.approx(rho, abs=1e-12)
        np.testing.assert_allclose(used, auto_layer_importance([0.30, 0.02], rho))
        assert used[0] > used[1]   # the sensitive layer gets the higher requirement
        layerwise = next(r for r in rows if r["scheme"] == "des_layerwise")
        assert layerwise["requirement_met"] == pytest.approx(1.0)


def test_auto_layer_importance_is_the_measured_sensitivity_by_default():
    model = build_moe(MoEConfig(seed=4, **TINY))
    from dmoe.cosim.config import StudyConfig
    config = StudyConfig.model_validate(_point(importance=0.5))
    rho = cosim_models.layer_importance(config, model)
    from dmoe.moe import layer_sensitivity
    np.testing.assert_allclose(rho, auto_layer_importance(layer_sensitivity(model), 0.5))


def test_num_tokens_must_be_whole_sequences(tiny):
    with pytest.raises(ValueError, match="num_tokens"):
        run_point(_point(num_tokens=20), model=tiny)
