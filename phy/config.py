"""Channel configuration: one frozen, validated record of every channel and power setting.

See ``docs/phy.md`` ("Channel models", "Power convention") for the meaning of every field.
"""

from dataclasses import dataclass
import math

__all__ = ["ChannelConfig", "CHANNEL_MODELS", "CSI_VIEWS", "PROFILES", "SUBCARRIER_SPACINGS_HZ"]

CHANNEL_MODELS = ("rayleigh", "tdl", "cdl", "umi", "uma", "rma")
PROFILES = ("A", "B", "C", "D", "E")
CSI_VIEWS = ("perfect", "ls", "outdated")
SUBCARRIER_SPACINGS_HZ = (15e3, 30e3, 60e3, 120e3)


def _require(condition, field, expected, value):
    if not condition:
        raise ValueError(f"ChannelConfig.{field} must be {expected}, got {value!r}")


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
        Carrier frequency in Hz, > 0 (TR 38.901 path loss is specified for 0.5-100 GHz).
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
        Total transmit power of one transmitter in dBm (>= 0), spread uniformly over all
        subcarriers.
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

    model: str = "rayleigh"
    profile: str = "A"
    num_subcarriers: int = 64
    subcarrier_spacing_hz: float = 30e3
    carrier_frequency_hz: float = 3.5e9
    num_rounds: int = 1
    round_interval_s: float = 1e-3
    delay_spread_s: float = 100e-9
    speed_mps: float = 0.0
    tx_power_dbm: float = 23.0
    noise_figure_db: float = 7.0
    noise_psd_dbm_hz: float = -174.0
    min_distance_m: float = 10.0
    max_distance_m: float = 100.0
    distances_m: tuple = None
    pathloss: bool = True
    csi: str = "perfect"
    csi_pilot_snr_gain_db: float = 0.0
    csi_delay_rounds: int = 1
    los: bool = None
    indoor_probability: float = None

    def __post_init__(self):
        _require(self.model in CHANNEL_MODELS, "model", f"one of {CHANNEL_MODELS}", self.model)
        _require(self.profile in PROFILES, "profile", f"one of {PROFILES}", self.profile)
        _require(_is_int(self.num_subcarriers) and self.num_subcarriers >= 1,
                 "num_subcarriers", "an int >= 1", self.num_subcarriers)
        _require(_is_real(self.subcarrier_spacing_hz)
                 and float(self.subcarrier_spacing_hz) in SUBCARRIER_SPACINGS_HZ,
                 "subcarrier_spacing_hz", f"one of {SUBCARRIER_SPACINGS_HZ}",
                 self.subcarrier_spacing_hz)
        _require(_is_real(self.carrier_frequency_hz) and self.carrier_frequency_hz > 0,
                 "carrier_frequency_hz", "a positive frequency in Hz", self.carrier_frequency_hz)
        _require(_is_int(self.num_rounds) and self.num_rounds >= 1,
                 "num_rounds", "an int >= 1", self.num_rounds)
        _require(_is_real(self.round_interval_s) and self.round_interval_s > 0,
                 "round_interval_s", "a positive time in s", self.round_interval_s)
        _require(_is_real(self.delay_spread_s) and self.delay_spread_s > 0,
                 "delay_spread_s", "a positive time in s", self.delay_spread_s)
        _require(_is_real(self.speed_mps) and self.speed_mps >= 0,
                 "speed_mps", "a speed >= 0 in m/s", self.speed_mps)
        # A negative dBm value is a legal power, but in this study (UE/BS transmitters) it is
        # almost always a sign slip, so it is rejected like a negative power in W would be.
        _require(_is_real(self.tx_power_dbm) and self.tx_power_dbm >= 0, "tx_power_dbm",
                 "a finite power >= 0 dBm", self.tx_power_dbm)
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
