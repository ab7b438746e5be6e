"""Mixture-of-Experts models of dmoe (TensorFlow / Keras 3).

This is the only package that defines Keras models. It provides a layer-by-layer MoE that
supplies gate relevance scores and the task accuracy under any expert choice: ``digits``
(scikit-learn handwritten digits), ``modrec`` (modulation recognition) and ``trace`` (replayed gate
scores) and ``multidomain`` (a token-level transformer MoE on generated multi-domain sequences).
See ``docs/moe.md``.
"""

from dmoe.common import check_versions as _check_versions

_check_versions(("tensorflow", "numpy"))

from dmoe.moe.config import TASKS, MoEConfig  # noqa: E402
from dmoe.moe.defaults import (  # noqa: E402
    DEFAULT_CONFIGS, default_cache_dir, load_default_moe, load_trained_moe)
from dmoe.common import EXECUTION_MODES  # noqa: E402
from dmoe.moe.model import SELECTIONS, MoEModel  # noqa: E402
from dmoe.moe.network import MoELayer, MoENetwork  # noqa: E402
from dmoe.moe.quantize import from_bits, payload_bits, quantization_step, to_bits  # noqa: E402
from dmoe.moe.sensitivity import (  # noqa: E402
    auto_layer_importance, cheapest_covering_set, layer_sensitivity, routing_concentration)
from dmoe.moe.sequence_model import SequenceMoEModel, SequenceState  # noqa: E402
from dmoe.moe.trace import TraceMoE, load_trace, record_trace  # noqa: E402
from dmoe.moe.transformer import TransformerMoEBlock, TransformerMoENetwork  # noqa: E402
from dmoe.moe.train import build_moe, train_moe  # noqa: E402

__all__ = [
    "MoEConfig", "TASKS", "build_moe", "train_moe", "load_default_moe", "load_trained_moe",
    "DEFAULT_CONFIGS", "default_cache_dir", "MoEModel", "MoENetwork", "MoELayer", "TraceMoE", "load_trace",
    "record_trace", "SELECTIONS", "EXECUTION_MODES", "payload_bits", "to_bits", "from_bits", "quantization_step",
    "SequenceMoEModel", "SequenceState", "TransformerMoENetwork", "TransformerMoEBlock",
    "layer_sensitivity", "auto_layer_importance", "cheapest_covering_set", "routing_concentration",
]
