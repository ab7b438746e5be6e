r"""Distance-based path loss of TR 38.901 Table 7.4.1-1 (UMi street canyon, UMa, RMa).

Used for the link-level models (rayleigh, tdl, cdl), which carry no path loss of their own,
and as the reference the system-level models are checked against. ``docs/phy.md``,
"Path loss", gives the formulas and defaults.
"""

import numpy as np

__all__ = ["pathloss_db", "SCENARIO_HEIGHTS_M", "SHADOW_FADING_STD_DB"]

SPEED_OF_LIGHT = 299_792_458.0

#: Default (BS height, UT height) in m per scenario (TR 38.901 Table 7.4.1-1).
SCENARIO_HEIGHTS_M = {"umi": (10.0, 1.5), "uma": (25.0, 1.5), "rma": (35.0, 1.5)}

#: Shadow-fading standard deviation in dB, (LoS, NLoS); RMa LoS is 4 dB before the
#: breakpoint and 6 dB after it (the before-breakpoint value is listed).
SHADOW_FADING_STD_DB = {"umi": (4.0, 7.82), "uma": (4.0, 6.0), "rma": (4.0, 8.0)}

# RMa defaults: average building height and street width in m.
_RMA_BUILDING_HEIGHT_M = 5.0
_RMA_STREET_WIDTH_M = 20.0


def _umi(d2d, d3d, fc_hz, h_bs, h_ut, los):
    fc_ghz = fc_hz / 1e9
    d_bp = 4.0 * (h_bs - 1.0) * (h_ut - 1.0) * fc_hz / SPEED_OF_LIGHT
    pl1 = 32.4 + 21.0 * np.log10(d3d) + 20.0 * np.log10(fc_ghz)
    pl2 = (32.4 + 40.0 * np.log10(d3d) + 20.0 * np.log10(fc_ghz)
           - 9.5 * np.log10(d_bp ** 2 + (h_bs - h_ut) ** 2))
    pl_los = np.where(d2d <= d_bp, pl1, pl2)
    pl_nlos = 35.3 * np.log10(d3d) + 22.4 + 21.3 * np.log10(fc_ghz) - 0.3 * (h_ut - 1.5)
    return np.where(los, pl_los, np.maximum(pl_los, pl_nlos))


def _uma(d2d, d3d, fc_hz, h_bs, h_ut, los):
    fc_ghz = fc_hz / 1e9
    # Effective environment height h_E = 1 m (UT below 13 m).
    d_bp = 4.0 * (h_bs - 1.0) * (h_ut - 1.0) * fc_hz / SPEED_OF_LIGHT
    pl1 = 28.0 + 22.0 * np.log10(d3d) + 20.0 * np.log10(fc_ghz)
    pl2 = (28.0 + 40.0 * np.log10(d3d) + 20.0 * np.log10(fc_ghz)
           - 9.0 * np.log10(d_bp ** 2 + (h_bs - h_ut) ** 2))
    pl_los = np.where(d2d <= d_bp, pl1, pl2)
    pl_nlos = 13.54 + 39.08 * np.log10(d3d) + 20.0 * np.log10(fc_ghz) - 0.6 * (h_ut - 1.5)
    return np.where(los, pl_los, np.maximum(pl_los, pl_nlos))


def _rma(d2d, d3d, fc_hz, h_bs, h_ut, los):
    fc_ghz = fc_hz / 1e9
    h, w = _RMA_BUILDING_HEIGHT_M, _RMA_STREET_WIDTH_M
    d_bp = 2.0 * np.pi * h_bs * h_ut * fc_hz / SPEED_OF_LIGHT

    def pl1(d):
        return (20.0 * np.log10(40.0 * np.pi * d * fc_ghz / 3.0)
                + min(0.03 * h ** 1.72, 10.0) * np.log10(d)
                - min(0.044 * h ** 1.72, 14.77) + 0.002 * np.log10(h) * d)

    pl_los = np.where(d2d <= d_bp, pl1(d3d), pl1(d_bp) + 40.0 * np.log10(d3d / d_bp))
    pl_nlos = (161.04 - 7.1 * np.log10(w) + 7.5 * np.log10(h)
               - (24.37 - 3.7 * (h / h_bs) ** 2) * np.log10(h_bs)
               + (43.42 - 3.1 * np.log10(h_bs)) * (np.log10(d3d) - 3.0)
               + 20.0 * np.log10(fc_ghz) - (3.2 * np.log10(11.75 * h_ut) ** 2 - 4.97))
    return np.where(los, pl_los, np.maximum(pl_los, pl_nlos))


_FORMULAS = {"umi": _umi, "uma": _uma, "rma": _rma}


def pathloss_db(distance_2d_m, carrier_frequency_hz, los, scenario="umi", h_bs_m=None,
                h_ut_m=None):
    r"""Mean path loss in dB of TR 38.901 Table 7.4.1-1 (no shadow fading).

    Parameters
    ----------
    distance_2d_m : array_like, float
        Ground distance between BS and UT in m (any shape). The table is specified from
        10 m on; shorter distances are evaluated with the same formula.
    carrier_frequency_hz : float
        Carrier frequency in Hz.
    los : array_like, bool
        Line of sight (broadcast against ``distance_2d_m``).
    scenario : str
        ``"umi"`` (street canyon), ``"uma"`` or ``"rma"``.
    h_bs_m, h_ut_m : float or None
        BS and UT heights in m; None takes :data:`SCENARIO_HEIGHTS_M`.

    Output
    ------
    pathloss_db : array, float64
        Broadcast shape of ``distance_2d_m`` and ``los``.

    Example
    -------
    >>> float(pathloss_db(100.0, 3.5e9, los=False))   # UMi NLoS at 100 m
    104.6...
    """
    if scenario not in _FORMULAS:
        raise ValueError(f"scenario must be one of {tuple(_FORMULAS)}, got {scenario!r}")
    default_bs, default_ut = SCENARIO_HEIGHTS_M[scenario]
    h_bs = default_bs if h_bs_m is None else float(h_bs_m)
    h_ut = default_ut if h_ut_m is None else float(h_ut_m)
    d2d = np.asarray(distance_2d_m, dtype=np.float64)
    if np.any(d2d <= 0):
        raise ValueError("distance_2d_m must be > 0 m")
    if not carrier_frequency_hz > 0:
        raise ValueError(f"carrier_frequency_hz must be > 0, got {carrier_frequency_hz!r}")
    d3d = np.sqrt(d2d ** 2 + (h_bs - h_ut) ** 2)
    return _FORMULAS[scenario](d2d, d3d, float(carrier_frequency_hz), h_bs, h_ut,
                               np.asarray(los, dtype=bool))
