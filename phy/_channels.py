"""Model-specific samplers of per-subcarrier channels (``docs/phy.md``, "Channel models").

Every sampler returns the true channel ``h`` [batch, time, links, subcarriers], complex64,
including the path-loss amplitude, at ``num_times`` instants ``round_interval_s`` apart.
"""

import numpy as np
import scipy.special

from .pathloss import pathloss_db

__all__ = ["sample_channel"]


def _linklevel_pathloss_gain(cfg, distances, los):
    """Power gain 10**(-PL/10) of the UMi street-canyon formula, [batch, links]."""
    if not cfg.pathloss:
        return np.ones_like(distances)
    return 10.0 ** (-pathloss_db(distances, cfg.carrier_frequency_hz, los, "umi") / 10.0)


def round_correlation(cfg):
    """Jakes/Clarke correlation J0(2 pi f_d T) between consecutive rounds."""
    return float(scipy.special.j0(2.0 * np.pi * cfg.max_doppler_hz * cfg.round_interval_s))


def _rayleigh(cfg, distances, num_times, seed, rng):
    batch, links = distances.shape
    shape = (batch, num_times, links, cfg.num_subcarriers)
    rho = round_correlation(cfg)
    w = rng.standard_normal(shape + (2,))
    w = (w[..., 0] + 1j * w[..., 1]) / np.sqrt(2.0)
    # Gauss-Markov (AR(1)) process: stationary CN(0, 1) with lag-one correlation rho.
    h = np.empty(shape, dtype=np.complex128)
    h[:, 0] = w[:, 0]
    innovation = np.sqrt(max(1.0 - rho ** 2, 0.0))
    for t in range(1, num_times):
        h[:, t] = rho * h[:, t - 1] + innovation * w[:, t]
    gain = _linklevel_pathloss_gain(cfg, distances, los=False)
    return (h * np.sqrt(gain)[:, None, :, None]).astype(np.complex64)


_SAMPLERS = {"rayleigh": _rayleigh}


def sample_channel(cfg, distances, num_times, seed, rng):
    """True channel of every link.

    Parameters
    ----------
    cfg : ChannelConfig
    distances : [batch, links], float64
        Link distances in m.
    num_times : int
        Number of instants ``cfg.round_interval_s`` apart.
    seed : int
        Seed for Sionna's generators (``sionna.phy.config.seed``).
    rng : numpy.random.Generator
        Generator for numpy draws.

    Output
    ------
    h : [batch, num_times, links, num_subcarriers], complex64
    """
    if cfg.model not in _SAMPLERS:
        raise NotImplementedError(f"model {cfg.model!r} is not implemented yet")
    return _SAMPLERS[cfg.model](cfg, distances, num_times, seed, rng)
