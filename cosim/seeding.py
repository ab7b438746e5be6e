r"""Where every random stream of a point comes from (common random numbers).

Everything random in a point derives from ``config.seed`` and the part of the config that
should change it, so that points which differ only elsewhere share the draw:

* the *tokens* (test examples) depend on the MoE and ``num_tokens`` only: every point of a
  study with this MoE sees the same examples;
* the *channel* depends on the settings that shape geometry and fading (not on transmit power,
  noise or CSI quality): a power or CSI sweep sees the same channels;
* the *link outcomes* depend on the channel key and the PHY settings except ``on_failure``:
  ``drop`` and ``corrupt`` see the same failures;
* each *scheme*'s own randomness depends on the decision inputs only, not on the PHY fidelity
  or the execution mode (``random`` picks the same sets in every fidelity).

A chunk of tokens (``[execution] chunk_size``) derives its own streams from the point's and its
position, see ``docs/scaling.md``.
"""

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from dmoe.phy.config import ChannelConfig, draw_fields

from .config import canonical_dump

__all__ = ["derive_seed", "PointSeeds", "point_seeds", "chunk_seeds", "draw_examples",
           "channel_key", "moe_key"]


def derive_seed(*parts):
    """A deterministic 31-bit seed from any JSON-serialisable parts.

    Parameters
    ----------
    *parts : JSON-serialisable
        E.g. ``(run_seed, point_key, "channel")``.

    Output
    ------
    seed : int
        In ``[0, 2**31 - 1)``, identical on every machine and Python version.

    Example
    -------
    >>> derive_seed(1, "a") == derive_seed(1, "a") != derive_seed(2, "a")
    True
    """
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % (2**31 - 1)



#: ``[moe]`` settings of the payload on the air, not of the MoE itself.
_PAYLOAD_KEYS = ("bits_per_value", "air_width", "air_preset")


def moe_key(config):
    """The MoE's identity in seeds: not where it is cached nor what its payloads look like (so
    points that differ only in the payload see the same tokens and channels)."""
    return config.moe.model_dump(mode="json", exclude={"cache_dir", *_PAYLOAD_KEYS})


def channel_key(config):
    """The ``[channel]`` settings that shape the channel draw, as a JSON-ready dict.

    Which settings shape it is declared on the fields of ``dmoe.phy.ChannelConfig``
    (:func:`dmoe.phy.config.draw_fields`).
    """
    channel = canonical_dump(config)["channel"]
    drawn = draw_fields(ChannelConfig(**config.channel.model_dump()))
    return {name: value for name, value in channel.items() if name in drawn}


@dataclass(frozen=True)
class PointSeeds:
    """The seeds of one point (or chunk).

    Attributes
    ----------
    channel : int
        Channel draw (``dmoe.phy.sample_links``).
    link : int
        Link outcomes; each round and phase derives its own from it.
    schemes : dict of str -> int
        Each scheme's own random stream.
    """

    channel: int
    link: int
    schemes: dict


def point_seeds(config):
    """The :class:`PointSeeds` of a point (:class:`~dmoe.cosim.StudyConfig`)."""
    moe, channel, tokens = moe_key(config), channel_key(config), config.num_tokens
    decision_key = canonical_dump(config)
    for name in ("phy", "execution", "schemes"):
        decision_key.pop(name)
    decision_key["moe"].pop("cache_dir")
    # A scheme's own randomness (e.g. `random`'s picks) does not change with the air payload's
    # size, so payload sizes are compared on the same picks.
    for name in ("air_width", "air_preset"):
        decision_key["moe"].pop(name, None)
    return PointSeeds(
        channel=derive_seed(config.seed, "channel", channel, moe, tokens),
        link=derive_seed(config.seed, "link", channel, moe, tokens,
                         config.phy.model_dump(mode="json", exclude={"on_failure"}),
                         config.moe.bits_per_value),
        schemes={scheme: derive_seed(config.seed, "scheme", scheme, decision_key)
                 for scheme in config.schemes})


def chunk_seeds(seeds, start, stop, num_tokens):
    """The seeds of tokens ``start:stop``: the point's own for the whole batch, else derived."""
    if (start, stop) == (0, num_tokens):
        return seeds

    def of(seed):
        return derive_seed(seed, "chunk", start, stop)
    return PointSeeds(channel=of(seeds.channel), link=of(seeds.link),
                      schemes={name: of(seed) for name, seed in seeds.schemes.items()})


def draw_examples(config, num_examples, num_drawn=None):
    """Indices of the point's test examples, without replacement if possible.

    ``num_drawn`` examples (default ``num_tokens``: one routed token per example) out of
    ``num_examples``: [num_drawn] int.
    """
    num_drawn = config.num_tokens if num_drawn is None else num_drawn
    rng = np.random.default_rng(derive_seed(config.seed, "tokens", moe_key(config),
                                            config.num_tokens))
    return rng.choice(num_examples, size=num_drawn, replace=num_drawn > num_examples)
