"""Link-level curves: BER / BLER / throughput against SNR per MCS (or modulation) and channel.

``docs/phy.md``, "Link curves". The ``dmoe phy-curves`` command wraps :func:`link_curves` and
:func:`write_curves`.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf
from sionna.phy.mapping import Demapper, Mapper

from .config import ChannelConfig
from .links import Links, sample_links
from .link_simulator import LinkSimulator
from . import _abstraction as _abs

__all__ = ["link_curves", "write_curves", "CURVE_MODELS"]

#: Channel models of the curves: "awgn" (h = 1), "rayleigh" (i.i.d. CN(0, 1) per subcarrier
#: and block) and every ChannelConfig model drawn by :func:`sample_links` without path loss.
CURVE_MODELS = ("awgn", "rayleigh", "tdl", "cdl", "umi", "uma", "rma")

_COLUMNS = ["model", "kind", "fidelity", "mcs", "bits_per_symbol", "code_rate", "snr_db",
            "num_blocks", "bits", "bit_errors", "ber", "block_errors", "bler",
            "throughput_bps"]


def _unit_channel(model, num_blocks, num_subcarriers, rng, seed, profile):
    """[num_blocks, num_subcarriers] complex64 channel with mean |h|^2 = 1 (one block a row)."""
    if model == "awgn":
        return np.ones((num_blocks, num_subcarriers), dtype=np.complex64)
    if model == "rayleigh":
        draws = rng.standard_normal((num_blocks, num_subcarriers, 2)) * np.sqrt(0.5)
        return (draws[..., 0] + 1j * draws[..., 1]).astype(np.complex64)
    cfg = ChannelConfig(model=model, profile=profile, num_subcarriers=num_subcarriers,
                        pathloss=False)
    links = sample_links(cfg, batch_size=1, num_links=num_blocks, seed=seed)
    h = links.h_dispatch.reshape(num_blocks, num_subcarriers)
    # Each block normalised to unit mean gain: the SNR axis is the SNR of the block, the curve
    # shows the loss from frequency selectivity (and not a path-loss / shadowing lottery).
    power = np.mean(np.abs(h) ** 2, axis=1, keepdims=True)
    return (h / np.sqrt(np.maximum(power, 1e-30))).astype(np.complex64)


def _uncoded_ber(bits_per_symbol, h, snr, num_symbols, rng):
    """Monte-Carlo BER of Gray QAM with a one-tap equaliser (perfect CSI) and hard decisions."""
    mapper = Mapper("qam", bits_per_symbol)
    demapper = Demapper("app", "qam", bits_per_symbol, hard_out=True)
    num_blocks, num_subcarriers = h.shape
    per_block = num_symbols * num_subcarriers
    bits = rng.integers(0, 2, (num_blocks, per_block * bits_per_symbol)).astype(np.float32)
    x = mapper(tf.constant(bits))
    h_re = np.tile(h * np.sqrt(snr), (1, num_symbols)).astype(np.complex64)
    noise = rng.standard_normal((num_blocks, per_block, 2)) * np.sqrt(0.5)
    y = h_re * x.numpy() + (noise[..., 0] + 1j * noise[..., 1]).astype(np.complex64)
    gain = np.maximum(np.abs(h_re) ** 2, 1e-30)
    x_hat = (y * np.conj(h_re) / gain).astype(np.complex64)
    bits_hat = demapper(tf.constant(x_hat), tf.constant((1.0 / gain).astype(np.float32)))
    errors = int(np.count_nonzero(bits_hat.numpy() != bits))
    return errors, bits.size


def link_curves(snr_db, mcs=(5, 10, 15, 20), modulations=(), models=("awgn",),
                fidelity="link", num_blocks=100, payload_bits=1024, num_subcarriers=12,
                mcs_table=1, profile="A", seed=0):
    r"""Sweep SNR and measure BER, BLER and throughput per MCS / modulation and channel model.

    Every point sends ``num_blocks`` independent transport blocks of ``payload_bits`` bits,
    each on ``num_subcarriers`` subcarriers (30 kHz) of its own channel realisation, with no
    retransmission (:class:`LinkSimulator`, so pilots, LS estimation and the grid are those of
    the co-simulation). The SNR is the mean per-subcarrier SNR ``P_sc E|h|^2 / (N0 df)``.
    Modulations (bits per symbol) give uncoded Gray-QAM BER with perfect CSI (BLER and
    throughput are NaN there).

    Parameters
    ----------
    snr_db : [num_snr], float
        SNR points in dB.
    mcs : sequence of int
        MCS indices of ``mcs_table`` (coded curves).
    modulations : sequence of int
        Bits per QAM symbol (2, 4, 6, 8) of uncoded curves.
    models : sequence of str
        Channel models, from :data:`CURVE_MODELS`.
    fidelity : str
        ``"link"`` (bit-true) or ``"abstraction"``.
    num_blocks : int
        Transport blocks per point (uncoded: blocks of 100 OFDM symbols).
    payload_bits : int
        Payload per transport block.
    num_subcarriers : int
        Subcarriers per block.
    mcs_table : int
        TS 38.214 PDSCH MCS table.
    profile : str
        TDL/CDL profile.
    seed : int
        Seed of all draws (same seed, same table).

    Output
    ------
    table : pandas.DataFrame
        One row per (model, MCS or modulation, SNR): ``model, kind ("mcs" | "uncoded"),
        fidelity, mcs (-1 uncoded), bits_per_symbol, code_rate, snr_db, num_blocks, bits,
        bit_errors, ber, block_errors, bler, throughput_bps``.

    Example
    -------
    >>> table = link_curves([0.0, 5.0], mcs=[5], models=["awgn"], num_blocks=10)
    >>> list(table["bler"].shape)
    [2]
    """
    import pandas as pd
    snr_db = np.atleast_1d(np.asarray(snr_db, dtype=np.float64))
    if snr_db.ndim != 1 or snr_db.size == 0 or not np.all(np.isfinite(snr_db)):
        raise ValueError("snr_db must be a non-empty 1-D sequence of finite dB values")
    for name, value in (("num_blocks", num_blocks), ("payload_bits", payload_bits),
                        ("num_subcarriers", num_subcarriers)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    unknown = [m for m in models if m not in CURVE_MODELS]
    if unknown or not len(models):
        raise ValueError(f"models must be a non-empty list from {CURVE_MODELS}, got {models!r}")
    for bits_per_symbol in modulations:
        if bits_per_symbol not in (2, 4, 6, 8):
            raise ValueError(f"modulations must be bits per symbol in (2, 4, 6, 8), "
                             f"got {bits_per_symbol!r}")
    cfg = ChannelConfig(num_subcarriers=num_subcarriers, subcarrier_spacing_hz=30e3)
    sim = LinkSimulator(cfg, fidelity=fidelity, max_retransmissions=0, mcs_table=mcs_table)
    qm, rate, _ = _abs.mcs_table_arrays(mcs_table)
    amplitude = np.sqrt(cfg.noise_power_w / cfg.subcarrier_power_w)
    rng = np.random.default_rng(seed)
    rows = []
    mask = np.ones((1, 1, num_blocks, num_subcarriers), dtype=bool)
    for model in models:
        for point, snr in enumerate(snr_db):
            h_unit = _unit_channel(model, num_blocks, num_subcarriers, rng,
                                   seed * 1000 + point, profile)
            h = (h_unit * amplitude * 10.0 ** (snr / 20.0)).reshape(mask.shape)
            links = Links.from_channel(cfg, h)
            for m in mcs:
                out = sim.transmit(links, payload_bits, mask, mcs=np.full(mask.shape[:3], m),
                                   seed=int(rng.integers(2**31)))
                bits = num_blocks * payload_bits
                delivered_bits = payload_bits * int(out.delivered.sum())
                rows.append(dict(
                    model=model, kind="mcs", fidelity=fidelity, mcs=int(m),
                    bits_per_symbol=int(qm[m]), code_rate=float(rate[m]), snr_db=float(snr),
                    num_blocks=num_blocks, bits=bits, bit_errors=int(out.bit_errors.sum()),
                    ber=float(out.bit_errors.sum()) / bits,
                    block_errors=int(out.block_error.sum()),
                    bler=float(out.block_error.mean()),
                    throughput_bps=delivered_bits / float(out.airtime_s.sum())))
            for bits_per_symbol in modulations:
                errors, bits = _uncoded_ber(bits_per_symbol, h_unit, 10.0 ** (snr / 10.0), 100,
                                            rng)
                rows.append(dict(
                    model=model, kind="uncoded", fidelity="link", mcs=-1,
                    bits_per_symbol=int(bits_per_symbol), code_rate=1.0, snr_db=float(snr),
                    num_blocks=num_blocks, bits=bits, bit_errors=errors, ber=errors / bits,
                    block_errors=-1, bler=np.nan, throughput_bps=np.nan))
    return pd.DataFrame(rows, columns=_COLUMNS)


def write_curves(table, out_dir, name="link_curves"):
    r"""Write a :func:`link_curves` table as CSV and a PNG of BLER, BER and throughput vs SNR.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`link_curves`.
    out_dir : str or path
        Folder (created if missing).
    name : str
        File stem.

    Output
    ------
    csv_path, png_path : pathlib.Path
    """
    import matplotlib  # only for the figure: matplotlib costs a second to import
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / f"{name}.csv"
    png_path = out / f"{name}.png"
    table.to_csv(csv_path, index=False)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    styles = ["-", "--", ":", "-."]
    models = list(dict.fromkeys(table["model"]))
    # One colour per MCS / modulation, one line style per channel model.
    curve_keys = sorted(set(zip(table["kind"], table["mcs"], table["bits_per_symbol"])))
    palette = plt.get_cmap("tab10")
    colours = {key: palette(i % 10) for i, key in enumerate(curve_keys)}
    for model_index, model in enumerate(models):
        style = styles[model_index % len(styles)]
        part = table[table["model"] == model]
        for (kind, mcs, bits_per_symbol), curve in part.groupby(
                ["kind", "mcs", "bits_per_symbol"], sort=True):
            curve = curve.sort_values("snr_db")
            label = (f"{model} MCS {mcs}" if kind == "mcs"
                     else f"{model} uncoded {2 ** bits_per_symbol}QAM")
            colour = colours[(kind, mcs, bits_per_symbol)]
            floor = 0.5 / curve["bits"].clip(lower=1)
            axes[1].semilogy(curve["snr_db"], np.maximum(curve["ber"], floor), style,
                             color=colour, marker="o", markersize=3, label=label)
            if kind == "mcs":
                block_floor = 0.5 / curve["num_blocks"]
                axes[0].semilogy(curve["snr_db"], np.maximum(curve["bler"], block_floor),
                                 style, color=colour, marker="o", markersize=3, label=label)
                axes[2].plot(curve["snr_db"], curve["throughput_bps"] / 1e6, style,
                             color=colour, marker="o", markersize=3, label=label)
    for axis, ylabel in zip(axes, ["BLER (first attempt)", "BER", "throughput [Mbit/s]"]):
        axis.set_xlabel("SNR per subcarrier [dB]")
        axis.set_ylabel(ylabel)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylim(bottom=1e-3, top=1.1)
    axes[0].axhline(0.1, color="k", linewidth=0.8, alpha=0.5)
    axes[1].set_ylim(bottom=1e-5, top=1)
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fidelity = ", ".join(sorted(set(table["fidelity"])))
    fig.suptitle(f"dmoe phy-curves ({fidelity}; floors at half a count mean no error seen)")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return csv_path, png_path
