"""Default trained models, built on first use and cached on disk.

The cache file name is ``<task>-<key>.keras`` with ``key`` a hash of the :class:`MoEConfig` and of
the library versions that change trained weights (TensorFlow, Keras, NumPy, scikit-learn); files
are written atomically (temporary file + ``os.replace``), so concurrent first uses are safe.
Cache folder: ``cache_dir`` argument, else ``$DMOE_CACHE_DIR``, else ``~/.cache/dmoe``.
"""

import hashlib
import json
import os

from dmoe.moe.config import MoEConfig
from dmoe.moe.model import MoEModel
from dmoe.moe.trace import TraceMoE, record_trace
from dmoe.moe.train import library_versions, train_moe

__all__ = ["DEFAULT_CONFIGS", "default_cache_dir", "cache_path", "load_default_moe", "load_trained_moe"]

# Defaults train in seconds on 2 CPU cores (numbers in docs/moe.md).
DEFAULT_CONFIGS = {
    "digits": MoEConfig(task="digits"),
    "modrec": MoEConfig(task="modrec", epochs=15, modrec_examples=8000, balance_weight=0.2),
    "multidomain": MoEConfig(task="multidomain", num_layers=4, num_experts=8, width=64,
                             expert_hidden=128, num_heads=4, balance_weight=0.01,
                             gate_entropy_weight=0.05, epochs=3, batch_size=128,
                             learning_rate=3e-3),
}

_MEMO = {}


def default_cache_dir():
    """``$DMOE_CACHE_DIR`` if set, else ``~/.cache/dmoe``."""
    return os.environ.get("DMOE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "dmoe")


def cache_path(config, cache_dir=None):
    """Cache file of a trained ``config``: ``<cache_dir>/<task>-<16 hex>.keras``."""
    text = json.dumps({"config": config.key(), "versions": library_versions()}, sort_keys=True)
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    return os.path.join(cache_dir or default_cache_dir(), f"{config.task}-{key}.keras")


def load_trained_moe(config, cache_dir=None):
    """A trained model of any ``config``, trained on first use and cached like the defaults.

    Parameters
    ----------
    config : MoEConfig
        ``task`` is ``"digits"`` or ``"modrec"`` (a ``trace`` config is read with ``build_moe``).
    cache_dir : str or None
        Cache folder; None uses :func:`default_cache_dir`.

    Output
    ------
    model : MoEModel

    Example
    -------
    >>> import dataclasses
    >>> config = dataclasses.replace(DEFAULT_CONFIGS["digits"], num_experts=16)
    >>> model = load_trained_moe(config)
    """
    if not isinstance(config, MoEConfig):
        raise TypeError(f"config must be a MoEConfig, got {type(config).__name__}")
    if config.task == "trace":
        raise ValueError("config.task='trace' has nothing to train; use build_moe(config)")
    return _trained(config, cache_dir)


def _check_cache_dir(cache_dir):
    """Refuse a cache folder that is a file or lies under one, before any training."""
    folder = cache_dir or default_cache_dir()
    named = "cache_dir" if cache_dir else (
        "DMOE_CACHE_DIR" if os.environ.get("DMOE_CACHE_DIR") else "the model cache folder")
    path = os.path.abspath(folder)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent
    if not os.path.isdir(path):
        where = "is a file" if path == os.path.abspath(folder) else f"lies under {path!r}, a file"
        raise ValueError(f"{named} {folder!r} {where}: the model cache must be a directory")


def _trained(config, cache_dir):
    _check_cache_dir(cache_dir)
    path = cache_path(config, cache_dir)
    if path in _MEMO:
        return _MEMO[path]
    model = None
    if os.path.exists(path):
        try:
            model = _load(path, config)
        except Exception:  # a truncated or foreign file: rebuild it
            model = None
    if model is None:
        model = train_moe(config)
        model.save(path)
    _MEMO[path] = model
    return model


def _load(path, config):
    if config.task == "multidomain":
        from dmoe.moe.sequence_model import SequenceMoEModel
        return SequenceMoEModel.load(path)
    return MoEModel.load(path)


def load_default_moe(task, cache_dir=None):
    """The trained default model of a task (trained on first use, then read from the cache).

    Parameters
    ----------
    task : str
        ``"digits"``, ``"modrec"`` or ``"trace"``. The default ``trace`` is the gate scores of the
        default ``digits`` model on its test split (top-2 routing), written next to it.
    cache_dir : str or None
        Cache folder; None uses :func:`default_cache_dir`.

    Output
    ------
    model : MoEModel (``digits``, ``modrec``) or TraceMoE (``trace``)

    Example
    -------
    >>> model = load_default_moe("digits")
    >>> model.num_layers, model.num_experts
    (2, 8)
    """
    if task == "trace":
        digits = _trained(DEFAULT_CONFIGS["digits"], cache_dir)
        path = cache_path(DEFAULT_CONFIGS["digits"], cache_dir)[: -len(".keras")] + "-trace.npz"
        if path not in _MEMO:
            if not os.path.exists(path):
                record_trace(digits, digits.test_data()[0], path, selection="top_k", k=2)
            _MEMO[path] = TraceMoE.from_config(MoEConfig(task="trace", trace_path=path,
                                                         trace_width=digits.width))
        return _MEMO[path]
    if task not in DEFAULT_CONFIGS:
        raise ValueError(f"task must be one of {sorted(DEFAULT_CONFIGS) + ['trace']}, got {task!r}")
    return _trained(DEFAULT_CONFIGS[task], cache_dir)
