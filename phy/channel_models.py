"""The channel models ``ChannelConfig.model`` may name: built-in ones and registered ones.

A channel model is one function (``docs/phy.md``, "Adding a channel model"):

``sample(cfg, distances, num_times, seed, rng, execution, precision) -> h``

with ``cfg`` the :class:`~dmoe.phy.ChannelConfig`, ``distances`` [batch, links] float64 in m,
``num_times`` instants ``cfg.round_interval_s`` apart, ``seed`` (for Sionna's generators) and
``rng`` (a numpy Generator: the one source of numpy randomness), ``execution`` and ``precision``
as in :func:`~dmoe.phy.sample_links`; it returns the true channel ``h`` [batch, num_times,
links, cfg.num_subcarriers], complex64 (``"single"``) or complex128 (``"double"``), path-loss
amplitude included. Everything downstream (SNRs, CSI views, rates, link realisation) is shared.
This module imports neither TensorFlow nor Sionna.
"""

__all__ = ["CHANNEL_MODELS", "register_channel_model", "registered_channel_model",
           "channel_models"]

#: The built-in channel models (``dmoe.phy._channels``).
CHANNEL_MODELS = ("rayleigh", "tdl", "cdl", "umi", "uma", "rma")

_SAMPLERS = {}


def register_channel_model(name, sample, *, replace=False):
    """Make ``ChannelConfig(model=name)`` draw its channels with ``sample``.

    Parameters
    ----------
    name : str
        The model's name in a ``ChannelConfig`` and in a study's ``[channel] model``.
    sample : callable
        ``sample(cfg, distances, num_times, seed, rng, execution, precision) -> h`` (see the
        module docstring).
    replace : bool
        Allow replacing a registered model of that name.

    Example
    -------
    >>> def flat(cfg, distances, num_times, seed, rng, execution, precision):
    ...     amplitude = 10 ** (-pathloss_db(distances, cfg.carrier_frequency_hz, False, "umi") / 20)
    ...     h = np.ones(distances.shape[:1] + (num_times,) + distances.shape[1:]
    ...                 + (cfg.num_subcarriers,), np.complex64)
    ...     return h * amplitude[:, None, :, None].astype(np.float32)
    >>> register_channel_model("flat", flat)       # doctest: +SKIP
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if not callable(sample):
        raise TypeError(f"sample must be callable, got {type(sample).__name__}")
    if name in CHANNEL_MODELS:
        raise ValueError(f"{name!r} is a built-in channel model; choose another name")
    if name in _SAMPLERS and not replace:
        raise ValueError(f"channel model {name!r} is already registered (pass replace=True to "
                         "replace it)")
    _SAMPLERS[name] = sample


def channel_models():
    """Names of every channel model, built-in ones first: tuple of str."""
    return CHANNEL_MODELS + tuple(_SAMPLERS)


def registered_channel_model(name):
    """The sampling function registered as ``name`` (``ValueError`` naming the known ones)."""
    try:
        return _SAMPLERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"channel model must be one of {channel_models()}, got {name!r}") \
            from None
