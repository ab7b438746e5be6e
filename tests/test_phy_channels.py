"""Validation of dmoe.phy channels against independent references (TR 38.901, closed forms)."""

import math

import numpy as np
import pytest
import scipy.stats

from dmoe.phy import ChannelConfig, Links, pathloss_db, sample_links

C = 299_792_458.0


# --- TR 38.901 Table 7.4.1-1, written out again here as the independent reference ----------

def _ref_umi(d2d, fc, los, h_bs=10.0, h_ut=1.5):
    d3d = math.hypot(d2d, h_bs - h_ut)
    f = fc / 1e9
    d_bp = 4 * (h_bs - 1) * (h_ut - 1) * fc / C
    if d2d <= d_bp:
        pl_los = 32.4 + 21 * math.log10(d3d) + 20 * math.log10(f)
    else:
        pl_los = (32.4 + 40 * math.log10(d3d) + 20 * math.log10(f)
                  - 9.5 * math.log10(d_bp ** 2 + (h_bs - h_ut) ** 2))
    if los:
        return pl_los
    return max(pl_los, 35.3 * math.log10(d3d) + 22.4 + 21.3 * math.log10(f)
               - 0.3 * (h_ut - 1.5))


def _ref_uma(d2d, fc, los, h_bs=25.0, h_ut=1.5):
    d3d = math.hypot(d2d, h_bs - h_ut)
    f = fc / 1e9
    d_bp = 4 * (h_bs - 1) * (h_ut - 1) * fc / C
    if d2d <= d_bp:
        pl_los = 28.0 + 22 * math.log10(d3d) + 20 * math.log10(f)
    else:
        pl_los = (28.0 + 40 * math.log10(d3d) + 20 * math.log10(f)
                  - 9 * math.log10(d_bp ** 2 + (h_bs - h_ut) ** 2))
    if los:
        return pl_los
    return max(pl_los, 13.54 + 39.08 * math.log10(d3d) + 20 * math.log10(f)
               - 0.6 * (h_ut - 1.5))


def _ref_rma(d2d, fc, los, h_bs=35.0, h_ut=1.5, h=5.0, w=20.0):
    d3d = math.hypot(d2d, h_bs - h_ut)
    f = fc / 1e9
    d_bp = 2 * math.pi * h_bs * h_ut * fc / C

    def pl1(d):
        return (20 * math.log10(40 * math.pi * d * f / 3) + min(0.03 * h ** 1.72, 10) * math.log10(d)
                - min(0.044 * h ** 1.72, 14.77) + 0.002 * math.log10(h) * d)

    pl_los = pl1(d3d) if d2d <= d_bp else pl1(d_bp) + 40 * math.log10(d3d / d_bp)
    if los:
        return pl_los
    pl_nlos = (161.04 - 7.1 * math.log10(w) + 7.5 * math.log10(h)
               - (24.37 - 3.7 * (h / h_bs) ** 2) * math.log10(h_bs)
               + (43.42 - 3.1 * math.log10(h_bs)) * (math.log10(d3d) - 3)
               + 20 * math.log10(f) - (3.2 * (math.log10(11.75 * h_ut)) ** 2 - 4.97))
    return max(pl_los, pl_nlos)


_REFERENCE = {"umi": _ref_umi, "uma": _ref_uma, "rma": _ref_rma}
_SF_STD_DB = {("umi", True): 4.0, ("umi", False): 7.82, ("uma", True): 4.0,
              ("uma", False): 6.0, ("rma", True): 4.0, ("rma", False): 8.0}


def _snr_scale(cfg):
    """P_sc / (N0 df) from the dBm figures, computed independently of ChannelConfig."""
    p_sc_dbm = cfg.tx_power_dbm - 10 * math.log10(cfg.num_subcarriers)
    noise_dbm = cfg.noise_psd_dbm_hz + cfg.noise_figure_db + 10 * math.log10(
        cfg.subcarrier_spacing_hz)
    return 10 ** ((p_sc_dbm - noise_dbm) / 10)


# --- configuration ---------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("model", "winner"), ("profile", "F"), ("num_subcarriers", 0), ("num_subcarriers", 2.5),
    ("subcarrier_spacing_hz", 20e3), ("carrier_frequency_hz", -1.0), ("num_rounds", 0),
    ("round_interval_s", 0.0), ("delay_spread_s", -1e-9), ("speed_mps", -3.0),
    ("tx_power_dbm", float("nan")), ("tx_power_dbm", -4000.0), ("noise_figure_db", -1.0),
    ("carrier_frequency_hz", 0.4e9), ("carrier_frequency_hz", 101e9),
    ("min_distance_m", 0.0), ("max_distance_m", 5.0), ("distances_m", (10.0, -1.0)),
    ("distances_m", ()), ("pathloss", "yes"), ("csi", "genie"), ("csi_delay_rounds", -1),
    ("los", "maybe"), ("indoor_probability", 1.5),
])
def test_config_rejects_bad_field(field, value):
    with pytest.raises(ValueError, match=field):
        ChannelConfig(**{field: value})


def test_sample_links_rejects_bad_arguments():
    cfg = ChannelConfig()
    with pytest.raises(ValueError, match="batch_size"):
        sample_links(cfg, batch_size=0, num_links=2)
    with pytest.raises(ValueError, match="num_links"):
        sample_links(cfg, batch_size=1, num_links=0)
    with pytest.raises(ValueError, match="seed"):
        sample_links(cfg, batch_size=1, num_links=1, seed=-1)
    with pytest.raises(ValueError, match="distances_m"):
        sample_links(ChannelConfig(distances_m=(10.0, 20.0)), batch_size=1, num_links=3)
    with pytest.raises(ValueError, match="execution"):
        sample_links(cfg, batch_size=1, num_links=1, execution="jit")
    links = sample_links(cfg, batch_size=1, num_links=1)
    for kwargs, name in [({"model": "ergodic"}, "model"), ({"direction": "up"}, "direction"),
                         ({"view": "estimated"}, "view")]:
        with pytest.raises(ValueError, match=name):
            links.rate(**kwargs)


def test_power_convention():
    cfg = ChannelConfig(tx_power_dbm=30.0, num_subcarriers=100, subcarrier_spacing_hz=15e3,
                        noise_figure_db=9.0, noise_psd_dbm_hz=-174.0)
    assert cfg.subcarrier_power_w == pytest.approx(1.0 / 100)
    assert cfg.noise_power_w == pytest.approx(10 ** ((-174 + 9 - 30) / 10) * 15e3)


def test_from_channel_awgn_snr_and_shannon_rate():
    cfg = ChannelConfig(num_subcarriers=8, tx_power_dbm=20.0)
    h = np.full((2, 3, 4, 8), 10 ** (-100 / 20), dtype=np.complex64)   # 100 dB path loss
    links = Links.from_channel(cfg, h)
    expected = 10 ** (-100 / 10) * _snr_scale(cfg)
    np.testing.assert_allclose(links.snr_dispatch, expected, rtol=1e-5)
    np.testing.assert_allclose(links.snr_return, expected, rtol=1e-5)
    np.testing.assert_allclose(links.rate(), cfg.subcarrier_spacing_hz * np.log2(1 + expected),
                               rtol=1e-5)
    assert links.rate().dtype == np.float64 and links.rate().shape == (2, 3, 4, 8)
    with pytest.raises(ValueError, match="h_return"):
        Links.from_channel(cfg, h, h_return=h[:1])


# --- shapes, dtypes, seeds for every model ---------------------------------------------------

@pytest.mark.parametrize("model, profile", [("rayleigh", "A"), ("tdl", "C"), ("cdl", "D"),
                                            ("umi", "A"), ("uma", "A"), ("rma", "A")])
def test_shapes_dtypes_and_seeds(model, profile):
    cfg = ChannelConfig(model=model, profile=profile, num_subcarriers=16, num_rounds=2,
                        speed_mps=3.0)
    links = sample_links(cfg, batch_size=2, num_links=3, seed=7)
    shape = (2, 2, 3, 16)
    for name in ("h_dispatch", "h_return"):
        assert getattr(links, name).shape == shape and getattr(links, name).dtype == np.complex64
    for name in ("snr_dispatch", "snr_return", "csi_snr_dispatch", "csi_snr_return"):
        array = getattr(links, name)
        assert array.shape == shape and array.dtype == np.float32
        assert np.all(np.isfinite(array)) and np.all(array >= 0)
    assert links.distances_m.shape == (2, 3) and links.distances_m.dtype == np.float32
    assert np.all((links.distances_m >= 10 - 1e-3) & (links.distances_m <= 100 + 1e-3))
    # |h|^2 P_sc / (N0 df) = snr
    np.testing.assert_allclose(links.snr_dispatch,
                               np.abs(links.h_dispatch) ** 2 * _snr_scale(cfg), rtol=1e-4)
    again = sample_links(cfg, batch_size=2, num_links=3, seed=7)
    other = sample_links(cfg, batch_size=2, num_links=3, seed=8)
    np.testing.assert_array_equal(again.h_dispatch, links.h_dispatch)
    np.testing.assert_array_equal(again.distances_m, links.distances_m)
    assert not np.allclose(other.h_dispatch, links.h_dispatch)


def test_graph_mode_matches_eager():
    cfg = ChannelConfig(model="tdl", profile="B", num_subcarriers=16, num_rounds=2,
                        speed_mps=10.0)
    eager = sample_links(cfg, batch_size=2, num_links=2, seed=5)
    graph = sample_links(cfg, batch_size=2, num_links=2, seed=5, execution="graph")
    np.testing.assert_allclose(graph.h_dispatch, eager.h_dispatch, rtol=1e-4,
                               atol=1e-6 * np.abs(eager.h_dispatch).max())
    assert not graph.snr_dispatch.flags.writeable


# --- Rayleigh ---------------------------------------------------------------------------------

def test_rayleigh_unit_power_and_exponential_snr():
    cfg = ChannelConfig(model="rayleigh", pathloss=False, num_subcarriers=64)
    h = sample_links(cfg, batch_size=64, num_links=2, seed=11).h_dispatch
    # 8192 i.i.d. CN(0, 1) samples: mean |h|^2 = 1 within 5 standard errors.
    assert abs(np.mean(np.abs(h) ** 2) - 1.0) < 5 / math.sqrt(h.size)

    distances = (40.0, 80.0)
    cfg = ChannelConfig(model="rayleigh", distances_m=distances, num_subcarriers=64)
    snr = sample_links(cfg, batch_size=32, num_links=2, seed=12).snr_dispatch
    for k, d in enumerate(distances):
        mean_snr = 10 ** (-_ref_umi(d, cfg.carrier_frequency_hz, los=False) / 10) * _snr_scale(cfg)
        normalised = snr[:, :, k].ravel() / mean_snr
        assert scipy.stats.kstest(normalised, "expon").pvalue > 1e-3


# --- distance-based path loss ----------------------------------------------------------------

@pytest.mark.parametrize("scenario", ["umi", "uma", "rma"])
@pytest.mark.parametrize("los", [True, False])
def test_pathloss_formula(scenario, los):
    for fc in (0.9e9, 3.5e9, 28e9):
        distances = np.array([10.0, 35.0, 120.0, 480.0, 1500.0, 4000.0])
        got = pathloss_db(distances, fc, los, scenario)
        expected = [_REFERENCE[scenario](d, fc, los) for d in distances]
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_pathloss_rejects_bad_input():
    with pytest.raises(ValueError, match="scenario"):
        pathloss_db(10.0, 3.5e9, True, "indoor")
    with pytest.raises(ValueError, match="distance"):
        pathloss_db(0.0, 3.5e9, True)


@pytest.mark.parametrize("model, profile, los", [("tdl", "A", False), ("tdl", "D", True),
                                                 ("cdl", "C", False), ("rayleigh", "A", False)])
def test_linklevel_models_apply_umi_pathloss(model, profile, los):
    """Mean |h|^2 over many subcarriers and drops equals the UMi street-canyon gain."""
    distances = (30.0, 150.0)
    cfg = ChannelConfig(model=model, profile=profile, distances_m=distances,
                        num_subcarriers=128, subcarrier_spacing_hz=120e3, delay_spread_s=300e-9)
    h = sample_links(cfg, batch_size=48, num_links=2, seed=5).h_dispatch
    gain_db = 10 * np.log10(np.mean(np.abs(h) ** 2, axis=(0, 1, 3)))
    expected = [-_ref_umi(d, cfg.carrier_frequency_hz, los) for d in distances]
    # Unit-power fading averaged over 48 drops x 128 subcarriers: within 1 dB.
    np.testing.assert_allclose(gain_db, expected, atol=1.0)


@pytest.mark.parametrize("scenario", ["umi", "uma", "rma"])
@pytest.mark.parametrize("los", [True, False])
def test_system_level_pathloss_against_formula(scenario, los):
    """Sionna's UMi/UMa/RMa with LoS/NLoS forced and outdoor nodes: mean path loss in dB."""
    distances = (50.0, 200.0)
    cfg = ChannelConfig(model=scenario, distances_m=distances, los=los, indoor_probability=0.0,
                        num_subcarriers=128, subcarrier_spacing_hz=120e3)
    batch = 96
    h = sample_links(cfg, batch_size=batch, num_links=2, seed=21).h_dispatch
    # A wideband average removes the small-scale fading; what remains per drop is PL + SF.
    loss_db = -10 * np.log10(np.mean(np.abs(h) ** 2, axis=(1, 3)))   # [batch, links]
    sigma = _SF_STD_DB[(scenario, los)]
    for k, d in enumerate(distances):
        expected = _REFERENCE[scenario](d, cfg.carrier_frequency_hz, los)
        assert abs(loss_db[:, k].mean() - expected) < 3 * sigma / math.sqrt(batch) + 0.5
        assert 0.5 * sigma < loss_db[:, k].std() < 1.6 * sigma


def test_system_level_o2i_adds_loss():
    base = dict(model="umi", distances_m=(60.0,), los=True, num_subcarriers=32)
    outdoor = sample_links(ChannelConfig(indoor_probability=0.0, **base), 32, 1, seed=2)
    indoor = sample_links(ChannelConfig(indoor_probability=1.0, **base), 32, 1, seed=2)
    assert np.mean(indoor.snr_dispatch) < np.mean(outdoor.snr_dispatch)


# --- Doppler ---------------------------------------------------------------------------------

def _round_correlation(h):
    """Re E[h_{t+1} conj(h_t)] / E|h|^2 over batch, links, subcarriers."""
    return np.real(np.mean(h[:, 1:] * np.conj(h[:, :-1]))) / np.mean(np.abs(h) ** 2)


@pytest.mark.parametrize("model", ["rayleigh", "tdl", "umi"])
def test_doppler_correlation_falls_with_speed(model):
    correlations = []
    # 0, 58 and 233 Hz Doppler at 3.5 GHz: J0(2 pi f_d T) = 1, 0.97, 0.50 (monotone range).
    for speed in (0.0, 5.0, 20.0):
        cfg = ChannelConfig(model=model, pathloss=False, num_rounds=4, speed_mps=speed,
                            num_subcarriers=16, round_interval_s=1e-3, profile="A")
        h = sample_links(cfg, batch_size=24, num_links=2, seed=3).h_dispatch
        correlations.append(_round_correlation(h))
    assert correlations[0] > 0.99
    assert correlations[0] > correlations[1] > correlations[2]
    if model == "rayleigh":
        # Clarke/Jakes: J0(2 pi f_d T), f_d = v f_c / c
        for speed, rho in zip((5.0, 20.0), correlations[1:]):
            fd = speed * 3.5e9 / C
            assert rho == pytest.approx(scipy.special.j0(2 * math.pi * fd * 1e-3), abs=0.05)


# --- CSI views -------------------------------------------------------------------------------

def test_csi_perfect_equals_true():
    links = sample_links(ChannelConfig(num_rounds=2), batch_size=2, num_links=2, seed=1)
    np.testing.assert_array_equal(links.csi_snr_dispatch, links.snr_dispatch)
    np.testing.assert_array_equal(links.rate(view="csi"), links.rate(view="true"))


@pytest.mark.parametrize("delay", [1, 2])
def test_csi_outdated_is_earlier_channel(delay):
    kwargs = dict(model="tdl", num_rounds=4, speed_mps=20.0, num_subcarriers=8)
    links = sample_links(ChannelConfig(csi="outdated", csi_delay_rounds=delay, **kwargs),
                         batch_size=3, num_links=2, seed=4)
    np.testing.assert_array_equal(links.csi_snr_dispatch[:, delay:],
                                  links.snr_dispatch[:, :-delay])
    np.testing.assert_array_equal(links.csi_snr_return, links.csi_snr_dispatch)
    assert not np.allclose(links.csi_snr_dispatch[:, 0], links.snr_dispatch[:, 0])


@pytest.mark.parametrize("gain_db", [0.0, 10.0])
def test_csi_ls_error_variance(gain_db):
    """E|h + e|^2 = |h|^2 + var(e): the CSI SNR exceeds the true one by 1 / pilot gain."""
    cfg = ChannelConfig(csi="ls", csi_pilot_snr_gain_db=gain_db, distances_m=(700.0, 900.0),
                        num_subcarriers=64)
    links = sample_links(cfg, batch_size=32, num_links=2, seed=9)
    excess = links.csi_snr_dispatch.astype(np.float64) - links.snr_dispatch
    expected = 10 ** (-gain_db / 10)
    # Independent samples (i.i.d. noise on i.i.d. subcarriers): within 5 standard errors.
    standard_error = np.std(excess) / math.sqrt(excess.size)
    assert abs(np.mean(excess) - expected) < 5 * standard_error
    assert not np.array_equal(links.csi_snr_dispatch, links.csi_snr_return)


def test_any_finite_dbm_is_a_power_and_the_frequency_range_is_tr38901s():
    # -10 dBm = 0.1 mW over 64 subcarriers: closed form.
    cfg = ChannelConfig(tx_power_dbm=-10.0)
    assert cfg.subcarrier_power_w == pytest.approx(1e-4 / 64, rel=1e-12)
    for frequency in (0.5e9, 100e9):
        ChannelConfig(carrier_frequency_hz=frequency)
    with pytest.raises(ValueError, match="0.5-100 GHz.*TR 38.901"):
        ChannelConfig(carrier_frequency_hz=0.45e9)


def test_fields_declare_whether_they_shape_the_channel_draw():
    from dmoe.phy.config import draw_fields
    drawn = draw_fields(ChannelConfig())
    for name in ("tx_power_dbm", "noise_figure_db", "noise_psd_dbm_hz", "csi",
                 "csi_pilot_snr_gain_db", "csi_delay_rounds"):
        assert name not in drawn
    for name in ("model", "distances_m", "speed_mps", "los", "indoor_probability"):
        assert name in drawn
    assert "csi_delay_rounds" in draw_fields(ChannelConfig(csi="outdated"))


def _flat(cfg, distances, num_times, seed, rng, execution, precision):
    """A registered model: every subcarrier and instant has gain 1e-4 (80 dB loss)."""
    shape = (distances.shape[0], num_times, distances.shape[1], cfg.num_subcarriers)
    dtype = np.complex64 if precision == "single" else np.complex128
    return np.full(shape, 1e-4, dtype=dtype)


def test_a_registered_channel_model_draws_through_sample_links():
    from dmoe.phy import register_channel_model
    register_channel_model("flat_80db", _flat, replace=True)
    cfg = ChannelConfig(model="flat_80db", num_subcarriers=8, num_rounds=2)
    links = sample_links(cfg, batch_size=3, num_links=2, seed=0)
    expected = cfg.subcarrier_power_w * 1e-8 / cfg.noise_power_w      # P_sc |h|^2 / (N0 df)
    assert links.snr_dispatch.shape == (3, 2, 2, 8)
    np.testing.assert_allclose(links.snr_dispatch, expected, rtol=1e-5)
    with pytest.raises(ValueError, match="built-in"):
        register_channel_model("rayleigh", _flat)
    with pytest.raises(ValueError, match="flat_80db"):
        ChannelConfig(model="no_such_model")
