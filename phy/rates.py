"""Planning rates per subcarrier: Shannon and 5G NR MCS (``docs/phy.md``, "Rate models")."""

import numpy as np

from ._mcs import DEFAULT_CODE_BLOCK_SIZE, mcs_table, select_mcs

__all__ = ["shannon_rate", "mcs_rate"]

# Elements per block of mcs_rate.
_BLOCK = 1 << 16


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


def mcs_rate(snr, subcarrier_spacing_hz, bler_target=0.1, table=1,
             code_block_size=DEFAULT_CODE_BLOCK_SIZE):
    r"""5G NR MCS planning rate per subcarrier.

    ``df x SE(m) x (1 - BLER_m(snr))`` with m the highest TS 38.214 PDSCH MCS whose AWGN BLER
    (Sionna's PHYAbstraction tables, :func:`dmoe.phy.bler_awgn`) at ``snr`` is at most
    ``bler_target``; 0 where no MCS meets the target.

    Parameters
    ----------
    snr : array_like, float, any shape
        Linear SNR, >= 0.
    subcarrier_spacing_hz : float
        Subcarrier spacing df in Hz, > 0.
    bler_target : float
        In (0, 1).
    table : int
        MCS table, 1 (up to 64-QAM) or 2 (up to 256-QAM).
    code_block_size : int
        Code block size in bits of the BLER look-up.

    Output
    ------
    rate : array, float64, shape of ``snr``
        bit/s.

    Example
    -------
    >>> r = mcs_rate([0.01, 1000.0], 30e3)
    >>> float(r[0]), round(float(r[1]) / 30e3, 2)   # none below the lowest MCS; 64-QAM 948/1024
    (0.0, 5.55)
    """
    if not subcarrier_spacing_hz > 0:
        raise ValueError(f"subcarrier_spacing_hz must be > 0, got {subcarrier_spacing_hz!r}")
    snr = np.asarray(snr, dtype=np.float64)
    shape = snr.shape
    snr = snr.reshape(-1)
    efficiency = np.append(mcs_table(table).spectral_efficiency, 0.0)        # mcs -1 -> 0
    rate = np.empty(snr.shape)
    # The same float64 operations as 10 log10(max(snr, 0)) and df x SE x (1 - BLER), in place
    # and block by block (the temporaries of a block stay in the CPU caches).
    for start in range(0, len(snr), _BLOCK):
        block = slice(start, start + _BLOCK)
        snr_db = np.maximum(snr[block], 0.0)
        with np.errstate(divide="ignore"):
            np.log10(snr_db, out=snr_db)
        snr_db *= 10.0
        mcs, bler = select_mcs(snr_db, table=table, bler_target=bler_target,
                               code_block_size=code_block_size)
        out = rate[block]
        np.multiply(subcarrier_spacing_hz, np.take(efficiency, mcs), out=out)
        out *= np.subtract(1.0, bler, out=bler)
    rate = rate.reshape(shape)
    return rate if rate.ndim else rate[()]
