"""The MoE of a point: loading it from a ``[moe]`` section, and checking a point against it.

``run_point`` accepts any object that satisfies :class:`~dmoe.moe.MoEProtocol`; without one it
loads the model the ``[moe]`` section names (trained on first use and cached, see
``docs/moe.md``).
"""

import dataclasses
import weakref
from functools import lru_cache

from .execution import resolve_device
from .memory import check_point_memory

__all__ = ["load_model", "check_point", "check_model", "air_payload", "layer_importance",
           "layer_sensitivity"]

_PROTOCOL_MEMBERS = ("num_layers", "num_experts", "tokens_per_example", "has_activations",
                     "execution", "test_data", "embed", "route", "payload_bits", "to_bits",
                     "from_bits", "expert_outputs", "combine", "evaluate")


def load_model(moe):
    """The MoE of a ``[moe]`` section (trained on first use, cached on disk and in memory).

    Parameters
    ----------
    moe : MoESection

    Output
    ------
    model : dmoe.moe.MoEModel, dmoe.moe.SequenceMoEModel (``multidomain``) or dmoe.moe.TraceMoE
    """
    return _load_model(moe.task, moe.cache_dir, moe.num_experts, moe.num_layers, moe.trace_path,
                       moe.trace_width)


@lru_cache(maxsize=8)
def _load_model(task, cache_dir, num_experts, num_layers, trace_path, trace_width):
    # A read-only memo (a trained model is a pure function of these settings): loading the
    # .keras file once per process, not once per point, changes no result. dmoe.moe is imported
    # here, not at the top, so that `import dmoe.cosim` does not import TensorFlow.
    from dmoe.moe import DEFAULT_CONFIGS, MoEConfig, TraceMoE, load_default_moe, load_trained_moe
    if task == "trace" and (trace_path is not None or trace_width is not None):
        fields = {"task": "trace", "trace_path": trace_path}
        if trace_width is not None:
            fields["trace_width"] = trace_width
        return TraceMoE.from_config(MoEConfig(**fields))
    if num_experts is None and num_layers is None:
        return load_default_moe(task, cache_dir=cache_dir)
    if task == "trace":
        raise ValueError("config keys 'moe.num_experts' / 'moe.num_layers' do not apply to the "
                         "trace task (its sizes come from the trace file)")
    changes = {name: value for name, value in (("num_experts", num_experts),
                                                ("num_layers", num_layers)) if value is not None}
    config = dataclasses.replace(DEFAULT_CONFIGS[task], **changes)
    if "num_experts" in changes and config.top_k > config.num_experts:
        config = dataclasses.replace(config, top_k=config.num_experts)
    return load_trained_moe(config, cache_dir=cache_dir)  # trains once, then reads the cache


def check_model(model):
    """``model`` if it has every member of :class:`~dmoe.moe.MoEProtocol`, else ``TypeError``."""
    missing = [name for name in _PROTOCOL_MEMBERS if not hasattr(model, name)]
    if missing:
        raise TypeError(f"model must satisfy dmoe.moe.MoEProtocol; {type(model).__name__} lacks "
                        f"{', '.join(missing)}")
    return model


def check_point(config, model):
    """Check a point against the MoE it runs on (D, k, layer-wise rho, distances, channel,
    memory: :func:`~dmoe.cosim.memory.check_point_memory`).

    Raises
    ------
    ValueError
        Naming the config key and the model's L or K.
    """
    K, L = model.num_experts, model.num_layers
    per_example = model.tokens_per_example
    if config.num_tokens % per_example:
        raise ValueError(f"config key 'num_tokens' = {config.num_tokens}: must be a multiple of "
                         f"the {per_example} routed tokens per example of the "
                         f"{config.moe.task!r} model (num_tokens counts routed positions)")
    if config.layer_importance == "auto" and not model.has_activations:
        raise ValueError("config key 'layer_importance' = \"auto\" needs a model with "
                         "activations (a gate trace has no layer sensitivity)")
    if config.max_experts > K:
        raise ValueError(f"config key 'max_experts' = {config.max_experts}: must be <= K = {K} "
                         f"experts of the {config.moe.task!r} model")
    if config.top_k is not None and config.top_k > K:
        raise ValueError(f"config key 'top_k' = {config.top_k}: must be <= K = {K}")
    if config.layer_importance not in (None, "auto") and len(config.layer_importance) != L:
        raise ValueError(f"config key 'layer_importance' has {len(config.layer_importance)} "
                         f"values: must have one per MoE layer, L = {L}")
    if config.channel.distances_m is not None and len(config.channel.distances_m) != K:
        raise ValueError(f"config key 'channel.distances_m' has {len(config.channel.distances_m)}"
                         f" values: must have one per expert node, K = {K}")
    for layer in range(L):
        air_payload(config.moe, model, layer)
    channel_config(config, L)
    if config.execution.device is not None:
        try:
            resolve_device(config.execution.device)
        except ValueError as error:
            raise ValueError(f"config key 'execution.device': {error}") from None
    check_point_memory(config, model)  # before any array of the point is allocated


def air_payload(moe, model, layer):
    """What each link of layer ``layer`` carries: its air payload size and the proxy's layout.

    Parameters
    ----------
    moe : MoESection
        ``air_width`` (None: the model's own payload) and ``bits_per_value``.
    model : MoEProtocol
    layer : int

    Output
    ------
    payload_bits : int
        ``16 + air_width * bits_per_value``, or the model's own ``payload_bits`` without
        ``air_width``.
    layout : dmoe.moe.PayloadLayout or None
        Where the model's ``to_bits`` sit in that payload (``docs/moe.md``); None when the air
        payload is the model's own, or the model has no activations.

    Raises
    ------
    ValueError
        Naming ``moe.air_width`` when the air payload cannot hold the model's own.
    """
    bits = moe.bits_per_value
    own = int(model.payload_bits(layer, bits))
    if moe.air_width is None:
        return own, None
    from dmoe.moe.payload import PayloadLayout
    from dmoe.moe.quantize import payload_bits
    air = payload_bits(moe.air_width, bits)
    if not model.has_activations:
        return air, None
    if air < own:
        raise ValueError(f"config key 'moe.air_width' = {moe.air_width}: the air payload "
                         f"({air} bits at {bits} bits per value) must hold the model's own "
                         f"{own}-bit payload; use at least the model's width")
    layout = PayloadLayout(own, air)
    return air, (None if layout.is_identity else layout)


def channel_config(config, num_layers):
    """The ``dmoe.phy.ChannelConfig`` of a point's ``[channel]``, one round per MoE layer."""
    from dmoe.phy import ChannelConfig  # Sionna: only when a point runs
    try:
        return ChannelConfig(**config.channel.model_dump(), num_rounds=num_layers)
    except ValueError as error:
        raise ValueError(f"config section [channel]: {error}") from None


_SENSITIVITY = weakref.WeakKeyDictionary()


def layer_sensitivity(model, max_experts):
    """``dmoe.moe.layer_sensitivity`` of a model on its whole test split, memoised per model.

    A pure function of the model's weights and test data (seeded), so computing it once per
    process, not once per point, changes no result.

    Output
    ------
    sensitivity : [L], float64
    """
    from dmoe.moe import layer_sensitivity as measure
    try:
        memo = _SENSITIVITY.setdefault(model, {})
    except TypeError:  # a model that cannot be weakly referenced: no memo
        memo = {}
    if max_experts not in memo:
        memo[max_experts] = measure(model, max_experts=max_experts)
    return memo[max_experts]


def layer_importance(config, model):
    r"""The rho_l a point's layer-wise schemes use: ``layer_importance``, or its ``"auto"`` value.

    ``"auto"``: ``dmoe.moe.auto_layer_importance`` of the model's layer sensitivity (D =
    ``max_experts``): rho_l grows with the accuracy a layer loses when cut back, and
    ``mean_l rho_l = importance`` (the homogeneous scheme's mean relevance requirement).

    Output
    ------
    rho : tuple of float (one per layer), or None when the point sets none
    """
    if config.layer_importance != "auto":
        return config.layer_importance
    from dmoe.moe import auto_layer_importance
    sensitivity = layer_sensitivity(model, min(config.max_experts, model.num_experts))
    return tuple(float(v) for v in auto_layer_importance(sensitivity, config.importance))
