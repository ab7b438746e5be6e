"""PHY layer of dmoe: 3GPP TR 38.901 OFDM channels and link-level metrics on Sionna.

This is the only package that imports ``sionna``. It will provide per-subcarrier channels
(Rayleigh, TDL, CDL, UMi, UMa, RMa), SNRs and planning rates, and link realisation through
PHY abstraction or a bit-true 5G chain.
"""

from dmoe.common import check_versions as _check_versions

_check_versions()

from .config import ChannelConfig
from .links import Links, sample_links
from .pathloss import pathloss_db
from .rates import mcs_rate, shannon_rate
from ._mcs import MCSTable, bler_awgn, mcs_table, select_mcs
from .link_simulator import LinkSimulator, TransmissionResult

__all__ = [
    # channels (Channel engineer)
    "ChannelConfig", "Links", "sample_links", "pathloss_db", "shannon_rate", "mcs_rate",
    "MCSTable", "mcs_table", "bler_awgn", "select_mcs",
    # link realisation (Link engineer)
    "LinkSimulator", "TransmissionResult",
]
