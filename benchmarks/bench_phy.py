"""Speed and accuracy of the link realisation: LinkSimulator against bare Sionna.

Writes ``benchmarks/results/phy.json`` and ``benchmarks/results/phy.md``.

1. Speed, bits per second at equal batch (same links, same payload, same MCS, one attempt):
   - bit-true: ``LinkSimulator(fidelity="link").transmit`` against a plain script that calls
     the same Sionna blocks (TBEncoder, Mapper, AWGN, LS estimate, one-tap equaliser,
     Demapper, TBDecoder) in one ``tf.function``;
   - abstraction: ``LinkSimulator(fidelity="abstraction").transmit`` against Sionna's
     ``PHYAbstraction`` called directly on the per-subcarrier SINR (EESM + BLER tables +
     HARQ draw).
   Targets: wrapper / bare <= 1.2; abstraction / bit-true >= 100.
2. Accuracy: SNR at 10 % first-attempt BLER of the abstraction against the bit-true chain,
   per MCS, on AWGN (abstraction: its exact TB error probability) and TDL-A (both Monte-Carlo
   on the same channel draws).

``make bench`` runs ``bench_phy_channels.py`` (the channel-sampling
benchmark) on its own; if its ``results/phy_channels.md`` exists, ``phy.md`` embeds it, so the
phy report is one file.

Usage: ``python benchmarks/bench_phy.py [--quick] [--seed S]``
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _median_time(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def rayleigh_links(cfg, num_links, snr_db, rng):
    from dmoe.phy import Links
    draws = rng.standard_normal((1, 1, num_links, cfg.num_subcarriers, 2)) * np.sqrt(0.5)
    h = (draws[..., 0] + 1j * draws[..., 1]) * np.sqrt(
        10.0 ** (snr_db / 10.0) * cfg.noise_power_w / cfg.subcarrier_power_w)
    return Links.from_channel(cfg, h.astype(np.complex64))


def bare_sionna_link(tb_size, num_re, bits_per_symbol, code_rate, num_pilots):
    """The bit-true chain written directly with Sionna blocks, as a user script would."""
    import tensorflow as tf
    from sionna.phy.channel import AWGN
    from sionna.phy.mapping import BinarySource, Demapper, Mapper
    from sionna.phy.nr import TBDecoder, TBEncoder

    encoder = TBEncoder(target_tb_size=tb_size, num_coded_bits=num_re * bits_per_symbol,
                        target_coderate=code_rate, num_bits_per_symbol=bits_per_symbol,
                        channel_type="PDSCH")
    decoder = TBDecoder(encoder, num_bp_iter=20, cn_update="boxplus-phi")
    mapper = Mapper("qam", bits_per_symbol)
    demapper = Demapper("app", "qam", bits_per_symbol)
    source = BinarySource()
    awgn = AWGN()
    pilot = tf.constant((1.0 + 1.0j) / np.sqrt(2.0), tf.complex64)

    @tf.function
    def run(h, subcarrier):
        # h: [G, N] normalised channel (unit noise), subcarrier: [G, num_re] RE -> subcarrier
        num_links = tf.shape(h)[0]
        bits = source([num_links, tb_size])
        x = mapper(encoder(bits))
        y_pilot = awgn(tf.tile(h[:, None, :] * pilot, [1, num_pilots, 1]), 1.0)
        h_hat = tf.reduce_mean(y_pilot, axis=1) * tf.math.conj(pilot)
        h_re = tf.gather(h, subcarrier, batch_dims=1)
        h_hat_re = tf.gather(h_hat, subcarrier, batch_dims=1)
        y = awgn(h_re * x, 1.0)
        gain = tf.maximum(tf.abs(h_hat_re) ** 2, 1e-12)
        x_hat = y * tf.math.conj(h_hat_re) / tf.cast(gain, tf.complex64)
        llr = demapper(x_hat, (1.0 + 1.0 / num_pilots) / gain)
        bits_hat, crc_ok = decoder(llr)
        return tf.reduce_sum(tf.cast(bits_hat != bits, tf.int32)), crc_ok

    return run


def bench_speed(num_links, repeats, seed):
    import tensorflow as tf
    from sionna.sys import PHYAbstraction
    from dmoe.phy import ChannelConfig, LinkSimulator
    from dmoe.phy import _abstraction as _abs

    payload_bits, mcs, num_subcarriers, snr_db = 1024, 10, 16, 12.0
    cfg = ChannelConfig(num_subcarriers=num_subcarriers)
    rng = np.random.default_rng(seed)
    links = rayleigh_links(cfg, num_links, snr_db, rng)
    mask = np.ones(links.shape, dtype=bool)
    mcs_array = np.full(links.shape[:3], mcs)
    bits = num_links * payload_bits

    link_sim = LinkSimulator(cfg, fidelity="link", max_retransmissions=0)
    abs_sim = LinkSimulator(cfg, fidelity="abstraction", max_retransmissions=0)
    link_sim.transmit(links, payload_bits, mask, mcs=mcs_array, seed=0)       # warm-up/trace
    abs_sim.transmit(links, payload_bits, mask, mcs=mcs_array, seed=0)

    # Bare Sionna, same TB, same grid.
    qm, rate, _ = _abs.mcs_table_arrays(1)
    num_re, tb_size, _, _, _ = _abs.segment(np.array([payload_bits]), np.array([mcs]), 1)
    _, pilots = _abs.grid_symbols(num_re, num_subcarriers)
    run = bare_sionna_link(int(tb_size[0]), int(num_re[0]), int(qm[mcs]), float(rate[mcs]),
                           int(pilots[0]))
    h = tf.constant((links.h_dispatch.reshape(num_links, num_subcarriers) * np.sqrt(
        cfg.subcarrier_power_w / cfg.noise_power_w)).astype(np.complex64))
    subcarrier = tf.constant(np.tile(np.arange(int(num_re[0])) % num_subcarriers,
                                     (num_links, 1)).astype(np.int32))
    run(h, subcarrier)                                                          # trace

    phy_abs = PHYAbstraction()
    sinr = _abs.post_equalisation_sinr(links.snr_dispatch.reshape(num_links, num_subcarriers),
                                       pilots)
    sinr = tf.constant(sinr.reshape(num_links, 1, num_subcarriers, 1, 1).astype(np.float32))
    mcs_tensor = tf.constant(np.full((num_links, 1), mcs, np.int32))

    def bare_abstraction():
        return phy_abs(mcs_tensor, sinr=sinr, mcs_table_index=1, mcs_category=1)

    bare_abstraction()

    timing = {}
    # Interleave wrapper and bare runs so both see the same machine load.
    for _ in range(repeats):
        timing.setdefault("link_wrapper", []).append(_median_time(
            lambda: link_sim.transmit(links, payload_bits, mask, mcs=mcs_array, seed=1), 1))
        timing.setdefault("link_bare", []).append(_median_time(lambda: run(h, subcarrier), 1))
        timing.setdefault("abstraction_wrapper", []).append(_median_time(
            lambda: abs_sim.transmit(links, payload_bits, mask, mcs=mcs_array, seed=1), 3))
        timing.setdefault("abstraction_bare", []).append(_median_time(bare_abstraction, 3))
    seconds = {name: float(np.median(values)) for name, values in timing.items()}
    # Link adaptation on top of the abstraction (mcs=None: all 26 table MCSs evaluated).
    abs_sim.transmit(links, payload_bits, mask, mcs=None, seed=0)
    seconds["abstraction_wrapper_link_adaptation"] = _median_time(
        lambda: abs_sim.transmit(links, payload_bits, mask, mcs=None, seed=1), repeats)
    bps = {name: bits / value for name, value in seconds.items()}
    return {
        "num_links": num_links, "payload_bits": payload_bits, "mcs": mcs,
        "num_subcarriers": num_subcarriers, "mean_snr_db": snr_db, "seconds": seconds,
        "bits_per_second": bps,
        "ratio_link_wrapper_over_bare": seconds["link_wrapper"] / seconds["link_bare"],
        "ratio_abstraction_wrapper_over_bare": (seconds["abstraction_wrapper"]
                                                / seconds["abstraction_bare"]),
        "speedup_abstraction_over_link": seconds["link_wrapper"] / seconds["abstraction_wrapper"],
    }


def _crossing_db(snr_db, bler, target=0.1):
    """SNR where BLER falls through ``target`` (log-linear interpolation); NaN if not bracketed."""
    snr_db, bler = np.asarray(snr_db), np.asarray(bler)
    for i in range(len(snr_db) - 1):
        if bler[i] > target >= bler[i + 1]:
            lo, hi = np.log(max(bler[i], 1e-6)), np.log(max(bler[i + 1], 1e-6))
            return float(snr_db[i] + (np.log(target) - lo) / (hi - lo) * (snr_db[i + 1]
                                                                           - snr_db[i]))
    return float("nan")


def bench_agreement(mcs_list, num_blocks, seed):
    from dmoe.phy import ChannelConfig, LinkSimulator
    from dmoe.phy.curves import link_curves

    payload_bits, num_subcarriers = 800, 16
    cfg = ChannelConfig(num_subcarriers=num_subcarriers)
    sim = LinkSimulator(cfg, max_retransmissions=0)
    fine = np.arange(-8.0, 32.0, 0.02)
    rows = []
    for mcs in mcs_list:
        snr = 10.0 ** (fine / 10.0)[:, None] * np.ones((1, num_subcarriers))
        tbler, _ = sim._block_error_rate(snr, np.ones(snr.shape, bool),
                                         np.full(len(fine), payload_bits),
                                         np.full(len(fine), mcs))
        exact = float(fine[np.argmax(tbler <= 0.1)])
        grids = {"awgn": exact + np.arange(-1.5, 2.01, 0.5),
                 "tdl": exact + np.arange(-1.0, 8.01, 1.0)}
        for model, grid in grids.items():
            kwargs = dict(mcs=(mcs,), models=(model,), num_blocks=num_blocks,
                          payload_bits=payload_bits, num_subcarriers=num_subcarriers, seed=seed)
            link = link_curves(grid, fidelity="link", **kwargs)
            abstraction = link_curves(grid, fidelity="abstraction", **kwargs)
            snr_link = _crossing_db(grid, link["bler"])
            snr_abs = exact if model == "awgn" else _crossing_db(grid, abstraction["bler"])
            rows.append({"model": model, "mcs": int(mcs), "snr_db_abstraction": snr_abs,
                         "snr_db_bit_true": snr_link, "delta_db": snr_link - snr_abs,
                         "snr_grid_db": grid.tolist(), "bler_bit_true": link["bler"].tolist(),
                         "bler_abstraction": abstraction["bler"].tolist()})
            print(f"  {model} MCS {mcs}: abstraction {snr_abs:.2f} dB, bit-true "
                  f"{snr_link:.2f} dB, delta {snr_link - snr_abs:+.2f} dB", flush=True)
    return {"payload_bits": payload_bits, "num_subcarriers": num_subcarriers,
            "num_blocks": num_blocks, "rows": rows}


def write_markdown(report, path):
    speed = report["speed"]
    s, bps = speed["seconds"], speed["bits_per_second"]
    lines = [
        "# PHY link-realisation benchmark", "",
        f"Generated by `benchmarks/bench_phy.py` (seed {report['seed']}, "
        f"{report['machine']}; TF {report['versions']['tensorflow']}, "
        f"Sionna {report['versions']['sionna']}, CPU, graph mode).", "",
        f"## Speed at equal batch: {speed['num_links']} links x {speed['payload_bits']} bits, "
        f"MCS {speed['mcs']}, {speed['num_subcarriers']} subcarriers, Rayleigh "
        f"{speed['mean_snr_db']} dB, one attempt", "",
        "| path | LinkSimulator | bare Sionna | wrapper / bare |",
        "|---|---:|---:|---:|",
        f"| bit-true (`link`) | {bps['link_wrapper']:.3g} bit/s ({s['link_wrapper']*1e3:.1f} ms)"
        f" | {bps['link_bare']:.3g} bit/s ({s['link_bare']*1e3:.1f} ms) | "
        f"{speed['ratio_link_wrapper_over_bare']:.2f} |",
        f"| abstraction | {bps['abstraction_wrapper']:.3g} bit/s "
        f"({s['abstraction_wrapper']*1e3:.1f} ms) | {bps['abstraction_bare']:.3g} bit/s "
        f"({s['abstraction_bare']*1e3:.1f} ms) | "
        f"{speed['ratio_abstraction_wrapper_over_bare']:.2f} |",
        f"| abstraction + link adaptation (mcs=None) | "
        f"{bps['abstraction_wrapper_link_adaptation']:.3g} bit/s | | |", "",
        f"Abstraction / bit-true speed-up (wrapper, equal batch): "
        f"**{speed['speedup_abstraction_over_link']:.0f}x** (target >= 100x). "
        f"Wrapper / bare targets: <= 1.2.", "",
        f"## SNR at 10 % BLER: abstraction vs bit-true ({report['agreement']['payload_bits']}-bit "
        f"payload, {report['agreement']['num_subcarriers']} subcarriers, "
        f"{report['agreement']['num_blocks']} blocks per point)", "",
        "| channel | MCS | abstraction [dB] | bit-true [dB] | delta [dB] |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in report["agreement"]["rows"]:
        lines.append(f"| {row['model']} | {row['mcs']} | {row['snr_db_abstraction']:.2f} | "
                     f"{row['snr_db_bit_true']:.2f} | {row['delta_db']:+.2f} |")
    lines += ["", "AWGN: the abstraction's value is its exact TB error probability; TDL-A "
              "(100 ns, 30 kHz): both Monte-Carlo on the same channel draws, each block normalised "
              "to unit mean gain.", ""]
    channels = path.parent / "phy_channels.md"
    if channels.exists():
        lines += ["## Channel sampling (`bench_phy_channels.py`, results/phy_channels.md)", ""]
        lines += [line.replace("# ", "### ", 1) if line.startswith("# ") else line
                  for line in channels.read_text().splitlines()]
    path.write_text("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer blocks and repeats")
    parser.add_argument("--seed", type=int, default=20261201)
    args = parser.parse_args(argv)

    import sionna
    import tensorflow as tf
    print("== bench_phy: speed", flush=True)
    speed = bench_speed(num_links=64, repeats=3 if args.quick else 7, seed=args.seed)
    print(json.dumps(speed, indent=1), flush=True)
    print("== bench_phy: 10 % BLER agreement", flush=True)
    agreement = bench_agreement([5, 10, 15, 20, 25] if not args.quick else [5, 15, 25],
                                num_blocks=60 if args.quick else 150, seed=args.seed)
    report = {"seed": args.seed, "machine": f"{platform.machine()}, {platform.processor() or ''}"
              .strip(", "), "versions": {"tensorflow": tf.__version__,
                                         "sionna": sionna.__version__},
              "speed": speed, "agreement": agreement}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "phy.json").write_text(json.dumps(report, indent=1))
    write_markdown(report, RESULTS / "phy.md")
    print((RESULTS / "phy.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
