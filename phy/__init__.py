"""PHY layer of dmoe: 3GPP TR 38.901 OFDM channels and link-level metrics on Sionna.

This is the only package that imports ``sionna``. It will provide per-subcarrier channels
(Rayleigh, TDL, CDL, UMi, UMa, RMa), SNRs and planning rates, and link realisation through
PHY abstraction or a bit-true 5G chain.
"""

from ._compat import check_versions as _check_versions

_check_versions()

__all__ = []
