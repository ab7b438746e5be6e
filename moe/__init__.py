"""Mixture-of-Experts models of dmoe (TensorFlow / Keras 3).

This is the only package that defines Keras models. It provides a layer-by-layer MoE that
supplies gate relevance scores and the task accuracy under any expert choice: ``digits``
(scikit-learn handwritten digits), ``modrec`` (modulation recognition) and ``trace`` (replayed gate
scores) and ``multidomain`` (a token-level transformer MoE on generated multi-domain sequences),
and the interface the co-simulation drives, :class:`MoEProtocol`. See ``docs/moe.md``.
Names are imported on first use (the supported TensorFlow / NumPy versions are checked then);
nothing here imports Sionna.
"""

import functools as _functools

from dmoe.common import check_versions as _check_versions
from dmoe.common.lazy import lazy_exports as _lazy_exports

_HOME = {
    "MoEProtocol": "protocol",
    "MoEConfig": "config", "TASKS": "config",
    "build_moe": "train", "train_moe": "train",
    "load_default_moe": "defaults", "load_trained_moe": "defaults",
    "DEFAULT_CONFIGS": "defaults", "default_cache_dir": "defaults",
    "MoEModel": "model", "SELECTIONS": "model",
    "MoENetwork": "network", "MoELayer": "network",
    "TraceMoE": "trace", "TraceState": "trace", "load_trace": "trace", "record_trace": "trace",
    "EXECUTION_MODES": "dmoe.common",
    "payload_bits": "quantize", "to_bits": "quantize", "from_bits": "quantize",
    "quantization_step": "quantize",
    "AIR_PRESETS": "payload", "AirPreset": "payload", "air_preset": "payload",
    "PayloadLayout": "payload", "payload_layout": "payload",
    "SequenceMoEModel": "sequence_model", "SequenceState": "sequence_model",
    "TransformerMoENetwork": "transformer", "TransformerMoEBlock": "transformer",
    "layer_sensitivity": "sensitivity", "auto_layer_importance": "sensitivity",
    "cheapest_covering_set": "sensitivity", "routing_concentration": "sensitivity",
}

__all__ = list(_HOME)

__getattr__, __dir__ = _lazy_exports(
    __name__, _HOME, before=_functools.partial(_check_versions, ("tensorflow", "numpy")))
