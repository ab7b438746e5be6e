"""Speed of the co-simulation: token-layer rounds per second and where the time goes.

One point of the shipped default study (every scheme of it, rho = 0.9, 23 dBm) is run in each
fidelity after a warm-up (TensorFlow tracing, model load). A *token-layer round* is one token
through one MoE layer for one scheme (gate, decision, dispatch, experts, return, combine).
Writes ``benchmarks/results/cosim.json`` and prints a Markdown table.

    python benchmarks/bench_cosim.py [--tokens 256] [--link-tokens 32]
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _point(tokens, fidelity):
    from dmoe.cosim.study import load_study
    study = load_study(None)
    base = study.points[0].config.model_dump(mode="json")
    base.update(num_tokens=tokens, importance=0.9)
    base["channel"]["tx_power_dbm"] = 23.0
    base["phy"]["fidelity"] = fidelity
    return base


def measure(tokens, fidelity, repeats=1):
    from dmoe.cosim.engine import load_model, run_point
    from dmoe.cosim.config import StudyConfig

    config = StudyConfig.model_validate(_point(tokens, fidelity))
    model = load_model(config.moe)
    run_point(config.model_copy(update={"num_tokens": min(tokens, 16)}))  # warm-up
    best = None
    for _ in range(repeats):
        start = time.perf_counter()
        rows = run_point(config)
        wall = time.perf_counter() - start
        if best is None or wall < best[0]:
            best = (wall, rows)
    wall, rows = best
    rounds = tokens * model.num_layers * len(config.schemes)
    parts = {part: sum(row[f"time_{part}_s"] for row in rows)
             + rows[0].get(f"point_time_{part}_s", 0.0) for part in ("phy", "moe", "scheduler")}
    other = max(wall - sum(parts.values()), 0.0)
    return {
        "fidelity": fidelity, "tokens": tokens, "layers": model.num_layers,
        "schemes": len(config.schemes), "token_layer_rounds": rounds, "wall_s": wall,
        "rounds_per_s": rounds / wall,
        "share": {**{k: v / wall for k, v in parts.items()}, "other": other / wall},
        "per_scheme_s": {row["scheme"]: row["time_phy_s"] + row["time_moe_s"]
                         + row["time_scheduler_s"] for row in rows},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--link-tokens", type=int, default=32,
                        help="tokens for the bit-true fidelity (slow)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "cosim.json"))
    args = parser.parse_args(argv)

    results = []
    for fidelity, tokens in (("ideal", args.tokens), ("abstraction", args.tokens),
                             ("link", args.link_tokens)):
        try:
            results.append(measure(tokens, fidelity))
        except Exception as error:  # report, do not hide, a fidelity that cannot run
            results.append({"fidelity": fidelity, "tokens": tokens,
                            "error": f"{type(error).__name__}: {error}"})
    from dmoe.cosim.engine import run_metadata
    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          **run_metadata()},
              "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))

    print("| fidelity | tokens | schemes x layers | wall (s) | token-layer rounds/s "
          "| phy | moe | scheduler | other |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['fidelity']} | {r['tokens']} | - | - | failed: {r['error'][:80]} "
                  "| | | | |")
            continue
        s = r["share"]
        print(f"| {r['fidelity']} | {r['tokens']} | {r['schemes']} x {r['layers']} | "
              f"{r['wall_s']:.2f} | {r['rounds_per_s']:.0f} | {s['phy']:.0%} | {s['moe']:.0%} "
              f"| {s['scheduler']:.0%} | {s['other']:.0%} |")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
