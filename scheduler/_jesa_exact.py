"""Exact joint optimum of P2 for small sizes: a MILP (HiGHS) or enumeration of expert sets."""

import itertools
import time

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linear_sum_assignment, milp

from ._joint import STATUS_INFEASIBLE, STATUS_OPTIMAL, JointProblem, build_result

__all__ = ["jesa_exact"]

# Largest N for the exact deadline enumeration (3^N subset pairs per expert).
_MAX_DEADLINE_SUBCARRIERS = 10


def jesa_exact(problem, method="milp"):
    """Exact joint optimum of P2, one instance at a time (a reference for small sizes).

    Parameters
    ----------
    problem : JointProblem
    method : {"milp", "enumerate"}
        ``"milp"``: binary program over the expert variables ``x_k`` and assignment variables
        ``y[k, n]`` of each phase, solved by HiGHS (``scipy.optimize.milp``); no deadline only,
        where one subcarrier per link is optimal (``docs/jesa.md``).
        ``"enumerate"``: every expert set of size ``1..D`` that reaches ``gamma``, each costed by
        its optimal allocation: the Hungarian algorithm with no deadline, and with a deadline an
        exact dynamic program over subcarrier subsets (``N <= 10``).

    Output
    ------
    JointResult
        As ``jesa``; ``status`` ``"optimal"`` or ``"infeasible"``; ``iterations`` = 1.

    Example
    -------
    >>> import numpy as np
    >>> from dmoe.scheduler import JointProblem, jesa_exact
    >>> rng = np.random.default_rng(2)
    >>> p = JointProblem(relevance=rng.dirichlet(np.ones(5)), rate_dispatch=rng.exponential(1e5, (5, 8)),
    ...                  payload_bits_dispatch=8192, subcarrier_power_w=0.01, max_experts=2, importance=0.9)
    >>> a, b = jesa_exact(p, "milp"), jesa_exact(p, "enumerate")
    >>> bool(np.isclose(a.energy_j, b.energy_j))
    True
    """
    if not isinstance(problem, JointProblem):
        raise TypeError(f"`problem` must be a JointProblem, got {type(problem).__name__}")
    if method not in ("milp", "enumerate"):
        raise ValueError(f"`method` must be 'milp' or 'enumerate', got {method!r}")
    timed = np.isfinite(problem.deadline_dispatch_s) | np.isfinite(problem.deadline_return_s)
    if method == "milp" and np.any(timed):
        raise ValueError("`method`='milp' has no deadline model; use method='enumerate' with `deadline_s`")
    if method == "enumerate" and np.any(timed) and problem.num_subcarriers > _MAX_DEADLINE_SUBCARRIERS:
        raise ValueError(
            f"exact enumeration with a deadline needs N <= {_MAX_DEADLINE_SUBCARRIERS}, "
            f"got N = {problem.num_subcarriers}"
        )
    start = time.perf_counter()
    batch_shape = problem.batch_shape
    num = int(np.prod(batch_shape, dtype=np.int64))
    flat = problem._flat()
    k, n = flat.num_experts, flat.num_subcarriers
    selected = np.zeros((num, k), dtype=bool)
    dispatch = np.zeros((num, k, n), dtype=bool)
    returned = np.zeros((num, k, n), dtype=bool)
    status = np.full(num, STATUS_OPTIMAL, dtype="<U16")
    solve = _solve_milp if method == "milp" else _solve_enumerate
    for index in range(num):
        found = solve(flat, index)
        if found is None:
            status[index] = STATUS_INFEASIBLE
            continue
        selected[index], masks = found
        dispatch[index] = masks[0]
        if flat.has_return:
            returned[index] = masks[1]
    energy = flat.energy_j(selected, dispatch, returned if flat.has_return else None)
    energy = np.where(status == STATUS_OPTIMAL, energy, np.inf)
    return build_result(
        flat, selected, dispatch, returned, np.ones(num, dtype=np.int64), status,
        time.perf_counter() - start, energy[:, None], batch_shape,
    )


def _phase_costs(problem, index):
    """Single-subcarrier link energies of each phase, [K, N] (inf on a zero rate)."""
    power = problem.subcarrier_power_w[index]
    out = []
    for rate, bits, _ in problem.phases():
        r = rate[index]
        with np.errstate(divide="ignore"):
            out.append(np.where(r > 0, (power * bits[index])[:, None] / np.where(r > 0, r, 1.0), np.inf))
    return out


def _solve_milp(problem, index):
    k = problem.num_experts
    costs = _phase_costs(problem, index)
    n = costs[0].shape[1]
    compute = problem.compute_energy_j[index]
    finite_values = np.concatenate([c[np.isfinite(c)] for c in costs] + [compute])
    positive = finite_values[finite_values > 0]
    # Scale so the smallest cost is 1: HiGHS's absolute MIP gap (1e-6) then stays negligible
    # against the optimum, which it would not be with costs in joules (~1e-3).
    scale = positive.min() if positive.size else 1.0
    # Variables: x [K], then y [K * N] per phase (row-major k, n).
    objective = [compute / scale]
    upper = [np.ones(k)]
    for cost in costs:
        finite = np.isfinite(cost)
        objective.append(np.where(finite, cost / scale, 0.0).ravel())
        upper.append(finite.astype(float).ravel())  # a dead subcarrier is fixed to 0
    objective = np.concatenate(objective)
    upper = np.concatenate(upper)
    num_vars = objective.size

    blocks, lower_b, upper_b = [], [], []
    x_part = sparse.hstack([sparse.identity(k), sparse.csr_matrix((k, num_vars - k))])
    for phase in range(len(costs)):
        offset = k + phase * k * n
        # sum_n y[k, n] = x_k: one subcarrier per selected link, none otherwise.
        link = sparse.lil_matrix((k, num_vars))
        for e in range(k):
            link[e, offset + e * n : offset + (e + 1) * n] = 1.0
        blocks.append(link.tocsr() - x_part)
        lower_b.append(np.zeros(k))
        upper_b.append(np.zeros(k))
        # sum_k y[k, n] <= 1: subcarriers disjoint within the phase.
        cols = offset + np.arange(k * n)
        rows = np.tile(np.arange(n), k)
        blocks.append(sparse.csr_matrix((np.ones(k * n), (rows, cols)), shape=(n, num_vars)))
        lower_b.append(np.full(n, -np.inf))
        upper_b.append(np.ones(n))
    relevance_row = np.zeros(num_vars)
    relevance_row[:k] = problem.relevance[index]
    count_row = np.zeros(num_vars)
    count_row[:k] = 1.0
    blocks.append(sparse.csr_matrix(np.vstack([relevance_row, count_row])))
    # Same slack on gamma as P1 and JointProblem.energy_j, so all agree on feasibility.
    need = problem.gamma[index] - problem.gamma_tolerance[index]
    lower_b.append(np.array([need, 1.0]))
    upper_b.append(np.array([np.inf, float(min(problem.max_experts, k))]))

    constraint = LinearConstraint(sparse.vstack(blocks).tocsr(), np.concatenate(lower_b), np.concatenate(upper_b))
    result = milp(
        objective, constraints=constraint, integrality=np.ones(num_vars),
        bounds=Bounds(np.zeros(num_vars), upper), options={"mip_rel_gap": 1e-9},
    )
    if result.status != 0 or result.x is None:
        return None
    solution = np.round(result.x).astype(bool)
    selected = solution[:k]
    masks = [solution[k + p * k * n : k + (p + 1) * k * n].reshape(k, n) for p in range(len(costs))]
    return selected, masks


def _solve_enumerate(problem, index):
    k = problem.num_experts
    relevance = problem.relevance[index]
    need = problem.gamma[index] - problem.gamma_tolerance[index]
    compute = problem.compute_energy_j[index]
    power = problem.subcarrier_power_w[index]
    costs = _phase_costs(problem, index)
    best, best_energy = None, np.inf
    for size in range(1, min(problem.max_experts, k) + 1):
        for subset in itertools.combinations(range(k), size):
            experts = np.array(subset)
            if relevance[experts].sum() < need:
                continue
            total, masks = compute[experts].sum(), []
            for (rate, bits, deadline), cost in zip(problem.phases(), costs):
                if np.isfinite(deadline[index]):
                    energy, mask = _subset_dp(rate[index], bits[index], power, deadline[index], experts)
                else:
                    energy, mask = _hungarian(cost, experts)
                total += energy
                masks.append(mask)
                if not np.isfinite(total):
                    break
            if total < best_energy:
                selected = np.zeros(k, dtype=bool)
                selected[experts] = True
                best, best_energy = (selected, masks), total
    return best


def _hungarian(cost, experts):
    """Optimal one-subcarrier-per-link assignment of ``experts`` (exact with no deadline)."""
    k, n = cost.shape
    mask = np.zeros((k, n), dtype=bool)
    if experts.size > n:
        return np.inf, mask
    block = cost[experts]
    finite = np.isfinite(block)
    if not finite.any():
        return np.inf, mask
    big = (block[finite].max() + 1.0) * (experts.size + 1)
    row, col = linear_sum_assignment(np.where(finite, block, big))
    if not np.all(finite[row, col]):
        return np.inf, mask
    mask[experts[row], col] = True
    return float(block[row, col].sum()), mask


_PAIRS = {}


def _subset_pairs(n):
    """All (mask, submask) pairs over n subcarriers: two int arrays of length 3^n."""
    if n not in _PAIRS:
        digits = np.array(list(itertools.product(range(3), repeat=n)), dtype=np.int64).reshape(-1, n)
        weights = 1 << np.arange(n, dtype=np.int64)
        _PAIRS[n] = ((digits >= 1) @ weights, (digits == 2) @ weights)
    return _PAIRS[n]


def _subset_dp(rate, bits, power, deadline, experts):
    """Exact minimum energy of disjoint subcarrier sets meeting the deadline for ``experts``.

    F_j(M) = min over S subset of M of e_j(S) + F_{j+1}(M minus S), with e_j(S) the energy of
    link j on set S (inf when empty or too slow) and F past the last expert 0.
    """
    k, n = rate.shape
    full = (1 << n) - 1
    members = ((np.arange(1 << n)[:, None] >> np.arange(n)) & 1).astype(bool)  # [2^n, n]
    count = members.sum(axis=1)
    pair_mask, pair_sub = _subset_pairs(n)
    link_energy = []
    for e in experts:
        rate_sum = members @ rate[e]
        with np.errstate(divide="ignore", invalid="ignore"):
            energy = power[e] * count * bits[e] / rate_sum
        usable = (count > 0) & (rate_sum > 0) & (rate_sum >= bits[e] / deadline)
        link_energy.append(np.where(usable, energy, np.inf))
    tables = [np.zeros(1 << n)]
    for energy in reversed(link_energy):
        values = energy[pair_sub] + tables[0][pair_mask ^ pair_sub]
        table = np.full(1 << n, np.inf)
        np.minimum.at(table, pair_mask, values)
        tables.insert(0, table)
    mask = np.zeros((k, n), dtype=bool)
    if not np.isfinite(tables[0][full]):
        return np.inf, mask
    remaining = full
    for j, e in enumerate(experts):
        candidates_of = pair_mask == remaining
        subs = pair_sub[candidates_of]
        values = link_energy[j][subs] + tables[j + 1][remaining ^ subs]
        chosen = subs[np.argmin(values)]
        mask[e] = members[chosen]
        remaining ^= chosen
    return float(tables[0][full]), mask
