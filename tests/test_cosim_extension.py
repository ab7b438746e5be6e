"""Extension points: a hand-written MoE through a whole point, a registered scheme in a study."""

import numpy as np
import pytest

from dmoe.cosim import (MoEProtocol, load_study, read_results, register_scheme, run_point,
                        run_study)
from dmoe.scheduler import top_d_mask


class TinyMoE:
    """A numpy MoE: residual linear experts, softmax gate, payloads as raw float32 bits."""

    tokens_per_example = 1
    has_activations = True

    def __init__(self, num_experts=4, num_layers=2, width=3, num_examples=40, seed=0):
        rng = np.random.default_rng(seed)
        self.num_experts, self.num_layers, self.width = num_experts, num_layers, width
        self.gate = rng.normal(size=(num_layers, width, num_experts))
        self.experts = rng.normal(scale=0.5, size=(num_layers, num_experts, width, width))
        self.x = rng.normal(size=(num_examples, width)).astype(np.float32)
        self.y = rng.integers(0, width, size=num_examples)
        self.execution = "graph"

    def test_data(self):
        return self.x, self.y

    def embed(self, x):
        return np.asarray(x, np.float32)

    def route(self, layer, state):
        logits = state @ self.gate[layer]
        weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return state, (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float64)

    def payload_bits(self, layer, bits_per_value):
        return 32 * self.width

    def to_bits(self, tokens, bits_per_value):
        tokens = np.ascontiguousarray(tokens, dtype=np.float32)
        bits = np.unpackbits(tokens.view(np.uint8), axis=-1)
        return bits.reshape(tokens.shape[:-1] + (32 * self.width,))

    def from_bits(self, bits, bits_per_value):
        packed = np.packbits(np.asarray(bits, np.uint8), axis=-1)
        return np.ascontiguousarray(packed).view(np.float32).reshape(
            bits.shape[:-1] + (self.width,))

    def expert_outputs(self, layer, tokens):
        return np.einsum("tw,kwv->tkv", tokens, self.experts[layer]).astype(np.float32)

    def combine(self, layer, state, outputs, arrived):
        relevance = self.route(layer, state)[1]
        weights = np.where(arrived, relevance, 0.0)
        total = weights.sum(axis=-1, keepdims=True)
        weights = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
        return state + np.einsum("tk,tkw->tw", weights, outputs).astype(np.float32)

    def evaluate(self, state, y):
        return {"accuracy": (int(np.sum(np.argmax(state, axis=-1) == y)), len(y))}

    def forward(self, d):
        """Reference: the whole pass with the top-d experts of every layer, in numpy."""
        state = self.embed(self.x)
        for layer in range(self.num_layers):
            _, relevance = self.route(layer, state)
            state = self.combine(layer, state, self.expert_outputs(layer, state),
                                 top_d_mask(relevance, d))
        return float(np.mean(np.argmax(state, axis=-1) == self.y))


def test_a_hand_written_moe_runs_a_whole_point_like_its_own_forward_pass():
    model = TinyMoE()
    assert isinstance(model, MoEProtocol)
    rows = run_point({"num_tokens": len(model.y), "schemes": ["top_k", "des"],
                      "importance": 1.0, "max_experts": 2, "phy": {"fidelity": "ideal"},
                      "channel": {"distances_m": [50.0] * 4}}, model=model)
    by_scheme = {row["scheme"]: row for row in rows}
    # Ideal links and lossless payloads: the point is exactly the model's top-2 pass (every
    # example once, as the point draws without replacement).
    assert by_scheme["top_k"]["accuracy"] == model.forward(2)
    assert by_scheme["des"]["accuracy"] == model.forward(2)   # rho = 1: DES takes the top-D
    assert by_scheme["top_k"]["experts_per_token"] == 2.0
    assert model.execution == "graph"                          # restored after the point


def test_run_point_names_what_a_model_lacks():
    model = TinyMoE()
    del model.execution
    with pytest.raises(TypeError, match="lacks execution"):
        run_point({"num_tokens": 4, "schemes": ["top_k"]}, model=model)


def _least_relevant(problem, options):
    """The D least relevant experts: a scheme no built-in one resembles."""
    return top_d_mask(-problem.relevance, problem.max_experts)


def test_a_registered_scheme_runs_from_a_study(tmp_path):
    register_scheme("least_relevant", _least_relevant, replace=True)
    study = load_study({"num_tokens": 16, "schemes": ["least_relevant", "top_k"],
                        "max_experts": 2, "importance": [0.5, 0.9],
                        "phy": {"fidelity": "ideal"}})
    run_study(study, tmp_path / "run", progress=False)
    table, _ = read_results(tmp_path / "run")
    ours = table[table["scheme"] == "least_relevant"]
    assert len(ours) == 2
    # K = 8, D = 2: the two least relevant experts never meet the two most relevant.
    assert (ours["topk_agreement"] == 0.0).all() and (ours["topk_jaccard"] == 0.0).all()
    assert (ours["experts_per_token"] == 2.0).all()
    with pytest.raises(ValueError, match="least_relevant.*already registered"):
        register_scheme("least_relevant", _least_relevant)
    with pytest.raises(ValueError, match="unknown scheme"):
        load_study({"schemes": ["no_such_scheme"]})
