r"""Schemes: how each compared policy turns one layer's relevance and CSI into a decision.

Every scheme sees the same :class:`~dmoe.scheduler.JointProblem` (relevance, planning rates of
both phases from the scheduler's CSI view, payloads, power, D, rho) and returns a
:class:`Decision`: the expert set and the subcarriers of every selected dispatch and return link.

Schemes that only choose experts (``des``, ``top_k``, ``top_1``, ``top_2``, ``channel_only``,
``random``, ``weighted_sum``, ``wlr``: WDMoE-style relevance over best-link latency) all get their subcarriers by one rule: the energy-optimal
assignment of one subcarrier per selected link and phase for that set (Hungarian algorithm on
``P_sc B / r[k, n]``; ``docs/cosim.md``, "Subcarriers of selection-only schemes"). Their P1 costs
are each expert's *best-subcarrier* energy ``min_n E_d[k, n] + min_n E_u[k, n] + E_c``, which is
exactly the decoupled cost on which JESA starts. ``jesa`` and ``optimal`` choose both jointly;
``des_random_subcarriers`` draws disjoint random subcarriers first and lets DES pick on them.
``optimal`` is the exact P2 optimum (``jesa_exact``: enumeration of the expert sets with the
Hungarian algorithm inside while there are at most 5000 sets, the HiGHS MILP beyond).
"""

import math
import time
from dataclasses import dataclass

import numpy as np

__all__ = ["Decision", "decide", "link_energy_airtime"]

# `optimal` enumerates expert sets up to this many, and solves the MILP beyond.
_MAX_ENUMERATED_SETS = 5000


@dataclass(frozen=True)
class Decision:
    """One scheme's decision for a batch of tokens at one layer.

    Attributes
    ----------
    selected : [T, K], bool
        Experts chosen for each token.
    dispatch, returned : [T, K, N], bool
        Subcarriers of each selected expert's dispatch and return link.
    nodes : [T], float64
        Branch-and-bound nodes explored (NaN where the scheme does not search).
    iterations : [T], float64
        JESA rounds (NaN for other schemes).
    solver_time_s : float
        Wall time of the whole decision (selection and subcarrier assignment).
    """

    selected: np.ndarray
    dispatch: np.ndarray
    returned: np.ndarray
    nodes: np.ndarray
    iterations: np.ndarray
    solver_time_s: float


def link_energy_airtime(rate, mask, payload_bits, power_w):
    r"""Energy and airtime of every link on its subcarrier set (MODEL.md, "Rates, energy").

    Input
    -----
    rate : [T, K, N], float64
        Planning rate in bit/s.
    mask : [T, K, N], bool
        Subcarriers of each link.
    payload_bits : float
    power_w : float
        Power per subcarrier P_sc.

    Output
    ------
    energy_j, airtime_s : [T, K], float64
        ``P_sc |N_k| B / sum_n r`` and ``B / sum_n r``; 0 for a link without subcarriers.
    """
    rate_sum = np.where(mask, rate, 0.0).sum(axis=-1)
    count = mask.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        airtime = np.where(count > 0, payload_bits / np.where(rate_sum > 0, rate_sum, 1.0), 0.0)
    return power_w * count * airtime, airtime


def _best_costs(problem):
    """Decoupled per-expert cost: best dispatch + best return subcarrier energy + compute [T, K]."""
    cost = problem.compute_energy_j.copy()
    for rate, bits, _ in problem.phases():
        cost = cost + (problem.subcarrier_power_w * bits) / rate.max(axis=-1)
    return cost


def _best_latency(problem, compute_time_s):
    latency = np.full(problem.relevance.shape, float(compute_time_s))
    for rate, bits, _ in problem.phases():
        latency = latency + bits / rate.max(axis=-1)
    return latency


def _joint_api():
    """JESA, its exact reference, DES with random subcarriers and the Hungarian allocation.

    ``allocate_subcarriers`` (the optimal subcarriers for a given set) is the one rule every
    selection-only scheme is realised with.
    """
    from dmoe.scheduler import allocate_subcarriers, des_random_subcarriers, jesa, jesa_exact
    return jesa, jesa_exact, des_random_subcarriers, allocate_subcarriers


def _from_joint(result, num):
    nan = np.full(num, np.nan)
    return (np.asarray(result.selected, bool), np.asarray(result.dispatch, bool),
            np.asarray(result.returned, bool), nan,
            np.asarray(result.iterations, dtype=np.float64))


def decide(scheme, problem, *, top_k=None, weighted_sum_lambda=0.5, compute_time_s=0.0,
           rng=None):
    r"""Run one scheme on a batch of one-layer problems.

    Parameters
    ----------
    scheme : str
        A name of :data:`dmoe.cosim.config.SCHEMES` (``*_layerwise`` names are the base scheme:
        the caller puts the layer's rho into ``problem``).
    problem : dmoe.scheduler.JointProblem
        Batch shape ``[T]``, with a return phase; all planning rates > 0.
    top_k : int or None
        k of ``top_k`` (default: ``problem.max_experts``).
    weighted_sum_lambda : float
        lambda of ``weighted_sum``.
    compute_time_s : float
        Compute time per expert (``wlr`` ranks by latency).
    rng : numpy.random.Generator
        Randomness of ``random`` and ``des_random_subcarriers``.

    Output
    ------
    decision : Decision
    """
    from dmoe import scheduler
    jesa, jesa_exact, des_random_subcarriers, allocate = _joint_api()

    num = problem.relevance.shape[0]
    base = scheme.removesuffix("_layerwise")
    start = time.perf_counter()
    nodes = np.full(num, np.nan)
    iterations = np.full(num, np.nan)
    if base in ("jesa", "optimal", "des_random_subcarriers"):
        if base == "jesa":
            result = jesa(problem)
        elif base == "optimal":
            # Both methods are exact; enumerating the expert sets (Hungarian inside) is ~100x
            # faster than the MILP while the sets are few.
            sets = sum(math.comb(problem.num_experts, d)
                       for d in range(1, min(problem.max_experts, problem.num_experts) + 1))
            result = jesa_exact(problem, method="enumerate" if sets <= _MAX_ENUMERATED_SETS
                                else "milp")
        else:
            result = des_random_subcarriers(problem, rng)
        selected, dispatch, returned, nodes, iterations = _from_joint(result, num)
        if base != "jesa":
            iterations = np.full(num, np.nan)
    else:
        p1 = scheduler.SelectionProblem(
            relevance=problem.relevance, cost=_best_costs(problem),
            max_experts=min(problem.max_experts, problem.num_experts),
            importance=problem.importance)
        if base == "des":
            result = scheduler.des(p1)
            nodes = np.asarray(result.nodes, dtype=np.float64)
        elif base in ("top_k", "top_1", "top_2"):
            k = {"top_1": 1, "top_2": 2}.get(base, top_k or problem.max_experts)
            result = scheduler.top_k(p1, min(k, problem.num_experts))
        elif base == "channel_only":
            result = scheduler.channel_only(p1)
        elif base == "random":
            result = scheduler.random_selection(p1, rng)
        elif base == "weighted_sum":
            result = scheduler.weighted_sum(p1, weighted_sum_lambda)
        elif base == "wlr":
            result = scheduler.wlr(p1, latency=_best_latency(problem, compute_time_s))
        else:
            raise ValueError(f"scheme must be one of dmoe.cosim.SCHEMES, got {scheme!r}")
        selected = np.asarray(result.selected, dtype=bool)
        dispatch, returned, _ = allocate(problem, selected)
    return Decision(selected=selected, dispatch=dispatch, returned=returned, nodes=nodes,
                    iterations=iterations, solver_time_s=time.perf_counter() - start)
