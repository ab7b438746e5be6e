"""Channel configuration: one frozen, validated record of every channel and power setting.

See ``docs/phy.md`` ("Channel models", "Power convention") for the meaning of every field.
"""

import math
from dataclasses import dataclass, field, fields
from typing import Optional

from .channel_models import CHANNEL_MODELS, channel_models

__all__ = ["ChannelConfig", "CHANNEL_MODELS", "CSI_VIEWS", "PROFILES", "SUBCARRIER_SPACINGS_HZ",
           "draw_fields", "CARRIER_FREQUENCY_RANGE_HZ"]

#: Carrier frequencies TR 38.901's channel and path-loss models are specified for.
CARRIER_FREQUENCY_RANGE_HZ = (0.5e9, 100e9)
PROFILES = ("A", "B", "C", "D", "E")
CSI_VIEWS = ("perfect", "ls", "outdated")
SUBCARRIER_SPACINGS_HZ = (15e3, 30e3, 60e3, 120e3)


def _setting(default, doc, draw=True, choices=None):
    """A field of :class:`ChannelConfig` with what a study file shows of it.

    ``doc`` is its one-line description; ``draw`` says whether it shapes the channel draw
    (True), enters only after it (False: powers, noise, CSI quality, so a sweep over it keeps
    the same channels) or a function of the config that decides; ``choices`` lists its values.
    """
    return field(default=default, metadata={"doc": doc, "draw": draw, "choices": choices})


def draw_fields(config):
    """Names of the fields of ``config`` that shape its channel draw.

    Parameters
    ----------
    config : ChannelConfig

    Output
    ------
    names : tuple of str
        Fields whose value changes the drawn geometry or fading for a given seed; the others
        (transmit power, noise, CSI quality) change the SNRs or the CSI estimate only.
    """
    names = []
    for item in fields(config):
        draw = item.metadata.get("draw", True)
        if draw(config) if callable(draw) else draw:
            names.append(item.name)
    return tuple(names)


def _require(condition, name, expected, value):
    if not condition:
        raise ValueError(f"ChannelConfig.{name} must be {expected}, got {value!r}")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class ChannelConfig:
    r"""Channel, power and CSI settings of the coordinator <-> expert-node links.

    Parameters
    ----------
    model : str
        ``"rayleigh"`` | ``"tdl"`` | ``"cdl"`` | ``"umi"`` | ``"uma"`` | ``"rma"``.
    profile : str
        TDL/CDL power-delay profile ``"A"`` .. ``"E"`` (ignored by the other models).
    num_subcarriers : int
        Number of subcarriers N, >= 1.
    subcarrier_spacing_hz : float
        Subcarrier spacing df in Hz: 15e3, 30e3, 60e3 or 120e3 (5G NR numerologies 0-3).
    carrier_frequency_hz : float
        Carrier frequency in Hz, within 0.5-100 GHz (the range TR 38.901 specifies its channel
        and path-loss models for; :data:`CARRIER_FREQUENCY_RANGE_HZ`).
    num_rounds : int
        Protocol rounds sampled per batch example, >= 1.
    round_interval_s : float
        Time between consecutive protocol rounds in s, > 0; with ``speed_mps`` it sets how
        strongly consecutive rounds are correlated (Doppler).
    delay_spread_s : float
        RMS delay spread in s for TDL/CDL, > 0.
    speed_mps : float
        Node speed in m/s, >= 0 (maximum Doppler ``speed_mps * carrier_frequency_hz / c``).
    tx_power_dbm : float
        Total transmit power of one transmitter in dBm (any finite value, e.g. -10 for
        0.1 mW), spread uniformly over all subcarriers.
    noise_figure_db : float
        Receiver noise figure in dB, >= 0.
    noise_psd_dbm_hz : float
        Thermal noise power spectral density in dBm/Hz.
    min_distance_m, max_distance_m : float
        Range of the random drop of node distances in m, 0 < min <= max.
    distances_m : tuple of float or None
        One distance per link in m (> 0); overrides the random drop.
    pathloss : bool
        Apply path loss. For rayleigh/tdl/cdl this is the distance-based TR 38.901 UMi
        street-canyon formula; for umi/uma/rma it switches the scenario's own path loss and
        shadow fading.
    csi : str
        Scheduler's view of the channel: ``"perfect"`` | ``"ls"`` | ``"outdated"``.
    csi_pilot_snr_gain_db : float
        For ``csi="ls"``: pilot SNR relative to the data SNR in dB (LS error variance is
        ``noise_power_w / subcarrier_power_w / 10**(gain/10)``).
    csi_delay_rounds : int
        For ``csi="outdated"``: age of the CSI in rounds, >= 0.
    los : bool or None
        umi/uma/rma only: None draws LoS/NLoS from the TR 38.901 LoS probability; True/False
        forces every outdoor node into LoS/NLoS (Sionna's ``set_topology(los=...)``).
    indoor_probability : float or None
        umi/uma/rma only: probability that a node is indoor (O2I penetration loss); None
        takes Sionna's scenario default (0.8 for umi/uma, 0.5 for rma).

    Example
    -------
    >>> cfg = ChannelConfig(model="tdl", profile="C", num_subcarriers=128)
    >>> cfg.subcarrier_power_w   # 23 dBm over 128 subcarriers
    0.0015...
    """

    model: str = _setting(
        "rayleigh", "Channel model: i.i.d. Rayleigh, TDL, CDL (link level), UMi / UMa / RMa "
        "(TR 38.901 system level), or a name registered with "
        "`dmoe.phy.register_channel_model`.")
    profile: str = _setting(
        "A", "TDL / CDL power-delay profile (ignored by the other models).", choices=PROFILES)
    num_subcarriers: int = _setting(64, "Number of subcarriers N, >= 1.")
    subcarrier_spacing_hz: float = _setting(
        30e3, "Subcarrier spacing in Hz (5G NR numerology 0-3).", choices=SUBCARRIER_SPACINGS_HZ)
    carrier_frequency_hz: float = _setting(
        3.5e9, "Carrier frequency in Hz, within TR 38.901's 0.5-100 GHz.")
    num_rounds: int = _setting(1, "Protocol rounds sampled per batch example, >= 1.")
    round_interval_s: float = _setting(
        1e-3, "Time between two protocol rounds (MoE layers) in s, > 0; with `speed_mps` it "
        "sets how much the channel changes from layer to layer.")
    delay_spread_s: float = _setting(100e-9, "RMS delay spread in s (TDL/CDL), > 0.")
    speed_mps: float = _setting(0.0, "Node speed in m/s (Doppler), >= 0.")
    tx_power_dbm: float = _setting(
        23.0, "Total transmit power of one transmitter in dBm (any finite value), spread "
        "uniformly over all subcarriers.", draw=False)
    noise_figure_db: float = _setting(7.0, "Receiver noise figure in dB, >= 0.", draw=False)
    noise_psd_dbm_hz: float = _setting(-174.0, "Thermal noise PSD in dBm/Hz.", draw=False)
    min_distance_m: float = _setting(
        10.0, "Smallest node distance of the random drop in m, > 0.")
    max_distance_m: float = _setting(
        100.0, "Largest node distance of the random drop in m, >= `min_distance_m`.")
    distances_m: Optional[tuple[float, ...]] = _setting(
        None, "One distance per expert node in m (overrides the random drop); length K.")
    pathloss: bool = _setting(
        True, "Apply TR 38.901 path loss (and shadowing for UMi/UMa/RMa).")
    csi: str = _setting(
        "perfect", "What the scheduler sees: perfect CSI, an LS pilot estimate, or CSI "
        "`csi_delay_rounds` rounds old.", draw=False, choices=CSI_VIEWS)
    csi_pilot_snr_gain_db: float = _setting(
        0.0, "LS estimate: pilot SNR relative to the data SNR in dB.", draw=False)
    # Outdated CSI is drawn as extra earlier rounds of the same channel: then its age does
    # shape the draw.
    csi_delay_rounds: int = _setting(
        1, "Outdated CSI: age in rounds, >= 0.", draw=lambda cfg: cfg.csi == "outdated")
    los: Optional[bool] = _setting(
        None, "UMi/UMa/RMa: force every outdoor node into LoS (true) or NLoS (false); unset "
        "draws it from the TR 38.901 LoS probability.")
    indoor_probability: Optional[float] = _setting(
        None, "UMi/UMa/RMa: probability that a node is indoor (O2I penetration loss); unset "
        "takes the scenario's default (0.8 for UMi/UMa, 0.5 for RMa).")

    def __post_init__(self):
        _require(isinstance(self.model, str) and self.model in channel_models(), "model",
                 f"one of {channel_models()}", self.model)
        _require(self.profile in PROFILES, "profile", f"one of {PROFILES}", self.profile)
        _require(_is_int(self.num_subcarriers) and self.num_subcarriers >= 1,
                 "num_subcarriers", "an int >= 1", self.num_subcarriers)
        _require(_is_real(self.subcarrier_spacing_hz)
                 and float(self.subcarrier_spacing_hz) in SUBCARRIER_SPACINGS_HZ,
                 "subcarrier_spacing_hz", f"one of {SUBCARRIER_SPACINGS_HZ}",
                 self.subcarrier_spacing_hz)
        low, high = CARRIER_FREQUENCY_RANGE_HZ
        _require(_is_real(self.carrier_frequency_hz) and low <= self.carrier_frequency_hz <= high,
                 "carrier_frequency_hz", "within 0.5-100 GHz (5e8 to 1e11 Hz), the range TR "
                 "38.901 specifies its channel and path-loss models for",
                 self.carrier_frequency_hz)
        _require(_is_int(self.num_rounds) and self.num_rounds >= 1,
                 "num_rounds", "an int >= 1", self.num_rounds)
        _require(_is_real(self.round_interval_s) and self.round_interval_s > 0,
                 "round_interval_s", "a positive time in s", self.round_interval_s)
        _require(_is_real(self.delay_spread_s) and self.delay_spread_s > 0,
                 "delay_spread_s", "a positive time in s", self.delay_spread_s)
        _require(_is_real(self.speed_mps) and self.speed_mps >= 0,
                 "speed_mps", "a speed >= 0 in m/s", self.speed_mps)
        _require(_is_real(self.tx_power_dbm), "tx_power_dbm", "a finite power in dBm",
                 self.tx_power_dbm)
        _require(_is_real(self.noise_figure_db) and self.noise_figure_db >= 0,
                 "noise_figure_db", "a noise figure >= 0 dB", self.noise_figure_db)
        _require(_is_real(self.noise_psd_dbm_hz), "noise_psd_dbm_hz", "a finite PSD in dBm/Hz",
                 self.noise_psd_dbm_hz)
        _require(_is_real(self.min_distance_m) and self.min_distance_m > 0,
                 "min_distance_m", "a positive distance in m", self.min_distance_m)
        _require(_is_real(self.max_distance_m) and self.max_distance_m >= self.min_distance_m,
                 "max_distance_m", f"a distance >= min_distance_m={self.min_distance_m}",
                 self.max_distance_m)
        if self.distances_m is not None:
            try:
                distances = tuple(float(d) for d in self.distances_m)
            except TypeError:
                raise ValueError("ChannelConfig.distances_m must be a sequence of positive "
                                 f"distances in m or None, got {self.distances_m!r}") from None
            _require(len(distances) >= 1 and all(math.isfinite(d) and d > 0 for d in distances),
                     "distances_m", "a non-empty sequence of positive distances in m or None",
                     self.distances_m)
            object.__setattr__(self, "distances_m", distances)
        _require(isinstance(self.pathloss, bool), "pathloss", "a bool", self.pathloss)
        _require(self.csi in CSI_VIEWS, "csi", f"one of {CSI_VIEWS}", self.csi)
        _require(_is_real(self.csi_pilot_snr_gain_db), "csi_pilot_snr_gain_db",
                 "a finite gain in dB", self.csi_pilot_snr_gain_db)
        _require(_is_int(self.csi_delay_rounds) and self.csi_delay_rounds >= 0,
                 "csi_delay_rounds", "an int >= 0", self.csi_delay_rounds)
        _require(self.los is None or isinstance(self.los, bool), "los", "None or a bool",
                 self.los)
        _require(self.indoor_probability is None
                 or (_is_real(self.indoor_probability) and 0 <= self.indoor_probability <= 1),
                 "indoor_probability", "None or a probability in [0, 1]",
                 self.indoor_probability)
        # Any finite dBm value is a power, but one that underflows to 0 W carries no bits.
        _require(self.subcarrier_power_w > 0, "tx_power_dbm",
                 "a power whose linear value per subcarrier is > 0 W", self.tx_power_dbm)

    @property
    def subcarrier_power_w(self):
        """Transmit power per subcarrier P_sc in W (total power spread over all subcarriers)."""
        return 10.0 ** ((self.tx_power_dbm - 30.0) / 10.0) / self.num_subcarriers

    @property
    def noise_power_w(self):
        """Noise power per subcarrier N0*df in W (N0 = noise PSD + noise figure)."""
        n0_dbm_hz = self.noise_psd_dbm_hz + self.noise_figure_db
        return 10.0 ** ((n0_dbm_hz - 30.0) / 10.0) * self.subcarrier_spacing_hz

    @property
    def max_doppler_hz(self):
        """Maximum Doppler shift f_d = v f_c / c in Hz."""
        return self.speed_mps * self.carrier_frequency_hz / 299_792_458.0
