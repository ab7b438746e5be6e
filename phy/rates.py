"""Planning rates per subcarrier: Shannon and 5G NR MCS (``docs/phy.md``, "Rate models")."""

import numpy as np

__all__ = ["shannon_rate", "mcs_rate"]


def shannon_rate(snr, subcarrier_spacing_hz):
    r"""Shannon rate ``df log2(1 + snr)`` per subcarrier.

    Parameters
    ----------
    snr : array_like, float, any shape
        Linear SNR, >= 0.
    subcarrier_spacing_hz : float
        Subcarrier spacing df in Hz, > 0.

    Output
    ------
    rate : array, float64, shape of ``snr``
        bit/s.

    Example
    -------
    >>> float(shannon_rate(1.0, 30e3))
    30000.0
    """
    if not subcarrier_spacing_hz > 0:
        raise ValueError(f"subcarrier_spacing_hz must be > 0, got {subcarrier_spacing_hz!r}")
    snr = np.asarray(snr, dtype=np.float64)
    return subcarrier_spacing_hz * np.log2(1.0 + np.maximum(snr, 0.0))


def mcs_rate(snr, subcarrier_spacing_hz, bler_target=0.1, table=1):
    """5G NR MCS planning rate (filled in next)."""
    raise NotImplementedError
