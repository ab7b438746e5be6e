"""Scaling of the co-simulation: rounds per second as the batch, K and N grow, per execution mode.

A *token-layer round* is one token through one MoE layer for one scheme (gate, decision,
dispatch, experts, return, combine). Three measurements, each after a warm-up run of the same
shape (model load, TensorFlow tracing / XLA compilation are not timed):

1. ``batch``: one point (default study settings: rayleigh, K = 8, N = 64, abstraction PHY,
   scheme ``des``) with 1 ... 4096 tokens, in every execution mode the engine accepts
   (``[execution] mode``; ``xla`` is measured where the config allows it).
2. ``size``: 256 tokens in every mode as K (experts = nodes; a model of each size is trained
   on first use and cached) and N (subcarriers) grow.
3. ``settings``: what the other ``[execution]`` settings cost or save: chunks of 256 / 1024
   tokens against the whole batch at 4096 tokens, double against single precision at 1024
   tokens, and a TDL-A point (Sionna channel blocks inside the engine) in every mode.
4. ``channels``: the Sionna channel blocks alone (TDL-A, 8 links, 2 rounds, 64 subcarriers)
   through ``dmoe.phy.sample_links`` in eager / graph / xla.

Where the time goes: the engine's own per-scheme clocks (``time_phy_s``, ``time_moe_s``,
``time_scheduler_s``) plus the point-level PHY work (channel draw and planning rates, timed here
by wrapping ``dmoe.phy.sample_links`` and ``Links.rate``); ``other`` is the rest (metadata,
token draw, metrics). Nothing here pins a device: on a machine with a GPU, TensorFlow uses it and
the report says so. Writes ``benchmarks/results/scaling.json`` and ``scaling.md``.

    python benchmarks/bench_scaling.py                 # default: 40 s to 3 min on 2 cores
    python benchmarks/bench_scaling.py --quick         # smoke run, under a minute
"""

import argparse
import contextlib
import json
import os
import platform
import time
import typing
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = Path(__file__).parent / "results"


# ------------------------------------------------------------------------------ time accounting

class _PointPhyClock:
    """Wall time of the point-level PHY calls the engine makes outside its own clocks."""

    def __init__(self):
        self.seconds = 0.0

    @contextlib.contextmanager
    def installed(self):
        import dmoe.phy as phy
        from dmoe.phy.links import Links
        original_sample, original_rate = phy.sample_links, Links.rate
        clock = self

        def sample_links(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original_sample(*args, **kwargs)
            finally:
                clock.seconds += time.perf_counter() - start

        def rate(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return original_rate(self, *args, **kwargs)
            finally:
                clock.seconds += time.perf_counter() - start

        phy.sample_links, Links.rate = sample_links, rate
        try:
            yield self
        finally:
            phy.sample_links, Links.rate = original_sample, original_rate


def engine_modes():
    """Execution modes the study config accepts (``xla`` once it is wired into the engine)."""
    from dmoe.cosim.config import ExecutionSection
    return tuple(typing.get_args(ExecutionSection.model_fields["mode"].annotation))


def measure_point(config, repeats):
    """Best-of-``repeats`` wall time of one point, after a warm-up of the same shape."""
    from dmoe.cosim import load_model, run_point
    from dmoe.cosim.config import StudyConfig

    config = StudyConfig.model_validate(config)
    model = load_model(config.moe)
    # Warm-up (model load, tracing, compilation). Past 1024 tokens it runs at 1024 to save
    # time: the engine's tf.functions are batch-agnostic, so nothing is traced again.
    run_point(config if config.num_tokens <= 1024 or config.execution.mode == "xla"
              else config.model_copy(update={"num_tokens": 1024}))
    best = None
    for _ in range(repeats):
        clock = _PointPhyClock()
        with clock.installed():
            start = time.perf_counter()
            rows = run_point(config)
            wall = time.perf_counter() - start
        if best is None or wall < best[0]:
            best = (wall, rows, clock.seconds)
    wall, rows, point_phy = best
    parts = {"phy": point_phy + sum(r["time_phy_s"] for r in rows),
             "moe": sum(r["time_moe_s"] for r in rows),
             "scheduler": sum(r["time_scheduler_s"] for r in rows)}
    parts["other"] = max(wall - sum(parts.values()), 0.0)
    rounds = config.num_tokens * model.num_layers * len(config.schemes)
    return {"tokens": config.num_tokens, "experts": model.num_experts,
            "layers": model.num_layers, "subcarriers": config.channel.num_subcarriers,
            "mode": config.execution.mode, "schemes": list(config.schemes),
            "channel": config.channel.model, "precision": config.execution.precision,
            "chunk_size": rows[0]["chunk_size"], "num_chunks": rows[0]["num_chunks"],
            "rounds": rounds, "wall_s": wall, "rounds_per_s": rounds / wall,
            "share": {part: seconds / wall for part, seconds in parts.items()},
            "device": rows[0]["device"]}


def _config(tokens, mode, schemes, experts=None, subcarriers=64, channel="rayleigh",
            precision="single", chunk_size=None):
    config = {"seed": 1, "num_tokens": tokens, "schemes": list(schemes), "importance": 0.9,
              "max_experts": 2, "channel": {"model": channel, "num_subcarriers": subcarriers,
                                            "tx_power_dbm": 23.0, "max_distance_m": 150.0,
                                            "speed_mps": 3.0},
              "phy": {"fidelity": "abstraction"},
              "execution": {"mode": mode, "precision": precision, "chunk_size": chunk_size}}
    if experts is not None:
        config["moe"] = {"num_experts": experts}
    return config


def measure_channels(batch, mode, repeats, model="tdl", links=8, subcarriers=64):
    """Channel draws (links x rounds) per second of ``sample_links`` alone."""
    from dmoe.phy import ChannelConfig, sample_links
    config = ChannelConfig(model=model, num_subcarriers=subcarriers, num_rounds=2,
                           speed_mps=3.0)
    sample_links(config, batch_size=batch, num_links=links, seed=1, execution=mode)  # warm-up
    best = None
    for repeat in range(repeats):
        start = time.perf_counter()
        sample_links(config, batch_size=batch, num_links=links, seed=2 + repeat, execution=mode)
        wall = time.perf_counter() - start
        best = wall if best is None else min(best, wall)
    draws = batch * links * 2
    return {"model": model, "batch": batch, "mode": mode, "wall_s": best,
            "draws_per_s": draws / best}


def _try(results, label, function, *args):
    try:
        results.append(function(*args))
        return results[-1]
    except Exception as error:  # report, do not hide, a case that cannot run
        results.append({"case": label, "error": f"{type(error).__name__}: {error}"[:300]})
        return results[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: batch up to 256, no K sweep, one repeat")
    parser.add_argument("--tokens", default="1,4,16,64,256,1024,4096",
                        help="batch sizes of the batch sweep (comma-separated)")
    parser.add_argument("--modes", default=None,
                        help="execution modes (default: every mode the engine accepts)")
    parser.add_argument("--schemes", default="des", help="schemes run at each point")
    parser.add_argument("--experts", default="4,8,16", help="K of the size sweep")
    parser.add_argument("--subcarriers", default="16,64,256", help="N of the size sweep")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    parser.add_argument("--out", default=str(RESULTS / "scaling.json"))
    args = parser.parse_args(argv)

    tokens = [int(t) for t in args.tokens.split(",")]
    experts = [int(k) for k in args.experts.split(",") if k.strip()]
    subcarriers = [int(n) for n in args.subcarriers.split(",") if n.strip()]
    repeats = args.repeats
    if args.quick:
        tokens, experts, repeats = [t for t in tokens if t <= 256], [], 1
    accepted = engine_modes()
    modes = args.modes.split(",") if args.modes else list(accepted)
    schemes = args.schemes.split(",")
    started = time.perf_counter()

    batch = []
    for mode in modes:
        if mode not in accepted:
            batch.append({"mode": mode, "error": f"the engine's [execution] mode accepts "
                          f"{list(accepted)} only (not wired yet)"})
            continue
        for count in tokens:
            # Small batches take milliseconds and are noisy on a shared machine: best of 5 or
            # more; past 1024 tokens one run is long enough to be stable.
            runs = max(repeats, 5) if count <= 64 else repeats if count <= 1024 else 1
            _try(batch, f"batch {count} {mode}", measure_point, _config(count, mode, schemes),
                 runs)
            print(_row(batch[-1]), flush=True)

    size = []
    engine_modes_run = [mode for mode in modes if mode in accepted]
    for mode in engine_modes_run:
        for count in experts:
            _try(size, f"K={count} {mode}", measure_point,
                 _config(256, mode, schemes, experts=count), repeats)
            print(_row(size[-1]), flush=True)
        for count in subcarriers:
            _try(size, f"N={count} {mode}", measure_point,
                 _config(256, mode, schemes, subcarriers=count), repeats)
            print(_row(size[-1]), flush=True)

    settings = []
    cases = [] if args.quick else [
        ("whole batch", _config(4096, "graph", schemes)),
        ("chunks of 1024", _config(4096, "graph", schemes, chunk_size=1024)),
        ("chunks of 256", _config(4096, "graph", schemes, chunk_size=256)),
        ("single", _config(1024, "graph", schemes)),
        ("double", _config(1024, "graph", schemes, precision="double"))]
    cases += [(f"tdl {mode}", _config(256, mode, schemes, channel="tdl"))
              for mode in engine_modes_run]
    for label, config in cases:
        _try(settings, label, measure_point, config, 1 if config["num_tokens"] > 1024
             else repeats)
        settings[-1].setdefault("case", label)
        print(_row(settings[-1]), flush=True)

    channels = []
    for mode in ("eager", "graph", "xla"):
        for count in ([16, 256] if args.quick else [16, 256, 1024]):
            result = _try(channels, f"tdl {count} {mode}", measure_channels, count, mode,
                          repeats)
            print(_channel_row(result), flush=True)

    from dmoe.cosim.execution import run_metadata
    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          **run_metadata()},
              "engine_modes": list(accepted), "schemes": schemes,
              "batch": batch, "size": size, "settings": settings, "channels": channels,
              "total_wall_s": time.perf_counter() - started}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    markdown = _markdown(report)
    out.with_suffix(".md").write_text(markdown)
    print(markdown)
    print(f"written: {out} and {out.with_suffix('.md')}")
    return 0


def _row(r):
    if "error" in r:
        return f"| {r.get('case', r.get('mode'))} | failed: {r['error'][:100]} |"
    s = r["share"]
    return (f"| {r['mode']} | {r['channel']} | {r['precision']} | {r['tokens']} | "
            f"{r['chunk_size']} x {r['num_chunks']} | {r['experts']} | {r['subcarriers']} | "
            f"{r['wall_s']:.3f} | {r['rounds_per_s']:.0f} | {s['phy']:.0%} | {s['moe']:.0%} | "
            f"{s['scheduler']:.0%} | {s['other']:.0%} |")


def _markdown(report):
    machine = report["machine"]
    head = ("| mode | channel | precision | tokens | chunks | K | N | wall (s) | rounds/s | "
            "phy | moe | scheduler | other |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = ["# Scaling benchmark", "",
             f"{machine['cpus']} CPUs, device {machine['device']}, {machine['platform']}, "
             f"TensorFlow {machine['versions']['tensorflow']}; schemes {report['schemes']}; "
             f"total {report['total_wall_s']:.0f} s.", "",
             "## Rounds per second as the batch grows", "", head]
    lines += [_row(r) for r in report["batch"]]
    ok = [r for r in report["batch"] if "error" not in r]
    for mode in sorted({r["mode"] for r in ok}):
        by_tokens = {r["tokens"]: r["rounds_per_s"] for r in ok if r["mode"] == mode}
        if 1 in by_tokens and 1024 in by_tokens:
            lines.append(f"\n{mode}: throughput at 1024 tokens / at 1 token = "
                         f"{by_tokens[1024] / by_tokens[1]:.1f}x")
    lines += ["", "## As K and N grow (256 tokens)", "", head]
    lines += [_row(r) for r in report["size"]]
    lines += ["", "## Chunks, precision, and a Sionna channel (TDL-A) inside the engine", "",
              head]
    lines += [_row(r) for r in report["settings"]]
    lines += ["", "## Sionna channel blocks alone (TDL-A, 8 links, 2 rounds, 64 subcarriers)", "",
              "| mode | batch | wall (s) | channel draws/s |", "|---|---|---|---|"]
    lines += [_channel_row(r) for r in report["channels"]]
    return "\n".join(lines) + "\n"


def _channel_row(r):
    if "error" in r:
        return f"| {r['case']} | failed: {r['error'][:100]} | | |"
    return f"| {r['mode']} | {r['batch']} | {r['wall_s']:.3f} | {r['draws_per_s']:.0f} |"


if __name__ == "__main__":
    raise SystemExit(main())
