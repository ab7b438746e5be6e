"""DES, Dynamic Expert Selection: exact branch and bound for P1, vectorised over instances.

See ``docs/scheduler.md`` ("DES") for the bound, the pruning rules and the complexity.
"""

import time

import numpy as np

from ._problem import (STATUS_INFEASIBLE, STATUS_NODE_LIMIT, STATUS_OPTIMAL, SelectionProblem,
                       _finish)

__all__ = ["des"]

# A node is pruned when its bound reaches the incumbent minus this fraction of the instance's
# cost scale: equal-cost alternatives are not explored, and rounding in the bound cannot cut
# off a strictly better set (docs/scheduler.md, "Tolerances").
_PRUNE_RTOL = 1e-12
# Instances solved in lockstep per block: bounds the memory of the suffix tables.
_BLOCK = 4096
# Kelley iterations of the Lagrangian bound before giving up on pruning (never reached in
# practice: the dual function has at most O(K D) pieces and each iteration removes one).
_MAX_DUAL_ITERATIONS = 64


def des(problem, *, max_nodes=None):
    r"""Solve P1 exactly by DES (branch and bound with the linear-relaxation bound).

    All instances of the batch are searched in lockstep: every step expands one node of every
    unfinished instance with numpy operations over the instances (``docs/scheduler.md``, "DES").

    Parameters
    ----------
    problem : SelectionProblem
        Batch of P1 instances, relevance and cost ``[..., K]``.
    max_nodes : int, optional
        Stop an instance after this many nodes and return its best set so far with
        ``status = "node_limit"``. ``None`` (default) searches to optimality.

    Output
    ------
    result : SelectionResult
        ``selected [..., K] bool`` (an optimal set), ``cost [...]`` (``inf`` if infeasible),
        ``feasible [...]``, ``nodes [...]`` (branch-and-bound nodes explored, ``0`` for instances
        settled without search: ``gamma <= 0`` or infeasible), ``status [...]``
        (``"optimal"`` / ``"infeasible"`` / ``"node_limit"``), ``solve_time_s``.

    Example
    -------
    >>> import numpy as np
    >>> from dmoe.scheduler import SelectionProblem, des
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.normal(size=(1000, 32))
    >>> relevance = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    >>> p = SelectionProblem(relevance, rng.exponential(size=(1000, 32)), max_experts=4,
    ...                      importance=0.9)
    >>> r = des(p)
    >>> r.selected.shape, bool(r.feasible.all())
    ((1000, 32), True)
    """
    start_time = time.perf_counter()
    if not isinstance(problem, SelectionProblem):
        raise TypeError(f"problem must be a SelectionProblem, got {type(problem).__name__}")
    if max_nodes is not None and (int(max_nodes) != max_nodes or max_nodes < 1):
        raise ValueError(f"max_nodes must be a positive integer or None, got {max_nodes!r}")

    relevance, cost, requirement, tolerance = problem._flat()
    num_instances, num_experts = relevance.shape
    max_experts = problem.effective_max_experts
    need = requirement - tolerance                      # the search's requirement gamma'
    top = problem.top_relevance.reshape(-1)

    selected = np.zeros((num_instances, num_experts), dtype=bool)
    nodes = np.zeros(num_instances, dtype=np.int64)
    status = np.full(num_instances, STATUS_OPTIMAL, dtype="<U10")

    infeasible = top < need
    status[infeasible] = STATUS_INFEASIBLE
    # gamma' <= 0: every non-empty set meets the requirement; costs are >= 0, so the cheapest
    # single expert is optimal.
    trivial = ~infeasible & (need <= 0)
    rows = np.flatnonzero(trivial)
    selected[rows, np.argmin(cost[rows], axis=1)] = True

    hard = np.flatnonzero(~infeasible & ~trivial)
    for start in range(0, hard.size, _BLOCK):
        rows = hard[start:start + _BLOCK]
        block_selected, block_nodes, block_limited = _branch_and_bound(
            relevance[rows], cost[rows], need[rows], max_experts, max_nodes)
        selected[rows] = block_selected
        nodes[rows] = block_nodes
        status[rows[block_limited]] = STATUS_NODE_LIMIT
    return _finish(problem, selected, status, nodes, start_time, "des", exact=True)


def _suffix_best(key_primary, key_secondary, relevance, cost, valid, depth):
    """Relevance and cost sums of the best ``m`` items of every suffix, ``m = 0..depth``.

    Items are ranked by ``key_primary`` (descending), ties by ``key_secondary`` (descending);
    only ``valid`` items count. Returns ``relevance_sum, cost_sum`` of shape
    ``[B, K + 1, depth + 1]``: entry ``[b, i, m]`` sums the best ``min(m, #valid in i..K-1)``
    items of positions ``i..K-1``.
    """
    num_instances, num_experts = relevance.shape
    rows = np.arange(num_instances)[:, None]
    slots = np.arange(depth)[None, :]
    keep_p = np.full((num_instances, depth), -np.inf)
    keep_s = np.full((num_instances, depth), -np.inf)
    keep_g = np.zeros((num_instances, depth))
    keep_c = np.zeros((num_instances, depth))
    relevance_sum = np.zeros((num_instances, num_experts + 1, depth + 1))
    cost_sum = np.zeros((num_instances, num_experts + 1, depth + 1))
    for position in range(num_experts - 1, -1, -1):
        new_p = np.where(valid[:, position], key_primary[:, position], -np.inf)[:, None]
        new_s = key_secondary[:, position][:, None]
        beats = (keep_p > new_p) | ((keep_p == new_p) & (keep_s >= new_s))
        rank = beats.sum(axis=1, keepdims=True)      # insertion slot of the new item
        shifted = np.maximum(slots - 1, 0)
        for array, new in ((keep_p, new_p), (keep_s, new_s),
                           (keep_g, relevance[:, position][:, None]),
                           (keep_c, cost[:, position][:, None])):
            moved = array[rows, shifted]
            array[...] = np.where(slots < rank, array, np.where(slots == rank, new, moved))
        present = np.isfinite(keep_p)
        relevance_sum[:, position, 1:] = np.cumsum(np.where(present, keep_g, 0.0), axis=1)
        cost_sum[:, position, 1:] = np.cumsum(np.where(present, keep_c, 0.0), axis=1)
    return relevance_sum, cost_sum


class _Tables:
    """Per-instance data of one block, experts sorted by cost per unit relevance."""

    def __init__(self, relevance, cost, need, max_experts):
        num_instances, num_experts = relevance.shape
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(relevance > 0, cost / relevance, np.inf)
        # Ratio ascending, ties by larger relevance; zero-relevance experts go last and are
        # never branched on (with gamma' > 0 they only add cost and use up the cardinality).
        self.order = np.lexsort((-relevance, ratio), axis=1)
        self.g = np.take_along_axis(relevance, self.order, axis=1)
        self.c = np.take_along_axis(cost, self.order, axis=1)
        self.useful = np.count_nonzero(relevance > 0, axis=1)
        valid = self.g > 0
        zero = np.zeros((num_instances, 1))
        self.prefix_g = np.concatenate([zero, np.cumsum(self.g, axis=1)], axis=1)
        self.prefix_c = np.concatenate([zero, np.cumsum(self.c, axis=1)], axis=1)
        # Most relevant m of every suffix (ties: cheaper): feasibility prune and the
        # lambda -> inf end of the dual function.
        self.top_g, self.top_c = _suffix_best(self.g, -self.c, self.g, self.c, valid, max_experts)
        # Cheapest m of every suffix (ties: more relevant): cardinality bound and lambda = 0.
        self.cheap_g, self.cheap_c = _suffix_best(-self.c, self.g, self.g, self.c, valid,
                                                   max_experts)
        self.need = need
        self.max_experts = max_experts
        self.scale = _PRUNE_RTOL * np.maximum(
            np.sort(cost, axis=1)[:, ::-1][:, :max_experts].sum(axis=1), np.finfo(float).tiny)


def _branch_and_bound(relevance, cost, need, max_experts, max_nodes):
    """Lockstep depth-first branch and bound over one block ``[B, K]`` with ``need > 0``."""
    num_instances, num_experts = relevance.shape
    t = _Tables(relevance, cost, need, max_experts)
    positions = np.arange(num_experts)
    everyone = np.arange(num_instances)

    best = np.full(num_instances, np.inf)
    best_set = np.zeros((num_instances, num_experts), dtype=bool)   # in sorted positions
    _incumbents(t, best, best_set)

    # DFS stack per instance. A node: next position i, cost / relevance / size of the experts
    # taken so far, and the decision on position i - 1 (path[i - 1]).
    depth = num_experts + 2
    stack_i = np.zeros((num_instances, depth), dtype=np.int64)
    stack_cost = np.zeros((num_instances, depth))
    stack_rel = np.zeros((num_instances, depth))
    stack_size = np.zeros((num_instances, depth), dtype=np.int64)
    stack_take = np.zeros((num_instances, depth), dtype=bool)
    pointer = np.ones(num_instances, dtype=np.int64)               # root pushed: all zeros
    path = np.zeros((num_instances, num_experts), dtype=bool)
    nodes = np.zeros(num_instances, dtype=np.int64)
    limited = np.zeros(num_instances, dtype=bool)

    active = everyone
    while active.size:
        if max_nodes is not None:
            over = nodes[active] >= max_nodes
            limited[active[over]] = True
            pointer[active[over]] = 0
            active = active[~over]
            if not active.size:
                break
        top = pointer[active] - 1
        pointer[active] = top
        i = stack_i[active, top]
        taken_cost = stack_cost[active, top]
        taken_rel = stack_rel[active, top]
        taken_size = stack_size[active, top]
        has_parent = i > 0
        path[active[has_parent], i[has_parent] - 1] = stack_take[active, top][has_parent]
        nodes[active] += 1

        remaining = t.need[active] - taken_rel
        # The requirement is met: a leaf (adding experts only adds cost).
        leaf = remaining <= 0
        better = leaf & (taken_cost < best[active])
        if better.any():
            b = active[better]
            best[b] = taken_cost[better]
            best_set[b] = path[b] & (positions[None, :] < i[better][:, None])

        open_ = ~leaf
        slots = max_experts - taken_size
        open_ &= (slots > 0) & (i < t.useful[active])
        # Feasibility prune: even the `slots` most relevant remaining experts fall short.
        reach = t.top_g[active, i]                                   # [n, D + 1]
        open_ &= reach[np.arange(active.size), slots] >= remaining
        a = active[open_]
        i, taken_cost, taken_rel, taken_size = (i[open_], taken_cost[open_], taken_rel[open_],
                                                taken_size[open_])
        branch = _bound_allows_branching(t, a, i, taken_cost, remaining[open_], slots[open_],
                                         reach[open_], best, best_set, path, positions)
        a, i = a[branch], i[branch]
        taken_cost, taken_rel, taken_size = taken_cost[branch], taken_rel[branch], taken_size[branch]
        # Push "exclude i", then "include i" on top (explored first).
        p = pointer[a]
        stack_i[a, p] = i + 1
        stack_cost[a, p] = taken_cost
        stack_rel[a, p] = taken_rel
        stack_size[a, p] = taken_size
        stack_take[a, p] = False
        stack_i[a, p + 1] = i + 1
        stack_cost[a, p + 1] = taken_cost + t.c[a, i]
        stack_rel[a, p + 1] = taken_rel + t.g[a, i]
        stack_size[a, p + 1] = taken_size + 1
        stack_take[a, p + 1] = True
        pointer[a] = p + 2
        active = active[pointer[active] > 0]

    selected = np.zeros_like(best_set)
    np.put_along_axis(selected, t.order, best_set, axis=1)
    return selected, nodes, limited


def _incumbents(t, best, best_set):
    """Starting incumbents: the ratio-greedy prefix (if it fits in D) and the Top-D prefix."""
    num_instances, num_experts = t.g.shape
    positions = np.arange(num_experts)[None, :]
    # Greedy: positions 0..r where r is the first prefix meeting the requirement.
    last = np.minimum(np.count_nonzero(t.prefix_g[:, 1:] < t.need[:, None], axis=1),
                      num_experts - 1)
    cost = t.prefix_c[np.arange(num_instances), last + 1]
    fits = (last + 1 <= t.max_experts) & (t.prefix_g[np.arange(num_instances), last + 1]
                                          >= t.need)
    use = fits & (cost < best)
    best[use] = cost[use]
    best_set[use] = positions <= last[use][:, None]
    # Top-D: most relevant first (ties: cheaper), stopped as soon as the requirement is met.
    by_relevance = np.lexsort((t.c, -t.g), axis=1)
    g_sorted = np.take_along_axis(t.g, by_relevance, axis=1)
    c_sorted = np.take_along_axis(t.c, by_relevance, axis=1)
    count = np.minimum(np.count_nonzero(np.cumsum(g_sorted, axis=1) < t.need[:, None], axis=1)
                       + 1, t.max_experts)
    chosen = positions < count[:, None]
    cost = np.where(chosen, c_sorted, 0.0).sum(axis=1)
    meets = np.where(chosen, g_sorted, 0.0).sum(axis=1) >= t.need
    use = meets & (cost < best)
    best[use] = cost[use]
    mask = np.zeros_like(best_set[use])
    np.put_along_axis(mask, by_relevance[use], chosen[use], axis=1)
    best_set[use] = mask


def _bound_allows_branching(t, a, i, taken_cost, remaining, slots, reach, best, best_set, path,
                            positions):
    """Bound the open nodes; returns a bool mask of the nodes whose bound beats the incumbent.

    Also turns the rounded-up greedy completion of a node into an incumbent when it fits.
    ``a`` [n] instance indices, ``i`` [n] next position, ``remaining`` [n] relevance still
    needed (> 0), ``slots`` [n] experts still allowed (>= 1), ``reach`` [n, D + 1] relevance of
    the m most relevant remaining experts.
    """
    n = a.size
    if n == 0:
        return np.zeros(0, dtype=bool)
    row = np.arange(n)
    # Fewest experts that can still meet the requirement (a valid cut: m_min <= |T| <= slots).
    fewest = 1 + np.count_nonzero(reach[:, 1:] < remaining[:, None], axis=1)
    # Cardinality bound: the `fewest` cheapest remaining experts.
    card_bound = taken_cost + t.cheap_c[a, i, fewest]
    # Fractional-knapsack bound (LP without the cardinality row): ratio-greedy from i, the
    # critical item `crit` taken fractionally.
    prefix_g = t.prefix_g[a]
    base_g = prefix_g[row, i]
    crit = np.count_nonzero(prefix_g[:, 1:] < (base_g + remaining)[:, None], axis=1)
    crit = np.minimum(crit, t.useful[a] - 1)
    got_g = prefix_g[row, crit] - base_g
    got_c = t.prefix_c[a, crit] - t.prefix_c[a, i]
    crit_g, crit_c = t.g[a, crit], t.c[a, crit]
    fraction = np.clip((remaining - got_g) / crit_g, 0.0, 1.0)
    knap_bound = taken_cost + got_c + crit_c * fraction

    # Rounded-up greedy completion i..crit is a feasible set when it fits in the slots.
    whole = crit - i + 1
    complete = (whole <= slots) & (prefix_g[row, crit + 1] - base_g >= remaining)
    complete_cost = taken_cost + t.prefix_c[a, crit + 1] - t.prefix_c[a, i]
    better = complete & (complete_cost < best[a])
    if better.any():
        b = a[better]
        best[b] = complete_cost[better]
        best_set[b] = (path[b] & (positions[None, :] < i[better][:, None])) | (
            (positions[None, :] >= i[better][:, None]) & (positions[None, :] <= crit[better][:, None]))

    cutoff = best[a] - t.scale[a]
    branch = (card_bound < cutoff) & (knap_bound < cutoff)
    # The knapsack solution is optimal for the strengthened LP when its fractional size lies in
    # [fewest, slots]; then the LP bound equals knap_bound and the node must be branched.
    size = (crit - i) + fraction
    exact = (size >= fewest) & (size <= slots)
    todo = branch & ~exact
    if todo.any():
        branch[todo] = _dual_bound_below(t, a[todo], i[todo], taken_cost[todo], remaining[todo],
                                         slots[todo], fewest[todo], cutoff[todo])
    return branch


def _evaluate_dual(lam, g, c, allowed, fewest, slots, depth):
    """Best set T for the values ``lam g - c``: ``fewest <= |T| <= slots`` over ``allowed`` experts.

    Input: ``lam [n]``, ``g, c [n, K]``, ``allowed [n, K] bool``, ``fewest, slots [n]`` with
    ``fewest <= slots <= depth``. Output: ``(g_sum, c_sum) [n]`` of T; ``h(lam) = lam need -
    lam g_sum + c_sum`` (``docs/scheduler.md``, "Bound").
    """
    num_experts = g.shape[1]
    value = np.where(allowed, lam[:, None] * g - c, -np.inf)
    if depth < num_experts:
        part = np.argpartition(-value, depth - 1, axis=1)[:, :depth]
    else:
        part = np.broadcast_to(np.arange(num_experts), value.shape)
    part_value = np.take_along_axis(value, part, axis=1)
    order = np.argsort(-part_value, axis=1)
    top_idx = np.take_along_axis(part, order, axis=1)
    top_value = np.take_along_axis(part_value, order, axis=1)
    rank = np.arange(top_idx.shape[1])[None, :]
    take = (rank < fewest[:, None]) | ((rank < slots[:, None]) & (top_value > 0))
    take &= np.isfinite(top_value)
    g_sum = np.where(take, np.take_along_axis(g, top_idx, axis=1), 0.0).sum(axis=1)
    c_sum = np.where(take, np.take_along_axis(c, top_idx, axis=1), 0.0).sum(axis=1)
    return g_sum, c_sum


def _dual_lp(g, c, need, fewest, slots, allowed, depth):
    r"""LP optimum of ``min c.x, g.x >= need, fewest <= 1.x <= slots, 0 <= x <= 1`` over ``allowed``.

    Maximises the Lagrangian dual ``h(lam) = lam need - max_T sum_T (lam g_j - c_j)`` by
    Kelley's cutting planes to convergence (``docs/scheduler.md``, "Bound"). Requires a feasible
    LP (the ``slots`` most relevant allowed experts reach ``need``) and ``need > 0``.

    Input: ``g, c [n, K]``, ``need [n]``, ``fewest, slots [n]`` int, ``allowed [n, K]`` bool,
    ``depth >= max(slots)``. Output: ``value [n]`` (the LP optimum), ``lam [n]`` (a maximiser).
    """
    n = g.shape[0]
    zero = np.zeros(n)
    g_lo, c_lo = _evaluate_dual(zero, g, c, allowed, fewest, slots, depth)
    by_relevance = np.lexsort((c, -np.where(allowed, g, -np.inf)), axis=1)
    first = np.arange(g.shape[1])[None, :] < slots[:, None]
    g_hi = np.where(first, np.take_along_axis(g, by_relevance, axis=1), 0.0).sum(axis=1)
    c_hi = np.where(first, np.take_along_axis(c, by_relevance, axis=1), 0.0).sum(axis=1)
    slope_lo, icpt_lo = need - g_lo, c_lo
    slope_hi, icpt_hi = need - g_hi, c_hi
    value = icpt_lo.copy()                    # h(0)
    lam_best = zero.copy()
    pending = np.flatnonzero(slope_lo > 0)
    scale = _PRUNE_RTOL * np.maximum(np.abs(c).sum(axis=1), np.finfo(float).tiny)
    for _ in range(_MAX_DUAL_ITERATIONS):
        if not pending.size:
            break
        p = pending
        lam = np.maximum((icpt_hi[p] - icpt_lo[p]) / (slope_lo[p] - slope_hi[p]), 0.0)
        upper = icpt_lo[p] + lam * slope_lo[p]
        g_t, c_t = _evaluate_dual(lam, g[p], c[p], allowed[p], fewest[p], slots[p], depth)
        slope, icpt = need[p] - g_t, c_t
        lower = icpt + lam * slope
        improve = lower > value[p]
        value[p[improve]] = lower[improve]
        lam_best[p[improve]] = lam[improve]
        go_on = (lower < upper - scale[p]) & (slope != 0)
        up = go_on & (slope > 0)
        down = go_on & (slope < 0)
        slope_lo[p[up]], icpt_lo[p[up]] = slope[up], icpt[up]
        slope_hi[p[down]], icpt_hi[p[down]] = slope[down], icpt[down]
        pending = p[go_on]
    return value, lam_best


def _dual_bound_below(t, a, i, taken_cost, remaining, slots, fewest, cutoff):
    r"""Whether the LP bound of each node lies below ``cutoff`` (so the node must be branched).

    The LP over the undecided experts j >= i is ``min c.x, g.x >= remaining,
    fewest <= 1.x <= slots, 0 <= x <= 1``. Dualising the relevance row gives the concave
    piecewise-linear ``h(lam) = lam remaining - max_T sum_{j in T} (lam g_j - c_j)`` over sets
    ``fewest <= |T| <= slots``, whose maximum equals the LP optimum; every ``h(lam)`` is a lower
    bound. Kelley's cutting-plane search on ``h`` stops as soon as a lower bound reaches the
    cutoff (prune) or the cutting-plane upper bound falls below it (branch)
    (``docs/scheduler.md``, "Bound").
    """
    result = np.zeros(a.size, dtype=bool)
    # Line at lam = 0: T = the `fewest` cheapest; line at lam -> inf: T = the `slots` most
    # relevant. Both are tangents of h (h is the lower envelope of all such lines).
    slope_lo = remaining - t.cheap_g[a, i, fewest]
    icpt_lo = t.cheap_c[a, i, fewest]
    slope_hi = remaining - t.top_g[a, i, slots]
    icpt_hi = t.top_c[a, i, slots]
    # slope_lo <= 0: h peaks at lam = 0 and equals the cardinality bound, already below cutoff.
    result[slope_lo <= 0] = True
    pending = np.flatnonzero(slope_lo > 0)
    positions = np.arange(t.g.shape[1])[None, :]
    for _ in range(_MAX_DUAL_ITERATIONS):
        if not pending.size:
            break
        p = pending
        lam = np.maximum((icpt_hi[p] - icpt_lo[p]) / (slope_lo[p] - slope_hi[p]), 0.0)
        upper = taken_cost[p] + icpt_lo[p] + lam * slope_lo[p]
        # Cutting-plane model already below the cutoff: the LP optimum is too; branch.
        below = upper < cutoff[p]
        result[p[below]] = True
        ap, ip = a[p], i[p]
        allowed = (positions >= ip[:, None]) & (positions < t.useful[ap][:, None])
        g_t, c_t = _evaluate_dual(lam, t.g[ap], t.c[ap], allowed, fewest[p], slots[p],
                                  t.max_experts)
        slope, icpt = remaining[p] - g_t, c_t
        lower = taken_cost[p] + icpt + lam * slope
        prune = ~below & (lower >= cutoff[p])
        converged = ~below & ~prune & ((lower >= upper - t.scale[ap]) | (slope == 0))
        result[p[converged]] = True          # LP optimum = lower < cutoff
        go_on = ~below & ~prune & ~converged
        up = go_on & (slope > 0)
        down = go_on & (slope < 0)
        slope_lo[p[up]], icpt_lo[p[up]] = slope[up], icpt[up]
        slope_hi[p[down]], icpt_hi[p[down]] = slope[down], icpt[down]
        pending = p[go_on]
    result[pending] = True                   # undecided after the cap: branch (safe)
    return result
