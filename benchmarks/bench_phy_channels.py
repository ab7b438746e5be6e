"""Channel sampling speed: ``dmoe.phy.sample_links`` against the bare Sionna blocks.

Writes ``benchmarks/results/phy_channels.json`` and ``benchmarks/results/phy_channels.md``.

For every channel model and execution mode (eager, ``tf.function`` graph, XLA) it times
producing the per-subcarrier SNRs of ``batch x rounds x links x subcarriers`` link-subcarrier
samples, once through ``sample_links`` (the wrapper: drop, path loss, Links with SNR / CSI
arrays) and once by calling the same Sionna blocks directly in a plain function (TDL/CDL call
-> ``cir_to_ofdm_channel`` -> SNR; ``gen_single_sector_topology`` -> ``set_topology`` ->
UMi/UMa/RMa call -> ``cir_to_ofdm_channel`` -> SNR). Rayleigh has no Sionna block (it is a
numpy Gauss-Markov process), so its "bare" reference is the same numpy draw written inline.
Each figure is the best of ``--repeats`` calls after one warm-up call (whose time, incl.
tracing, is reported as ``first_call_s``); wrapper and bare calls alternate so that both see
the same background load. Target: wrapper / bare time <= 1.2.

Usage: ``python benchmarks/bench_phy_channels.py [--batch 32] [--links 8] [--rounds 4]
[--subcarriers 128] [--repeats 5] [--modes eager graph xla] [--models ...] [--quick]``
"""

import argparse
import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import scipy.special
import tensorflow as tf

from dmoe.phy import ChannelConfig, sample_links
from sionna.phy import config as sionna_config
from sionna.phy.channel import cir_to_ofdm_channel, subcarrier_frequencies
from sionna.phy.channel.tr38901 import CDL, RMa, TDL, UMa, UMi, Antenna
from sionna.phy.channel.utils import gen_single_sector_topology

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = ("rayleigh", "tdl", "cdl", "umi", "uma", "rma")
MODES = ("eager", "graph", "xla")


def _timed_pair(functions, repeats):
    """First-call time and best-of-``repeats`` time of each function, runs interleaved so that
    both see the same background load."""
    first, best = {}, {}
    for name, function in functions.items():
        start = time.perf_counter()
        function(0)
        first[name] = time.perf_counter() - start
        best[name] = float("inf")
    for rep in range(1, repeats + 1):
        for name, function in functions.items():
            start = time.perf_counter()
            function(rep)
            best[name] = min(best[name], time.perf_counter() - start)
    return first, best


def _compile(function, mode):
    if mode == "eager":
        return function
    return tf.function(function, jit_compile=mode == "xla")


def bare_sionna(cfg, batch, links, mode):
    """A plain script with the Sionna blocks: returns ``run(seed) -> snr`` (numpy)."""
    scale = cfg.subcarrier_power_w / cfg.noise_power_w
    fc, times, fs = cfg.carrier_frequency_hz, cfg.num_rounds, 1.0 / cfg.round_interval_s
    freqs = subcarrier_frequencies(cfg.num_subcarriers, cfg.subcarrier_spacing_hz)

    if cfg.model == "rayleigh":
        rho = scipy.special.j0(2 * np.pi * cfg.max_doppler_hz * cfg.round_interval_s)

        def run(seed):
            rng = np.random.default_rng(seed)
            w = rng.standard_normal((batch, times, links, cfg.num_subcarriers, 2))
            w = (w[..., 0] + 1j * w[..., 1]) / np.sqrt(2)
            for t in range(1, times):
                w[:, t] = rho * w[:, t - 1] + np.sqrt(1 - rho ** 2) * w[:, t]
            return (np.abs(w) ** 2 * scale).astype(np.float32)
        return run

    ut = Antenna("single", "V", "omni", fc)
    bs = Antenna("single", "V", "omni", fc)
    if cfg.model in ("tdl", "cdl"):
        if cfg.model == "tdl":
            channel = TDL(cfg.profile, cfg.delay_spread_s, fc, min_speed=cfg.speed_mps,
                          max_speed=cfg.speed_mps)
        else:
            channel = CDL(cfg.profile, cfg.delay_spread_s, fc, ut, bs, "downlink",
                          min_speed=cfg.speed_mps, max_speed=cfg.speed_mps)

        def snr_graph():
            a, tau = channel(batch * links, times, fs)
            h = cir_to_ofdm_channel(freqs, a, tau)
            return tf.square(tf.abs(h)) * scale
    else:
        block = {"umi": UMi, "uma": UMa, "rma": RMa}[cfg.model]
        kwargs = {"o2i_model": "low"} if cfg.model != "rma" else {}
        channel = block(fc, ut_array=ut, bs_array=bs, direction="downlink", **kwargs)

        def snr_graph():
            topology = gen_single_sector_topology(batch, links, cfg.model,
                                                  min_ut_velocity=cfg.speed_mps,
                                                  max_ut_velocity=cfg.speed_mps)
            channel.set_topology(*topology)
            a, tau = channel(times, fs)
            h = cir_to_ofdm_channel(freqs, a, tau)
            return tf.square(tf.abs(h)) * scale

    compiled = _compile(snr_graph, mode)

    def run(seed):
        sionna_config.seed = seed
        return compiled().numpy()
    return run


def wrapper(cfg, batch, links, mode):
    def run(seed):
        return sample_links(cfg, batch, links, seed=seed, execution=mode).snr_dispatch
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--links", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--subcarriers", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--tag", default="", help="suffix of the result file names")
    parser.add_argument("--quick", action="store_true",
                        help="small smoke run: batch 8, 2 rounds, 64 subcarriers, eager and "
                             "graph, 2 repeats, results tagged 'quick'")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.rounds, args.subcarriers, args.repeats = 8, 2, 64, 2
        args.modes = [m for m in args.modes if m != "xla"]
        args.tag = args.tag or "quick"

    samples = args.batch * args.rounds * args.links * args.subcarriers
    rows = []
    for model in args.models:
        cfg = ChannelConfig(model=model, profile="A", num_subcarriers=args.subcarriers,
                            num_rounds=args.rounds, speed_mps=3.0)
        for mode in (("eager",) if model == "rayleigh" else args.modes):
            row = {"model": model, "mode": mode}
            try:
                functions = {name: make(cfg, args.batch, args.links, mode)
                             for name, make in (("wrapper", wrapper), ("bare", bare_sionna))}
                first, best = _timed_pair(functions, args.repeats)
                for name in functions:
                    row[f"{name}_first_call_s"] = first[name]
                    row[f"{name}_s"] = best[name]
                    row[f"{name}_samples_per_s"] = samples / best[name]
            except Exception as error:  # pylint: disable=broad-except
                row["error"] = f"{type(error).__name__}: {str(error)[:200]}"
            if "wrapper_s" in row and "bare_s" in row:
                row["wrapper_over_bare"] = row["wrapper_s"] / row["bare_s"]
            print(json.dumps(row), flush=True)
            rows.append(row)

    versions = {name: metadata.version(name) for name in ("tensorflow", "sionna-no-rt", "numpy")}
    result = {"batch": args.batch, "links": args.links, "rounds": args.rounds,
              "subcarriers": args.subcarriers, "samples_per_call": samples,
              "repeats": args.repeats, "cpus": os.cpu_count(), "machine": platform.machine(),
              "gpu": [d.name for d in tf.config.list_physical_devices("GPU")],
              "versions": versions, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    stem = "phy_channels" + (f"_{args.tag}" if args.tag else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2))

    lines = ["# PHY channel sampling benchmark", "",
             f"{os.cpu_count()} CPUs, GPU {result['gpu'] or 'none'}, versions {versions}; "
             f"{samples} link-subcarrier SNR samples per call (batch {args.batch} x rounds "
             f"{args.rounds} x links {args.links} x subcarriers {args.subcarriers}), "
             f"best of {args.repeats} after a warm-up call.", "",
             "| model | mode | wrapper (samples/s) | bare Sionna (samples/s) | wrapper / bare time "
             "| wrapper first call (s) | bare first call (s) |",
             "|---|---|---|---|---|---|---|"]

    def cell(row, key, fmt):
        return fmt.format(row[key]) if key in row else row.get("error", "-")

    for row in rows:
        lines.append(f"| {row['model']} | {row['mode']} | {cell(row, 'wrapper_samples_per_s', '{:.3g}')} "
                     f"| {cell(row, 'bare_samples_per_s', '{:.3g}')} "
                     f"| {cell(row, 'wrapper_over_bare', '{:.2f}')} "
                     f"| {cell(row, 'wrapper_first_call_s', '{:.2f}')} "
                     f"| {cell(row, 'bare_first_call_s', '{:.2f}')} |")
    lines += ["", "Rayleigh's bare reference is the same numpy Gauss-Markov draw inline (no "
              "Sionna block). The wrapper also draws the distances, applies the path loss and "
              "builds the read-only Links arrays; the bare UMi/UMa/RMa script draws its topology "
              "with `gen_single_sector_topology`."]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
