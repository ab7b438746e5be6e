"""PHY layer of dmoe: 3GPP TR 38.901 OFDM channels and link-level metrics on Sionna.

This is the only package that imports ``sionna``: per-subcarrier channels (Rayleigh, TDL, CDL,
UMi, UMa, RMa, and any model registered with :func:`register_channel_model`), SNRs and
planning rates, and link realisation through PHY abstraction or a bit-true 5G chain. Names are
imported on first use (the supported TensorFlow / NumPy / Sionna versions are checked then),
so ``import dmoe.phy.config`` does not start TensorFlow.
"""

from dmoe.common import check_versions as _check_versions
from dmoe.common.lazy import lazy_exports as _lazy_exports

_HOME = {
    "ChannelConfig": "config", "draw_fields": "config", "CHANNEL_MODELS": "channel_models",
    "register_channel_model": "channel_models", "channel_models": "channel_models",
    "Links": "links", "sample_links": "links", "pathloss_db": "pathloss",
    "shannon_rate": "rates", "mcs_rate": "rates",
    "MCSTable": "_mcs", "mcs_table": "_mcs", "bler_awgn": "_mcs", "select_mcs": "_mcs",
    "LinkSimulator": "link_simulator", "TransmissionResult": "link_simulator",
}

__all__ = list(_HOME)

__getattr__, __dir__ = _lazy_exports(__name__, _HOME, before=_check_versions)
