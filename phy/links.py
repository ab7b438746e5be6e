"""Sampled coordinator <-> expert-node links: true channels, SNRs and the scheduler's CSI view.

See ``docs/phy.md`` ("Channel models", "Power convention", "CSI views").
"""

from dataclasses import dataclass
import numbers

import numpy as np

from dmoe.common import check_execution, check_precision

from .config import ChannelConfig
from . import _channels
from . import rates as _rates

__all__ = ["Links", "sample_links"]

_DIRECTIONS = ("dispatch", "return")
_VIEWS = ("csi", "true")
_RATE_MODELS = ("shannon", "mcs")
_COMPLEX_PRECISION = {np.dtype(np.complex64): "single", np.dtype(np.complex128): "double"}


def _snr(cfg, h):
    """Linear SNR P_sc |h|^2 / (N0 df), same shape as ``h``: float32 for complex64 ``h``,
    float64 for complex128."""
    # |h|^2 in float32 is exact enough (relative error ~1e-7) and halves the memory traffic.
    gain = np.square(h.real) + np.square(h.imag)
    gain *= gain.dtype.type(cfg.subcarrier_power_w / cfg.noise_power_w)
    return gain


def _ls_estimate(cfg, h, rng):
    """LS estimate h + e, e ~ CN(0, N0 df / (P_sc g_pilot)) i.i.d. per resource element,
    drawn in the precision of ``h`` (complex64 or complex128)."""
    pilot_gain = 10.0 ** (cfg.csi_pilot_snr_gain_db / 10.0)
    error_var = cfg.noise_power_w / (cfg.subcarrier_power_w * pilot_gain)
    real = h.real.dtype.type
    error = rng.standard_normal(h.shape + (2,), dtype=real).view(h.dtype)[..., 0]
    error *= real(np.sqrt(error_var / 2.0))
    error += h
    return error


def _channel_dtype(h):
    """complex128 for complex128/float64 input, complex64 for other numeric input."""
    if h.dtype in (np.complex128, np.float64):
        return np.dtype(np.complex128)
    if h.dtype.kind in "biufc" and h.dtype.itemsize <= 8:
        return np.dtype(np.complex64)
    raise ValueError(f"channel arrays must be complex64 or complex128, got dtype {h.dtype}")


def _check_channel(name, h, expected_shape=None, dtype=None):
    """Validated view of ``h`` as ``dtype`` (default: complex64 or complex128, kept from
    ``h``; a copy when the dtype differs)."""
    h = np.asarray(h)
    if h.ndim != 4:
        raise ValueError(f"{name} must be complex [batch, rounds, links, subcarriers], "
                         f"got shape {h.shape}")
    if expected_shape is not None and h.shape != expected_shape:
        raise ValueError(f"{name} must have shape {expected_shape}, got {h.shape}")
    if dtype is None:
        dtype = _channel_dtype(h)
    # A view, so that marking it read-only leaves the caller's array writable.
    return h.astype(dtype, copy=False).view()


@dataclass(frozen=True, eq=False)
class Links:
    r"""Channels and SNRs of the dispatch (coordinator -> node) and return links.

    Built by :func:`sample_links` or :meth:`Links.from_channel`; all arrays are read-only
    numpy arrays (equal ones, e.g. the two directions of a reciprocal channel, are shared).
    The arrays are in one precision (:attr:`precision`): complex64/float32 (``"single"``) or
    complex128/float64 (``"double"``); rates are float64 in both.

    Parameters
    ----------
    config : ChannelConfig
        Configuration the links were drawn with.
    h_dispatch, h_return : [batch, rounds, links, subcarriers], complex64 or complex128
        True channel incl. path loss / shadowing amplitude, so that
        ``|h|**2 * config.subcarrier_power_w / config.noise_power_w == snr``.
    snr_dispatch, snr_return : [batch, rounds, links, subcarriers], float32 or float64
        True linear SNR per subcarrier.
    csi_snr_dispatch, csi_snr_return : [batch, rounds, links, subcarriers], float32 or float64
        Linear SNR the scheduler sees (``config.csi``): the true one for ``"perfect"``,
        from an LS estimate for ``"ls"``, ``csi_delay_rounds`` rounds old for ``"outdated"``.
    distances_m : [batch, links], float32 or float64
        Coordinator-node distance of every link (2D ground distance for umi/uma/rma).

    Example
    -------
    >>> links = sample_links(ChannelConfig(num_rounds=2), batch_size=4, num_links=3, seed=0)
    >>> links.snr_dispatch.shape
    (4, 2, 3, 64)
    >>> links.rate(model="shannon").shape
    (4, 2, 3, 64)
    """

    config: ChannelConfig
    h_dispatch: np.ndarray
    h_return: np.ndarray
    snr_dispatch: np.ndarray
    snr_return: np.ndarray
    csi_snr_dispatch: np.ndarray
    csi_snr_return: np.ndarray
    distances_m: np.ndarray

    @property
    def shape(self):
        """``(batch, rounds, links, subcarriers)``."""
        return self.snr_dispatch.shape

    @property
    def precision(self):
        """``"single"`` (complex64/float32 arrays) or ``"double"`` (complex128/float64)."""
        return _COMPLEX_PRECISION[self.h_dispatch.dtype]

    def snr(self, direction="dispatch", view="csi"):
        """Linear SNR [batch, rounds, links, subcarriers], float32 (single) or float64
        (double), of one direction and view.

        Parameters
        ----------
        direction : str
            ``"dispatch"`` or ``"return"``.
        view : str
            ``"csi"`` (what the scheduler sees) or ``"true"``.
        """
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {_DIRECTIONS}, got {direction!r}")
        if view not in _VIEWS:
            raise ValueError(f"view must be one of {_VIEWS}, got {view!r}")
        prefix = "csi_snr_" if view == "csi" else "snr_"
        return getattr(self, prefix + direction)

    def rate(self, model="shannon", direction="dispatch", view="csi", bler_target=0.1,
             mcs_table=1):
        r"""Planning rate per subcarrier (``docs/phy.md``, "Rate models").

        Parameters
        ----------
        model : str
            ``"shannon"``: ``df log2(1 + snr)``; ``"mcs"``: ``df`` x spectral efficiency of
            the highest 5G NR MCS with BLER <= ``bler_target`` x (1 - BLER).
        direction : str
            ``"dispatch"`` or ``"return"``.
        view : str
            ``"csi"`` (scheduler's view) or ``"true"``.
        bler_target : float
            BLER target of the ``"mcs"`` model, in (0, 1).
        mcs_table : int
            TS 38.214 PDSCH MCS table (1 or 2) of the ``"mcs"`` model.

        Output
        ------
        rate : [batch, rounds, links, subcarriers], float64
            bit/s on each subcarrier.
        """
        if model not in _RATE_MODELS:
            raise ValueError(f"model must be one of {_RATE_MODELS}, got {model!r}")
        snr = self.snr(direction, view)
        df = self.config.subcarrier_spacing_hz
        if model == "shannon":
            return _rates.shannon_rate(snr, df)
        return _rates.mcs_rate(snr, df, bler_target=bler_target, table=mcs_table)

    @classmethod
    def from_channel(cls, config, h_dispatch, h_return=None, distances_m=None,
                     csi_h_dispatch=None, csi_h_return=None):
        r"""Build links from given channel arrays (e.g. AWGN: a constant ``h``).

        Parameters
        ----------
        config : ChannelConfig
            Supplies the power and noise (``subcarrier_power_w``, ``noise_power_w``).
        h_dispatch : [batch, rounds, links, subcarriers], complex
            True dispatch channel incl. path loss amplitude. Its dtype sets the precision of
            the links: complex128 (or float64) is kept as complex128 (``"double"``), other
            numeric dtypes become complex64 (``"single"``).
        h_return : same shape, complex, or None
            True return channel; None reuses ``h_dispatch`` (reciprocal channel). Cast to
            the dtype of ``h_dispatch``, like the other arrays.
        distances_m : [batch, links], float, or None
            Link distances; None stores NaN.
        csi_h_dispatch, csi_h_return : same shape, complex, or None
            Channel the scheduler sees; None means perfect CSI (the true channel).

        Output
        ------
        links : Links

        Example
        -------
        >>> cfg = ChannelConfig(num_subcarriers=4)
        >>> h = np.full((1, 1, 2, 4), 1e-4, dtype=np.complex64)   # AWGN, 80 dB path loss
        >>> Links.from_channel(cfg, h).snr_dispatch.shape
        (1, 1, 2, 4)
        """
        if not isinstance(config, ChannelConfig):
            raise TypeError(f"config must be a ChannelConfig, got {type(config).__name__}")
        if h_return is h_dispatch:
            h_return = None
        same_csi = csi_h_return is not None and csi_h_return is csi_h_dispatch
        h_dispatch = _check_channel("h_dispatch", h_dispatch)
        shape, dtype = h_dispatch.shape, h_dispatch.dtype
        real = h_dispatch.real.dtype
        if shape[-1] != config.num_subcarriers:
            raise ValueError(f"h_dispatch must have config.num_subcarriers="
                             f"{config.num_subcarriers} subcarriers, got shape {shape}")
        h_return = h_dispatch if h_return is None else _check_channel(
            "h_return", h_return, shape, dtype)
        csi_d = h_dispatch if csi_h_dispatch is None else _check_channel(
            "csi_h_dispatch", csi_h_dispatch, shape, dtype)
        if same_csi:
            csi_r = csi_d
        else:
            csi_r = h_return if csi_h_return is None else _check_channel(
                "csi_h_return", csi_h_return, shape, dtype)
        if distances_m is None:
            distances_m = np.full((shape[0], shape[2]), np.nan, dtype=real)
        distances_m = np.array(distances_m, dtype=real)
        if distances_m.shape != (shape[0], shape[2]):
            raise ValueError(f"distances_m must have shape [batch, links]={(shape[0], shape[2])}, "
                             f"got {distances_m.shape}")
        # Arrays are shared where they are equal (reciprocal channel, perfect CSI) and made
        # read-only, so that sharing is safe.
        snr_d = _snr(config, h_dispatch)
        snr_r = snr_d if h_return is h_dispatch else _snr(config, h_return)
        csi_snr_d = snr_d if csi_d is h_dispatch else _snr(config, csi_d)
        if csi_r is h_return:
            csi_snr_r = snr_r
        elif csi_r is csi_d:
            csi_snr_r = csi_snr_d
        else:
            csi_snr_r = _snr(config, csi_r)
        arrays = dict(h_dispatch=h_dispatch, h_return=h_return, snr_dispatch=snr_d,
                      snr_return=snr_r, csi_snr_dispatch=csi_snr_d, csi_snr_return=csi_snr_r,
                      distances_m=distances_m)
        for array in arrays.values():
            array.setflags(write=False)
        return cls(config=config, **arrays)


def _check_count(name, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def sample_links(config, batch_size, num_links, seed=0, execution="eager", precision="single"):
    r"""Draw the dispatch and return links of ``num_links`` expert nodes.

    The true channel is reciprocal (TDD): dispatch and return share one draw of the
    channel, ``h_return == h_dispatch``; the CSI views (LS estimation noise) are drawn
    independently per direction. Rounds are ``config.round_interval_s`` apart and
    correlated through the Doppler of ``config.speed_mps``.

    Parameters
    ----------
    config : ChannelConfig
        Channel model and settings.
    batch_size : int
        Monte-Carlo batch size, >= 1.
    num_links : int
        Number of expert nodes K, >= 1 (must equal ``len(config.distances_m)`` when given).
    seed : int
        Seed of every random draw (distances, fading, LS noise); same seed, same arrays.
    execution : str
        How the Sionna channel blocks run: ``"eager"``, ``"graph"`` (``tf.function``, traced
        once per shape) or ``"xla"`` (``tf.function(jit_compile=True)``). Ignored by
        ``rayleigh`` (numpy). Same seed, same arrays within one mode; graph agrees with eager
        to float rounding, XLA draws other realisations (Sionna's random stream differs).
    precision : str
        ``"single"`` (default): complex64 channels, float32 SNRs and distances; ``"double"``:
        complex128 / float64, with the Sionna channel blocks built with
        ``precision="double"`` (float64 inside) and the numpy draws (Rayleigh fading, LS
        noise) made in float64. Rates are float64 in both. The two precisions draw different
        realisations for the same seed (same distribution).

    Output
    ------
    links : Links
        Arrays of shape [batch_size, config.num_rounds, num_links, config.num_subcarriers],
        with ``links.precision == precision``.

    Example
    -------
    >>> cfg = ChannelConfig(model="umi", num_rounds=4)
    >>> links = sample_links(cfg, batch_size=8, num_links=6, seed=1)
    >>> links.snr_dispatch.shape
    (8, 4, 6, 64)
    """
    if not isinstance(config, ChannelConfig):
        raise TypeError(f"config must be a ChannelConfig, got {type(config).__name__}")
    batch_size = _check_count("batch_size", batch_size)
    num_links = _check_count("num_links", num_links)
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    check_execution(execution)
    check_precision(precision)
    if config.distances_m is not None and len(config.distances_m) != num_links:
        raise ValueError(f"num_links={num_links} must equal len(config.distances_m)="
                         f"{len(config.distances_m)}")

    rng = np.random.default_rng([int(seed), 0x6D6F65])
    if config.distances_m is not None:
        distances = np.broadcast_to(np.asarray(config.distances_m, dtype=np.float64),
                                    (batch_size, num_links)).copy()
    else:
        # Uniform drop over the annulus min <= d <= max around the coordinator.
        lo2, hi2 = config.min_distance_m ** 2, config.max_distance_m ** 2
        distances = np.sqrt(rng.uniform(lo2, hi2, size=(batch_size, num_links)))

    # Outdated CSI needs csi_delay_rounds samples before round 0.
    delay = config.csi_delay_rounds if config.csi == "outdated" else 0
    h_all = _channels.sample_channel(config, distances, config.num_rounds + delay,
                                     seed=int(seed), rng=rng, execution=execution,
                                     precision=precision)
    h = h_all[:, delay:]
    if config.csi == "perfect":
        csi_d = csi_r = None
    elif config.csi == "ls":
        csi_d = _ls_estimate(config, h, rng)
        csi_r = _ls_estimate(config, h, rng)
    else:
        csi_d = csi_r = h_all[:, :config.num_rounds]
    return Links.from_channel(config, h, h_return=h, distances_m=distances,
                              csi_h_dispatch=csi_d, csi_h_return=csi_r)
