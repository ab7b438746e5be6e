"""Exact references for P1: exhaustive enumeration and scipy's MILP solver (HiGHS).

They are slow by design and serve as independent checks of :func:`dmoe.scheduler.des`
(``docs/scheduler.md``, "References").
"""

from functools import lru_cache
from itertools import combinations
import math
import time

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_array

from ._problem import STATUS_INFEASIBLE, STATUS_NODE_LIMIT, STATUS_OPTIMAL, SelectionProblem, _check_problem, _finish

__all__ = ["brute_force", "milp_reference"]

# Refuse enumerations larger than this many subsets per instance.
MAX_SUBSETS = 2_000_000


@lru_cache(maxsize=32)
def _subsets(num_experts, size):
    """All ``size``-subsets of ``range(num_experts)`` as an int array ``[n, size]``."""
    return np.array(list(combinations(range(num_experts), size)), dtype=np.intp).reshape(-1, size)


def brute_force(problem):
    r"""Solve P1 by enumerating every set of 1..D experts.

    Parameters
    ----------
    problem : SelectionProblem
        Batch of P1 instances, relevance and cost ``[..., K]``; at most
        ``MAX_SUBSETS`` = 2e6 subsets per instance (e.g. K = 64, D = 4 is 6.8e5).

    Output
    ------
    result : SelectionResult
        ``selected [..., K]`` (the cheapest feasible set; ties: the first in enumeration order),
        ``cost [...]`` (``inf`` if infeasible), ``nodes [...]`` (subsets evaluated),
        ``status`` ``"optimal"`` or ``"infeasible"``.

    Raises
    ------
    ValueError
        If the number of subsets exceeds ``MAX_SUBSETS``.

    Example
    -------
    >>> from dmoe.scheduler import SelectionProblem, brute_force
    >>> r = brute_force(SelectionProblem([0.5, 0.3, 0.2], [3.0, 1.0, 1.0], 2, importance=0.9))
    >>> float(r.cost)
    4.0
    """
    start_time = time.perf_counter()
    _check_problem(problem)
    relevance, cost, requirement, tolerance = problem._flat()
    num_instances, num_experts = relevance.shape
    max_experts = problem.effective_max_experts
    total = sum(math.comb(num_experts, m) for m in range(1, max_experts + 1))
    if total > MAX_SUBSETS:
        raise ValueError(f"brute_force: K = {num_experts}, D = {max_experts} gives {total} subsets "
                         f"per instance, more than MAX_SUBSETS = {MAX_SUBSETS}")
    need = requirement - tolerance
    best = np.full(num_instances, np.inf)
    best_size = np.zeros(num_instances, dtype=np.intp)
    best_index = np.zeros(num_instances, dtype=np.intp)
    for size in range(1, max_experts + 1):
        subsets = _subsets(num_experts, size)                        # [n, size]
        for b in range(num_instances):
            subset_rel = relevance[b, subsets].sum(axis=1)
            subset_cost = np.where(subset_rel >= need[b], cost[b, subsets].sum(axis=1), np.inf)
            k = int(np.argmin(subset_cost))
            if subset_cost[k] < best[b]:
                best[b], best_size[b], best_index[b] = subset_cost[k], size, k
    selected = np.zeros((num_instances, num_experts), dtype=bool)
    found = np.isfinite(best)
    for b in np.flatnonzero(found):
        selected[b, _subsets(num_experts, best_size[b])[best_index[b]]] = True
    status = np.where(found, STATUS_OPTIMAL, STATUS_INFEASIBLE)
    nodes = np.full(num_instances, total, dtype=np.int64)
    return _finish(problem, selected, status, nodes, start_time, "brute_force", exact=True)


def milp_reference(problem, *, time_limit_s=None):
    r"""Solve P1 with scipy's mixed-integer solver (``scipy.optimize.milp``, HiGHS), one call per instance.

    Relevance is scaled by the top-D relevance and cost by the largest cost before the call, so
    HiGHS' absolute tolerances (1e-6) act relative to the instance. ``mip_rel_gap`` is 0. A set
    that HiGHS accepts within its feasibility tolerance but that misses the exact requirement
    is cut off with a no-good constraint and the MILP solved again.

    Parameters
    ----------
    problem : SelectionProblem
        Batch of P1 instances, relevance and cost ``[..., K]``.
    time_limit_s : float, optional
        HiGHS time limit per instance; an instance that hits it gets ``status = "node_limit"``.

    Output
    ------
    result : SelectionResult
        ``selected [..., K]``, ``cost [...]`` (``inf`` if infeasible), ``nodes [...]``
        (HiGHS branch-and-bound nodes, summed over re-solves), ``status``.

    Example
    -------
    >>> from dmoe.scheduler import SelectionProblem, milp_reference
    >>> r = milp_reference(SelectionProblem([0.5, 0.3, 0.2], [3.0, 1.0, 1.0], 2, importance=0.9))
    >>> float(r.cost)
    4.0
    """
    start_time = time.perf_counter()
    _check_problem(problem)
    relevance, cost, requirement, tolerance = problem._flat()
    num_instances, num_experts = relevance.shape
    max_experts = problem.effective_max_experts
    need = requirement - tolerance
    top = problem.top_relevance.reshape(-1)
    options = {"mip_rel_gap": 0.0}
    if time_limit_s is not None:
        options["time_limit"] = float(time_limit_s)

    selected = np.zeros((num_instances, num_experts), dtype=bool)
    status = np.full(num_instances, STATUS_OPTIMAL, dtype="<U10")
    nodes = np.zeros(num_instances, dtype=np.int64)
    for b in range(num_instances):
        if top[b] < need[b]:
            status[b] = STATUS_INFEASIBLE
            continue
        g_scale = top[b] if top[b] > 0 else 1.0
        c_max = cost[b].max()
        c_scale = c_max if c_max > 0 else 1.0
        rows = [relevance[b] / g_scale, np.ones(num_experts)]
        lower = [need[b] / g_scale, 1.0]
        upper = [np.inf, float(max_experts)]
        for _ in range(num_experts + 2):
            constraints = LinearConstraint(csr_array(np.array(rows)), lower, upper)
            res = milp(cost[b] / c_scale, integrality=np.ones(num_experts), bounds=Bounds(0, 1),
                       constraints=constraints, options=options)
            nodes[b] += int(getattr(res, "mip_node_count", 0) or 0)
            if res.x is None:
                status[b] = STATUS_INFEASIBLE if res.status == 2 else STATUS_NODE_LIMIT
                break
            chosen = res.x > 0.5
            if relevance[b, chosen].sum() >= need[b]:
                selected[b] = chosen
                if res.status != 0:
                    status[b] = STATUS_NODE_LIMIT
                break
            # Accepted only within HiGHS' tolerance: forbid exactly this set and solve again.
            rows.append(np.where(chosen, 1.0, -1.0))
            lower.append(-np.inf)
            upper.append(float(chosen.sum()) - 1.0)
        else:
            status[b] = STATUS_NODE_LIMIT
    return _finish(problem, selected, status, nodes, start_time, "milp_reference", exact=True)
