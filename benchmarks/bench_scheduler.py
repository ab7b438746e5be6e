"""Speed of DES against scipy's MILP (HiGHS) and brute force on random P1 instances.

Writes ``benchmarks/results/scheduler.json`` and ``benchmarks/results/scheduler.md``.

Three studies, every ratio measured in the same run:

- *Single calls* (K in {8, 32, 64}, D = 4, rho = 0.9, run twice): one instance per call, the
  whole call timed including building the problem: ``des(SelectionProblem(...))`` against a
  plain ``scipy.optimize.milp`` call on the same instance (HiGHS, building its constraint
  matrix included) and against ``milp_reference``. The solvers take turns in blocks of 10
  instances, so that each runs back to back, as a scheduler would call it, while all see the
  same machine load; a second pass alternates instance by instance (each call then starts
  with caches the other solver has just evicted).
- *Scale* (K in {8, 32, 64, 128}, D in {2, 4, 8}, rho = 0.9): DES per instance in single and
  batched calls, nodes, HiGHS on the same instances, and the growth exponent in K.
- *Batched* (K in {8, 16, 32, 64}, D = 4, rho in {0.5, 0.9}): ``des`` one call per instance
  and one batched call, ``milp_reference`` and ``brute_force``, optima checked to agree.

Usage: ``python benchmarks/bench_scheduler.py [--instances N] [--batch B] [--seed S]``
"""

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy
from scipy.optimize import Bounds, LinearConstraint, milp

from dmoe.scheduler import SelectionProblem, brute_force, des, milp_reference

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = (8, 16, 32, 64)
IMPORTANCES = (0.5, 0.9)
MAX_EXPERTS = 4
SINGLE_SIZES = (8, 32, 64)
SINGLE_IMPORTANCE = 0.9
SCALE_SIZES = (8, 32, 64, 128)
SCALE_DEPTHS = (2, 4, 8)
# Targets: single calls >= 50x HiGHS at K = 32 and 64, >= 20x at K = 8.
SINGLE_TARGETS = {8: 20.0, 32: 50.0, 64: 50.0}


def instances(num_instances, num_experts, rng):
    """Softmax relevance of standard-normal logits and unit-mean exponential costs."""
    logits = rng.standard_normal((num_instances, num_experts))
    relevance = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    cost = rng.exponential(size=(num_instances, num_experts))
    return relevance, cost


def highs_p1(relevance, cost, max_experts, importance):
    """P1 as a plain ``scipy.optimize.milp`` call (HiGHS): the general solver's single call.

    Builds gamma and the two constraint rows, then solves with HiGHS' defaults (relative gap
    1e-4, feasibility tolerance 1e-6 on the unscaled rows). Returns ``(cost, nodes, chosen)``,
    ``chosen [K]`` bool the set HiGHS returned.
    """
    num_experts = relevance.size
    depth = min(max_experts, num_experts)
    gamma = importance * np.sort(relevance)[::-1][:depth].sum()
    rows = LinearConstraint(np.vstack([relevance, np.ones(num_experts)]), [gamma, 1.0],
                            [np.inf, depth])
    res = milp(cost, constraints=rows, integrality=np.ones(num_experts), bounds=Bounds(0, 1))
    return float(res.fun), int(getattr(res, "mip_node_count", 0) or 0), res.x > 0.5


def _misses_requirement(chosen, relevance, cost, depth, importance):
    """Whether a set HiGHS returned misses gamma (beyond P1's slack) or holds more than D."""
    problem = SelectionProblem(relevance, cost, depth, importance=importance)
    return not bool(problem.is_feasible(chosen))


def _take_turns(solvers, num_instances, block, cpu=None):
    """Wall time of every call, solvers taking turns over blocks of ``block`` instances.

    ``solvers``: name -> function of the instance index. Returns name -> (times, outputs); with
    ``cpu`` (a dict), also the process CPU time of every call in ``cpu[name]``.
    """
    out = {name: ([], [None] * num_instances) for name in solvers}
    for start in range(0, num_instances, block):
        for name, solve in solvers.items():
            times, outputs = out[name]
            for b in range(start, min(start + block, num_instances)):
                begin, begin_cpu = time.perf_counter(), time.process_time()
                outputs[b] = solve(b)
                times.append(time.perf_counter() - begin)
                if cpu is not None:
                    cpu.setdefault(name, []).append(time.process_time() - begin_cpu)
    return out


def single_call_case(num_experts, num_instances, repeats, rng):
    """``des(SelectionProblem(...))`` against HiGHS, one instance per call (module docstring)."""
    relevance, cost = instances(num_instances, num_experts, rng)
    rho, depth = SINGLE_IMPORTANCE, MAX_EXPERTS
    solvers = {
        "des": lambda b: des(SelectionProblem(relevance[b], cost[b], depth, importance=rho)),
        "highs": lambda b: highs_p1(relevance[b], cost[b], depth, rho),
        "milp_reference": lambda b: milp_reference(
            SelectionProblem(relevance[b], cost[b], depth, importance=rho)),
    }
    for solve in solvers.values():                  # warm-up (imports, caches)
        solve(0)
    runs = []
    for _ in range(repeats):
        cpu = {}
        blocks = _take_turns(solvers, num_instances, block=10, cpu=cpu)
        alternate = _take_turns({k: solvers[k] for k in ("des", "highs")}, num_instances, block=1)
        des_s = float(np.median(blocks["des"][0]))
        highs_s = float(np.median(blocks["highs"][0]))
        reference_s = float(np.median(blocks["milp_reference"][0]))
        des_cold = float(np.median(alternate["des"][0]))
        highs_cold = float(np.median(alternate["highs"][0]))
        runs.append({
            "des_single_median_s": des_s, "highs_median_s": highs_s,
            "milp_reference_median_s": reference_s,
            "ratio_highs_over_des": highs_s / des_s,
            "ratio_milp_reference_over_des": reference_s / des_s,
            "des_single_alternating_median_s": des_cold,
            "highs_alternating_median_s": highs_cold,
            "ratio_highs_over_des_alternating": highs_cold / des_cold,
            "des_cpu_median_s": float(np.median(cpu["des"])),
            "highs_cpu_median_s": float(np.median(cpu["highs"])),
            "ratio_highs_over_des_cpu": float(np.median(cpu["highs"]) / np.median(cpu["des"])),
        })
    results = blocks["des"][1]
    des_cost = np.array([float(r.cost) for r in results])
    reference_cost = np.array([float(r.cost) for r in blocks["milp_reference"][1]])
    highs_cost = np.array([c for c, _, _ in blocks["highs"][1]])
    highs_infeasible = sum(_misses_requirement(x, relevance[b], cost[b], depth, rho)
                           for b, (_, _, x) in enumerate(blocks["highs"][1]))
    ratios = [run["ratio_highs_over_des"] for run in runs]
    return {
        "K": num_experts, "D": depth, "rho": rho, "instances": num_instances,
        "runs": runs,
        "des_nodes_median": float(np.median([int(r.nodes) for r in results])),
        "highs_nodes_median": float(np.median([n for _, n, _ in blocks["highs"][1]])),
        "optimum_matches_milp_reference": bool(np.allclose(des_cost, reference_cost, rtol=1e-6,
                                                           atol=1e-9)),
        "optimum_matches_highs": bool(np.allclose(des_cost, highs_cost, rtol=1e-6, atol=1e-9)),
        "highs_sets_missing_requirement": int(highs_infeasible),
        "target_ratio": SINGLE_TARGETS[num_experts],
        "target_met_every_run": bool(min(ratios) >= SINGLE_TARGETS[num_experts]),
    }


def scale_case(num_experts, depth, num_batch, num_single, rng):
    """DES per instance (batched and single calls), nodes, and HiGHS on the same instances."""
    relevance, cost = instances(num_batch, num_experts, rng)
    rho = SINGLE_IMPORTANCE
    batch = SelectionProblem(relevance, cost, depth, importance=rho)
    des(batch)                                      # warm-up
    batch_times = []
    for _ in range(3):
        batched, t = _timed(des, batch)
        batch_times.append(t / num_batch)
    solvers = {
        "des": lambda b: des(SelectionProblem(relevance[b], cost[b], depth, importance=rho)),
        "highs": lambda b: highs_p1(relevance[b], cost[b], depth, rho),
        "milp_reference": lambda b: milp_reference(
            SelectionProblem(relevance[b], cost[b], depth, importance=rho)),
    }
    turns = _take_turns(solvers, num_single, block=10)
    highs_cost = np.array([c for c, _, _ in turns["highs"][1]])
    reference_cost = np.array([float(r.cost) for r in turns["milp_reference"][1]])
    single_cost = np.array([float(r.cost) for r in turns["des"][1]])
    highs_infeasible = sum(_misses_requirement(x, relevance[b], cost[b], depth, rho)
                           for b, (_, _, x) in enumerate(turns["highs"][1]))
    des_single = float(np.median(turns["des"][0]))
    highs = float(np.median(turns["highs"][0]))
    return {
        "K": num_experts, "D": depth, "rho": rho,
        "instances_batched": num_batch, "instances_single": num_single,
        "des_batched_per_instance_s": float(np.median(batch_times)),
        "des_single_median_s": des_single,
        "highs_median_s": highs,
        "ratio_highs_over_des_single": highs / des_single,
        "des_nodes_median": float(np.median(batched.nodes)),
        "des_nodes_mean": float(np.mean(batched.nodes)),
        "des_nodes_p99": float(np.percentile(batched.nodes, 99)),
        "des_nodes_max": int(np.max(batched.nodes)),
        "highs_nodes_median": float(np.median([n for _, n, _ in turns["highs"][1]])),
        "milp_reference_median_s": float(np.median(turns["milp_reference"][0])),
        "subsets_up_to_D": sum(math.comb(num_experts, m) for m in range(1, depth + 1)),
        "optimum_matches_milp_reference": bool(np.allclose(single_cost, reference_cost, rtol=1e-6,
                                                           atol=1e-9)),
        "optimum_matches_highs": bool(np.allclose(single_cost, highs_cost, rtol=1e-6, atol=1e-9)),
        "highs_sets_missing_requirement": int(highs_infeasible),
        "batched_matches_single": bool(np.array_equal(batched.cost[:num_single], single_cost)),
    }


def growth_exponents(rows, key):
    """Least-squares slope of log(row[key]) against log(K), for every D."""
    out = {}
    for depth in SCALE_DEPTHS:
        part = [r for r in rows if r["D"] == depth]
        k = np.log([r["K"] for r in part])
        y = np.log([r[key] for r in part])
        out[str(depth)] = float(np.polyfit(k, y, 1)[0])
    return out


def _timed(solve, problem):
    start = time.perf_counter()
    result = solve(problem)
    return result, time.perf_counter() - start


def bench_case(num_experts, importance, num_single, num_batch, num_brute, rng):
    relevance, cost = instances(num_batch, num_experts, rng)
    single = [SelectionProblem(relevance[b], cost[b], MAX_EXPERTS, importance=importance)
              for b in range(num_single)]
    des(single[0])                                  # warm-up (imports, caches)
    des_times, milp_times, des_cost, milp_cost, des_nodes, milp_nodes = [], [], [], [], [], []
    for problem in single:
        r, t = _timed(des, problem)
        des_times.append(t), des_cost.append(float(r.cost)), des_nodes.append(int(r.nodes))
        r, t = _timed(milp_reference, problem)
        milp_times.append(t), milp_cost.append(float(r.cost)), milp_nodes.append(int(r.nodes))

    batch = SelectionProblem(relevance, cost, MAX_EXPERTS, importance=importance)
    batch_times = []
    for _ in range(5):
        batched, t = _timed(des, batch)
        batch_times.append(t / num_batch)
    agree_milp = np.allclose(batched.cost[:num_single], milp_cost, rtol=1e-6)
    agree_single = np.allclose(batched.cost[:num_single], des_cost, rtol=1e-12)

    subsets = sum(math.comb(num_experts, m) for m in range(1, MAX_EXPERTS + 1))
    brute_times, agree_brute = [], None
    if num_brute:
        costs = []
        for b in range(num_brute):
            r, t = _timed(brute_force, single[b])
            brute_times.append(t), costs.append(float(r.cost))
        agree_brute = bool(np.allclose(batched.cost[:num_brute], costs, rtol=1e-9))

    des_single = float(np.median(des_times))
    des_batched = float(np.median(batch_times))
    milp = float(np.median(milp_times))
    return {
        "K": num_experts, "D": MAX_EXPERTS, "rho": importance,
        "instances_single": num_single, "instances_batched": num_batch,
        "instances_brute_force": num_brute,
        "des_single_median_s": des_single,
        "des_batched_per_instance_s": des_batched,
        "milp_median_s": milp,
        "brute_force_median_s": float(np.median(brute_times)) if brute_times else None,
        "des_nodes_median": float(np.median(batched.nodes)),
        "des_nodes_mean": float(np.mean(batched.nodes)),
        "des_nodes_max": int(np.max(batched.nodes)),
        "milp_nodes_median": float(np.median(milp_nodes)),
        "subsets_up_to_D": subsets, "two_to_K": 2.0 ** num_experts,
        "ratio_milp_over_des_single": milp / des_single,
        "ratio_milp_over_des_batched": milp / des_batched,
        "batched_not_slower_than_single": des_batched <= des_single,
        "optimum_matches_milp": bool(agree_milp),
        "optimum_matches_brute_force": agree_brute,
        "batched_matches_single": bool(agree_single),
    }


def _fmt_time(seconds):
    if seconds is None:
        return "-"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} us"


def markdown(report):
    machine = report["machine"]
    lines = [
        "# DES benchmark (P1)",
        "",
        f"Generated by `benchmarks/bench_scheduler.py` on {machine['platform']} "
        f"({machine['cpu_count']} CPUs, load average {machine['load_average']} at the start and "
        f"{machine['load_average_end']} at the end), numpy {report['versions']['numpy']}, scipy "
        f"{report['versions']['scipy']}, seed {report['seed']}, {report['wall_time_s']:.0f} s. "
        "Random instances: softmax relevance of standard-normal logits, unit-mean exponential "
        "costs. Times are medians per instance; every ratio compares solvers in the same run.",
        "",
        f"## Single calls (D = {MAX_EXPERTS}, rho = {SINGLE_IMPORTANCE}, whole call including "
        "building the problem)",
        "",
        "*DES*: `des(SelectionProblem(...))`; *HiGHS*: a plain `scipy.optimize.milp` call on "
        "the same instance (gamma and the constraint matrix built in the call); "
        "*milp_reference*: `milp_reference(SelectionProblem(...))` (scaling, no-good re-solves). "
        "Solvers take turns in blocks of 10 instances; *alternating*: turns after every "
        "instance, so that each call starts on caches the other solver has just used. *CPU*: "
        "process CPU time of the calls in blocks (all threads; unlike wall time it leaves out "
        "waiting for the CPU, which on a loaded machine inflates HiGHS' wall time more than "
        "DES's).",
        "",
        "| K | run | DES | HiGHS | milp_reference | HiGHS / DES | milp_reference / DES | "
        "DES CPU | HiGHS CPU | CPU ratio | DES alternating | HiGHS alternating | ratio alternating | "
        "target | DES nodes (median) | DES = milp_reference | HiGHS sets missing gamma |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["single"]:
        for index, run in enumerate(row["runs"], start=1):
            lines.append(
                f"| {row['K']} | {index} | {_fmt_time(run['des_single_median_s'])} | "
                f"{_fmt_time(run['highs_median_s'])} | {_fmt_time(run['milp_reference_median_s'])} | "
                f"{run['ratio_highs_over_des']:.1f}x | {run['ratio_milp_reference_over_des']:.1f}x | "
                f"{_fmt_time(run['des_cpu_median_s'])} | {_fmt_time(run['highs_cpu_median_s'])} | "
                f"{run['ratio_highs_over_des_cpu']:.1f}x | "
                f"{_fmt_time(run['des_single_alternating_median_s'])} | "
                f"{_fmt_time(run['highs_alternating_median_s'])} | "
                f"{run['ratio_highs_over_des_alternating']:.1f}x | >= {row['target_ratio']:.0f}x: "
                f"{'met' if run['ratio_highs_over_des'] >= row['target_ratio'] else 'NOT met'} | "
                f"{row['des_nodes_median']:.0f} | "
                f"{'yes' if row['optimum_matches_milp_reference'] else 'NO'} | "
                f"{row['highs_sets_missing_requirement']} / {row['instances']} |")
    lines += [
        "",
        f"## Scale (rho = {SINGLE_IMPORTANCE})",
        "",
        "*DES single*: one call per instance (including `SelectionProblem`), taking turns with "
        "HiGHS in blocks of 10; *DES batched*: one call over the batch divided by its size "
        "(median of 3 calls). Nodes over the batch. Brute force would visit every set of <= D "
        "experts (column *sets*); beyond about 2e6 sets it is out of reach, and `milp_reference` "
        "(HiGHS on the scaled instance, gap 0, re-solved when its set misses gamma) is the exact "
        "reference: *agree* compares DES with it on the single-call instances (and DES single with "
        "DES batched, bit for bit). The plain HiGHS call works to its default tolerances on the "
        "unscaled rows; *HiGHS misses* counts the sets it returned that miss gamma.",
        "",
        "| K | D | DES single | DES batched | HiGHS | HiGHS / DES single | DES nodes med / mean / "
        "p99 / max | HiGHS nodes (median) | sets of <= D | agree | HiGHS misses |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["scale"]:
        lines.append(
            f"| {row['K']} | {row['D']} | {_fmt_time(row['des_single_median_s'])} | "
            f"{_fmt_time(row['des_batched_per_instance_s'])} | {_fmt_time(row['highs_median_s'])} | "
            f"{row['ratio_highs_over_des_single']:.1f}x | {row['des_nodes_median']:.0f} / "
            f"{row['des_nodes_mean']:.1f} / {row['des_nodes_p99']:.0f} / {row['des_nodes_max']} | "
            f"{row['highs_nodes_median']:.0f} | {row['subsets_up_to_D']:.3g} | "
            f"{'yes' if row['optimum_matches_milp_reference'] and row['batched_matches_single'] else 'NO'} | "
            f"{row['highs_sets_missing_requirement']} / {row['instances_single']} |")
    growth = report["growth_exponents"]
    lines += ["", "Growth with K (least-squares exponent of a power law over K = "
              f"{', '.join(str(k) for k in SCALE_SIZES)}):", "",
              "| D | DES single time | DES batched time | DES mean nodes | HiGHS time |",
              "|---|---|---|---|---|"]
    for depth in SCALE_DEPTHS:
        d = str(depth)
        lines.append(f"| {depth} | K^{growth['des_single_median_s'][d]:.2f} | "
                     f"K^{growth['des_batched_per_instance_s'][d]:.2f} | "
                     f"K^{growth['des_nodes_mean'][d]:.2f} | K^{growth['highs_median_s'][d]:.2f} |")
    lines += [
        "",
        f"## Batched calls (D = {MAX_EXPERTS})",
        "",
        "*DES single*: one `des` call per instance on a prepared problem; *DES batched*: one "
        "`des` call over the whole batch, divided by its size (median of 5 calls); *MILP*: "
        "`milp_reference` (one call per instance, interleaved with the single DES calls); "
        "*brute force*: enumeration of all sets of 1..D experts. Nodes: DES search-tree nodes "
        "(median / max over the batch) against 2^K.",
        "",
        "| K | rho | DES single | DES batched | MILP (HiGHS) | brute force | DES nodes med / max | "
        "sets of <= D | 2^K | MILP/DES single | MILP/DES batched | optima agree |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["cases"]:
        agree = row["optimum_matches_milp"] and row["optimum_matches_brute_force"] in (True, None)
        lines.append(
            f"| {row['K']} | {row['rho']} | {_fmt_time(row['des_single_median_s'])} | "
            f"{_fmt_time(row['des_batched_per_instance_s'])} | {_fmt_time(row['milp_median_s'])} | "
            f"{_fmt_time(row['brute_force_median_s'])} | {row['des_nodes_median']:.0f} / "
            f"{row['des_nodes_max']} | {row['subsets_up_to_D']} | {row['two_to_K']:.3g} | "
            f"{row['ratio_milp_over_des_single']:.1f}x | {row['ratio_milp_over_des_batched']:.0f}x | "
            f"{'yes' if agree else 'NO'} |")
    lines += ["", f"Targets: single calls >= 50x HiGHS at K = 32 and 64 and >= 20x at K = 8 in "
              f"every run: {report['target_single_calls']}; batched >= 50x milp_reference at K = 32: "
              f"{report['target_k32_batched_50x']}; faster than milp_reference at every K "
              f"(batched): {report['faster_every_k_batched']}, (single calls): "
              f"{report['faster_every_k_single']}.", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100,
                        help="instances solved one by one with DES and HiGHS per case")
    parser.add_argument("--batch", type=int, default=2000, help="instances in the batched DES call")
    parser.add_argument("--brute", type=int, default=20, help="instances solved by brute force")
    parser.add_argument("--repeats", type=int, default=2, help="runs of the single-call study")
    parser.add_argument("--scale-batch", type=int, default=300,
                        help="instances in the batched call of the scale study")
    parser.add_argument("--scale-single", type=int, default=30,
                        help="single-call instances per case of the scale study")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    load_start = [round(x, 2) for x in os.getloadavg()]

    single = []
    for num_experts in SINGLE_SIZES:
        row = single_call_case(num_experts, args.instances, args.repeats, rng)
        single.append(row)
        for index, run in enumerate(row["runs"], start=1):
            print(f"single K={num_experts:3d} run {index}: des {_fmt_time(run['des_single_median_s'])}, "
                  f"HiGHS {_fmt_time(run['highs_median_s'])} ({run['ratio_highs_over_des']:.1f}x), "
                  f"milp_reference {_fmt_time(run['milp_reference_median_s'])} "
                  f"({run['ratio_milp_reference_over_des']:.1f}x); CPU {run['ratio_highs_over_des_cpu']:.1f}x; alternating "
                  f"{run['ratio_highs_over_des_alternating']:.1f}x", flush=True)

    scale = []
    for num_experts in SCALE_SIZES:
        for depth in SCALE_DEPTHS:
            row = scale_case(num_experts, depth, args.scale_batch, args.scale_single, rng)
            scale.append(row)
            print(f"scale K={num_experts:3d} D={depth}: des {_fmt_time(row['des_single_median_s'])} "
                  f"single, {_fmt_time(row['des_batched_per_instance_s'])} batched; HiGHS "
                  f"{_fmt_time(row['highs_median_s'])}; nodes {row['des_nodes_median']:.0f} / "
                  f"{row['des_nodes_mean']:.1f} / {row['des_nodes_max']}", flush=True)

    cases = []
    for num_experts in SIZES:
        for importance in IMPORTANCES:
            num_brute = args.brute if num_experts <= 32 else max(1, args.brute // 4)
            row = bench_case(num_experts, importance, args.instances,
                             max(args.batch, args.instances), num_brute, rng)
            cases.append(row)
            print(f"K={num_experts:2d} rho={importance}: des {_fmt_time(row['des_single_median_s'])}"
                  f" single, {_fmt_time(row['des_batched_per_instance_s'])} batched; milp "
                  f"{_fmt_time(row['milp_median_s'])}; brute {_fmt_time(row['brute_force_median_s'])};"
                  f" nodes {row['des_nodes_median']:.0f}/{row['des_nodes_max']}; milp/des "
                  f"{row['ratio_milp_over_des_single']:.1f}x single, "
                  f"{row['ratio_milp_over_des_batched']:.0f}x batched", flush=True)
    k32 = [row for row in cases if row["K"] == 32]
    report = {
        "benchmark": "scheduler (P1: des vs scipy.optimize.milp / milp_reference vs brute_force)",
        "seed": args.seed,
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "scipy": scipy.__version__},
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "load_average": load_start,
                    "load_average_end": [round(x, 2) for x in os.getloadavg()]},
        "single": single,
        "scale": scale,
        "growth_exponents": {key: growth_exponents(scale, key) for key in
                             ("des_single_median_s", "des_batched_per_instance_s",
                              "des_nodes_mean", "highs_median_s")},
        "cases": cases,
        "target_single_calls": all(row["target_met_every_run"] for row in single),
        "target_k32_batched_50x": all(row["ratio_milp_over_des_batched"] >= 50 for row in k32),
        "target_k32_single_50x": all(row["ratio_milp_over_des_single"] >= 50 for row in k32),
        "faster_every_k_batched": all(row["ratio_milp_over_des_batched"] > 1 for row in cases),
        "faster_every_k_single": all(row["ratio_milp_over_des_single"] > 1 for row in cases),
        "all_optima_agree": all(row["optimum_matches_milp"]
                                and row["optimum_matches_brute_force"] in (True, None)
                                for row in cases)
                            and all(row["optimum_matches_milp_reference"] for row in single + scale)
                            and all(row["batched_matches_single"] for row in scale),
        "wall_time_s": time.perf_counter() - start,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scheduler.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "scheduler.md").write_text(markdown(report))
    print(f"wrote {args.out / 'scheduler.json'} and {args.out / 'scheduler.md'}")
    return 0 if report["all_optima_agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
