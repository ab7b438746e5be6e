"""Model-specific samplers of per-subcarrier channels (``docs/phy.md``, "Channel models").

Every sampler returns the true channel ``h`` [batch, time, links, subcarriers], complex64
(``precision="single"``) or complex128 (``"double"``), including the path-loss amplitude, at
``num_times`` instants ``round_interval_s`` apart. In double precision the Sionna blocks are
built with ``precision="double"`` (their internal tensors are float64/complex128) and the numpy
Rayleigh sampler draws float64 normals.
"""

import functools

import numpy as np
import scipy.special
import tensorflow as tf
from sionna.phy import config as sionna_config
from sionna.phy.channel import cir_to_ofdm_channel, subcarrier_frequencies
from sionna.phy.channel.tr38901 import CDL, RMa, TDL, UMa, UMi, Antenna
from sionna.phy.channel.utils import random_ut_properties, set_3gpp_scenario_parameters

from dmoe.common import compile_function, numpy_dtypes

from .pathloss import pathloss_db, SCENARIO_HEIGHTS_M

__all__ = ["sample_channel"]

_TF_REAL = {"single": tf.float32, "double": tf.float64}


def _linklevel_amplitude(cfg, distances, los, precision="single"):
    """Amplitude gain 10**(-PL/20) of the UMi street-canyon formula, [batch, links], float32
    (single) or float64 (double)."""
    real = numpy_dtypes(precision)[0]
    if not cfg.pathloss:
        return np.ones(distances.shape, real)
    return (10.0 ** (-pathloss_db(distances, cfg.carrier_frequency_hz, los, "umi") / 20.0)
            ).astype(real)


def round_correlation(cfg):
    """Jakes/Clarke correlation J0(2 pi f_d T) between consecutive rounds."""
    return float(scipy.special.j0(2.0 * np.pi * cfg.max_doppler_hz * cfg.round_interval_s))


def _rayleigh(cfg, distances, num_times, seed, rng, execution, precision):
    # numpy only: ``execution`` does not apply.
    real, cplx = numpy_dtypes(precision)
    batch, links = distances.shape
    shape = (batch, num_times, links, cfg.num_subcarriers)
    rho = real(round_correlation(cfg))
    # Pairs of real normals viewed as complex: CN(0, 1) after scaling by 1/sqrt(2).
    h = rng.standard_normal(shape + (2,), dtype=real).view(cplx)[..., 0]
    h *= real(np.sqrt(0.5))
    # Gauss-Markov (AR(1)) process: stationary CN(0, 1) with lag-one correlation rho.
    innovation = real(np.sqrt(max(1.0 - float(rho) ** 2, 0.0)))
    for t in range(1, num_times):
        h[:, t] *= innovation
        h[:, t] += rho * h[:, t - 1]
    h *= _linklevel_amplitude(cfg, distances, los=False, precision=precision)[:, None, :, None]
    return h


# TR 38.901 Tables 7.7.2-1..5: TDL/CDL A-C are NLoS profiles, D-E LoS profiles; the
# link-level path loss uses the matching LoS state.
_LOS_PROFILES = ("D", "E")


@functools.lru_cache(maxsize=32)
def _linklevel_model(model, profile, delay_spread_s, carrier_frequency_hz, speed_mps,
                     precision="single"):
    """Sionna TDL/CDL block (cached: building one is costly, calling it is not)."""
    if model == "tdl":
        return TDL(profile, delay_spread_s, carrier_frequency_hz,
                   min_speed=speed_mps, max_speed=speed_mps, precision=precision)
    # Single-element omnidirectional arrays, so that the CDL has unit mean power like TDL.
    ut = Antenna("single", "V", "omni", carrier_frequency_hz, precision=precision)
    bs = Antenna("single", "V", "omni", carrier_frequency_hz, precision=precision)
    return CDL(profile, delay_spread_s, carrier_frequency_hz, ut, bs, "downlink",
               min_speed=speed_mps, max_speed=speed_mps, precision=precision)


def _frequencies(cfg, precision="single"):
    """Subcarrier frequencies [N], tf.float32 (single) or tf.float64 (double)."""
    return subcarrier_frequencies(cfg.num_subcarriers, cfg.subcarrier_spacing_hz,
                                  precision=precision)


def _to_links(h_f, batch, links):
    """[batch*links, 1, 1, 1, 1, time, N] -> [batch, time, links, N]."""
    h_f = tf.reshape(h_f, [batch, links, h_f.shape[-2], h_f.shape[-1]])
    return tf.transpose(h_f, [0, 2, 1, 3])


def _tdl_cdl_response(channel, batch_size, num_times, sampling_frequency, frequencies):
    """Sionna TDL/CDL -> OFDM channel, [batch_size, 1, 1, 1, 1, num_times, N], complex64 or
    complex128 (the channel block's precision)."""
    a, tau = channel(batch_size, num_times, sampling_frequency)
    return cir_to_ofdm_channel(frequencies, a, tau)


def _system_level_response(channel, distances, azimuth, h_bs, h_ut, indoor_probability, speed,
                           los, num_times, sampling_frequency, frequencies):
    """Sionna UMi/UMa/RMa for nodes at ``distances`` [batch, links] (m) and ``azimuth`` (rad),
    both float32 (single) or float64 (double, the channel block's precision), around one BS
    at (0, 0, h_bs) -> [batch, num_ut, 1, 1, 1, num_times, N], complex64 or complex128.

    The topology is built here, so that graph/XLA modes compile it with the channel.
    """
    batch, links = distances.shape
    real = distances.dtype
    ut_loc = tf.stack([distances * tf.cos(azimuth), distances * tf.sin(azimuth),
                       tf.fill(tf.shape(distances), tf.constant(h_ut, real))], axis=-1)
    bs_loc = tf.tile(tf.constant([[[0.0, 0.0, h_bs]]], real), [batch, 1, 1])
    bs_orientation = tf.zeros([batch, 1, 3], real)
    _, ut_velocity, in_state = random_ut_properties(batch, links, indoor_probability, speed,
                                                    speed, precision=channel.precision)
    # Upright arrays (zero orientation) at both ends: with single-polarised elements a random
    # UT orientation would add a polarisation-mismatch loss (about 2-4 dB on average) that the
    # TR 38.901 path-loss formulas do not contain.
    ut_orientation = tf.zeros([batch, links, 3], real)
    channel.set_topology(ut_loc, bs_loc, ut_orientation, bs_orientation, ut_velocity,
                         in_state, los=los)
    a, tau = channel(num_times, sampling_frequency)
    return cir_to_ofdm_channel(frequencies, a, tau)


_COMPILED = {}


def _executor(function, channel, execution, precision):
    """``function`` run eagerly, as a ``tf.function`` or XLA-compiled (cached per channel,
    mode and precision)."""
    if execution == "eager":
        return function
    key = (function, channel, execution, precision)
    if key not in _COMPILED:
        _COMPILED[key] = compile_function(function, execution)
    return _COMPILED[key]


def _tdl_cdl(cfg, distances, num_times, seed, rng, execution, precision):
    batch, links = distances.shape
    channel = _linklevel_model(cfg.model, cfg.profile, float(cfg.delay_spread_s),
                               float(cfg.carrier_frequency_hz), float(cfg.speed_mps), precision)
    sionna_config.seed = seed
    run = _executor(_tdl_cdl_response, channel, execution, precision)
    h_f = run(channel, batch * links, num_times, 1.0 / cfg.round_interval_s,
              _frequencies(cfg, precision))
    h = _to_links(h_f, batch, links).numpy()
    h *= _linklevel_amplitude(cfg, distances, los=cfg.profile in _LOS_PROFILES,
                              precision=precision)[:, None, :, None]
    return h


_SYSTEM_LEVEL = {"umi": UMi, "uma": UMa, "rma": RMa}


@functools.lru_cache(maxsize=32)
def _system_level_model(model, carrier_frequency_hz, pathloss, precision="single"):
    """Sionna UMi/UMa/RMa block with single-element omnidirectional arrays."""
    ut = Antenna("single", "V", "omni", carrier_frequency_hz, precision=precision)
    bs = Antenna("single", "V", "omni", carrier_frequency_hz, precision=precision)
    kwargs = dict(ut_array=ut, bs_array=bs, direction="downlink",
                  enable_pathloss=pathloss, enable_shadow_fading=pathloss, precision=precision)
    if model in ("umi", "uma"):
        kwargs["o2i_model"] = "low"
    return _SYSTEM_LEVEL[model](carrier_frequency_hz, **kwargs)


@functools.lru_cache(maxsize=None)
def _default_indoor_probability(model):
    """Sionna's scenario default probability that a UT is indoor."""
    return float(set_3gpp_scenario_parameters(model)[5])


def _system_level(cfg, distances, num_times, seed, rng, execution, precision):
    batch, links = distances.shape
    channel = _system_level_model(cfg.model, float(cfg.carrier_frequency_hz), cfg.pathloss,
                                  precision)
    h_bs, h_ut = SCENARIO_HEIGHTS_M[cfg.model]
    indoor_probability = cfg.indoor_probability
    if indoor_probability is None:
        indoor_probability = _default_indoor_probability(cfg.model)
    sionna_config.seed = seed
    real = numpy_dtypes(precision)[0]
    azimuth = rng.uniform(0.0, 2.0 * np.pi, size=(batch, links)).astype(real)
    run = _executor(_system_level_response, channel, execution, precision)
    h_f = run(channel, tf.constant(distances, _TF_REAL[precision]), tf.constant(azimuth), h_bs,
              h_ut, float(indoor_probability), float(cfg.speed_mps), cfg.los, num_times,
              1.0 / cfg.round_interval_s, _frequencies(cfg, precision))
    return _system_level_to_links(h_f).numpy()


def _system_level_to_links(h_f):
    """Downlink [batch, num_ut, 1, 1, 1, time, N] -> [batch, time, links, N]."""
    return tf.transpose(h_f[:, :, 0, 0, 0], [0, 2, 1, 3])


_SAMPLERS = {"rayleigh": _rayleigh, "tdl": _tdl_cdl, "cdl": _tdl_cdl,
             "umi": _system_level, "uma": _system_level, "rma": _system_level}


def sample_channel(cfg, distances, num_times, seed, rng, execution="eager", precision="single"):
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
    execution : str
        ``"eager"``, ``"graph"`` (``tf.function``) or ``"xla"`` (``jit_compile=True``) for
        the Sionna models.
    precision : str
        ``"single"`` or ``"double"``: precision of the Sionna blocks and numpy draws.

    Output
    ------
    h : [batch, num_times, links, num_subcarriers], complex64 (single) or complex128 (double)
    """
    return _SAMPLERS[cfg.model](cfg, distances, num_times, seed, rng, execution, precision)
