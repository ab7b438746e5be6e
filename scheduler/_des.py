"""DES, Dynamic Expert Selection: exact branch and bound for P1, vectorised over instances.

See ``docs/scheduler.md`` ("DES") for the search tree, the bound, the pruning rules and the
complexity. Notation: ``g`` relevance, ``c`` cost, ``D`` the most experts, ``need`` the
relevance still required, ``slots`` the experts still allowed.
"""

import time

import numpy as np

from ._problem import STATUS_INFEASIBLE, STATUS_OPTIMAL, _check_problem, _finish, _finish_one

__all__ = ["des"]

# A node is pruned when its bound reaches the incumbent minus this fraction of the instance's
# cost scale (sum of its D largest costs): equal-cost alternatives are not explored, and
# rounding in the bound cannot cut off a set cheaper by more than that (docs/scheduler.md,
# "Tolerances").
_PRUNE_RTOL = 1e-12
# Kelley iterations of the dual bound before a node is branched without a decision (never
# reached in practice: the dual function has finitely many pieces and each iteration adds one).
_MAX_DUAL_ITERATIONS = 64
# Instances searched together: bounds the memory of the suffix tables to about 64 MiB.
_TABLE_ENTRIES = 1 << 21
# Below this many entries B (K + 1) K, suffix tables are built in one matrix pass.
_MATRIX_TABLE_LIMIT = 1 << 16
# (node, child) pairs evaluated in one vectorised pass.
_PAIR_CHUNK = 1 << 18
# Up to this many instances, des solves them one by one on Python floats (_des_scalar): a
# vectorised pass costs some hundreds of numpy calls whatever the batch size, about ten
# single-instance searches at K = 32.
_SCALAR_BATCH_LIMIT = 4
# A single-instance search on Python floats costs a few microseconds per node, the vectorised
# one about a millisecond per tree level plus a fraction of a microsecond per node: past this
# many nodes, the instance is searched again vectorised (same result, same node count).
_SCALAR_NODE_LIMIT = 2000

# After the constants above, which the single-instance search shares.
from ._des_scalar import search_one  # noqa: E402


def des(problem):
    r"""Solve P1 exactly by DES (branch and bound with the linear-relaxation bound).

    The search tree enumerates expert sets by adding experts in decreasing relevance; a node is
    pruned by feasibility (the most relevant remaining experts cannot reach the requirement) and
    by its LP bound (the cheapest completion of the LP relaxation cannot beat the incumbent).
    All instances of the batch are searched together, one tree level (set size) per numpy pass
    (``docs/scheduler.md``, "DES"); one instance, or a batch of at most four, is searched on
    Python floats instead, with the same result and node count ("Single calls").

    Parameters
    ----------
    problem : SelectionProblem
        Batch of P1 instances, relevance and cost ``[..., K]``.

    Output
    ------
    result : SelectionResult
        ``selected [..., K] bool`` (an optimal set), ``cost [...]`` float64 (``inf`` if
        infeasible), ``feasible [...]`` bool, ``nodes [...]`` int64 (search-tree nodes whose
        bound was evaluated, root included; ``0`` for instances settled without search: an
        infeasible requirement or ``gamma <= 0``), ``status [...]`` (``"optimal"`` or
        ``"infeasible"``), ``solve_time_s``.

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
    _check_problem(problem)
    max_experts = problem.effective_max_experts
    if not problem.batch_shape:
        need = float(problem.requirement) - float(problem.tolerance)
        chosen, status, nodes = _solve_one(problem.relevance, problem.cost, need,
                                           float(problem.top_relevance), max_experts)
        return _finish_one(problem, chosen, status, nodes, start_time, "des", need)
    relevance, cost, requirement, tolerance = problem._flat()
    num_instances, num_experts = relevance.shape
    need = requirement - tolerance               # the search's requirement (docs: Tolerances)
    top = problem.top_relevance.reshape(-1)

    selected = np.zeros((num_instances, num_experts), dtype=bool)
    nodes = np.zeros(num_instances, dtype=np.int64)
    status = np.full(num_instances, STATUS_OPTIMAL, dtype="<U10")
    if num_instances <= _SCALAR_BATCH_LIMIT:
        for b in range(num_instances):
            chosen, status[b], nodes[b] = _solve_one(relevance[b], cost[b], float(need[b]),
                                                     float(top[b]), max_experts)
            selected[b, chosen] = True
        return _finish(problem, selected, status, nodes, start_time, "des", exact=True)
    infeasible = top < need
    status[infeasible] = STATUS_INFEASIBLE
    # need <= 0: every non-empty set meets the requirement and costs are >= 0, so the cheapest
    # single expert is optimal.
    trivial = ~infeasible & (need <= 0)
    rows = np.flatnonzero(trivial)
    selected[rows, np.argmin(cost[rows], axis=1)] = True

    hard = np.flatnonzero(~infeasible & ~trivial)
    block = max(1, _TABLE_ENTRIES // ((num_experts + 1) * (max_experts + 1)))
    for start in range(0, hard.size, block):
        rows = hard[start:start + block]
        selected[rows], nodes[rows] = _search(relevance[rows], cost[rows], need[rows],
                                              max_experts)
    return _finish(problem, selected, status, nodes, start_time, "des", exact=True)


def _solve_one(relevance, cost, need, top, max_experts):
    """One instance on Python floats (``_des_scalar``: the same search, set and node count).

    ``relevance, cost [K]`` float64, ``need = gamma - slack`` and ``top`` (top-D relevance)
    floats. Returns ``(chosen, status, nodes)``, ``chosen`` the sorted indices of the set.
    """
    if top < need:
        return [], STATUS_INFEASIBLE, 0
    if need <= 0:
        values = cost.tolist()
        return [values.index(min(values))], STATUS_OPTIMAL, 0
    chosen, nodes = search_one(relevance, cost, need, max_experts, _SCALAR_NODE_LIMIT)
    if chosen is None:
        selected, nodes = _search(relevance[None], cost[None], np.array([need]), max_experts)
        return np.flatnonzero(selected[0]).tolist(), STATUS_OPTIMAL, int(nodes[0])
    return chosen, STATUS_OPTIMAL, nodes


def _gather(array, index):
    """``array[b, index[b, r]]`` for 2-D arrays (a faster ``take_along_axis``)."""
    return array[np.arange(array.shape[0])[:, None], index]


def _evaluate_dual(lam, g_t, c_t, allowed_t, fewest, slots):
    """Best set T for the values ``lam g - c``: ``fewest <= |T| <= slots`` over ``allowed`` experts.

    Input (experts along the first axis, so that every step is a contiguous row over nodes):
    ``lam [n]``, ``g_t, c_t [K, n]``, ``allowed_t [K, n] bool``, ``fewest <= slots [n]``.
    T takes the ``fewest`` largest values and then the positive ones up to ``slots``.
    Output: ``(g_sum, c_sum) [n]`` of T; ``h(lam) = lam (need - g_sum) + c_sum``
    (``docs/scheduler.md``, "Bound").
    """
    n = lam.size
    columns = np.arange(n)
    value = np.where(allowed_t, lam * g_t - c_t, -np.inf)
    g_sum = np.zeros(n)
    c_sum = np.zeros(n)
    for rank in range(min(int(slots.max(initial=0)), g_t.shape[0])):
        row = value.argmax(axis=0)
        top = value[row, columns]
        take = (top > -np.inf) & (rank < slots) & ((rank < fewest) | (top > 0))
        g_sum += np.where(take, g_t[row, columns], 0.0)
        c_sum += np.where(take, c_t[row, columns], 0.0)
        value[row, columns] = -np.inf
    return g_sum, c_sum


def _dual_lp(g, c, need, fewest, slots, allowed):
    r"""LP optimum of ``min c.x, g.x >= need, fewest <= 1.x <= slots, 0 <= x <= 1`` over ``allowed``.

    Maximises the Lagrangian dual ``h(lam) = lam need - max_T sum_T (lam g_j - c_j)`` to
    convergence with :func:`_kelley` (``docs/scheduler.md``, "Bound"), from the tangents at
    ``lam = 0`` and ``lam -> inf``. Requires a feasible LP (``need > 0``, ``fewest <= slots``,
    at least ``fewest`` allowed experts, and the ``slots`` most relevant allowed experts reach
    ``need``).

    Input: ``g, c [n, K]``, ``need [n]``, ``fewest, slots [n]`` int, ``allowed [n, K]`` bool.
    Output: ``value [n]`` (the LP optimum), ``lam [n]`` (a maximiser).
    """
    n = g.shape[0]
    g_t, c_t, allowed_t = g.T.copy(), c.T.copy(), allowed.T.copy()
    g_lo, c_lo = _evaluate_dual(np.zeros(n), g_t, c_t, allowed_t, fewest, slots)
    # Tangent at lam -> inf: the allowed experts with g > 0 by decreasing relevance (ties:
    # cheaper), at most `slots` of them, topped up to `fewest` with the cheapest allowed others
    # (g = 0). Disallowed experts sort last and are never counted.
    by_relevance = np.lexsort((c, -np.where(allowed, g, -np.inf)), axis=1)
    count = np.clip(np.count_nonzero(allowed & (g > 0), axis=1), fewest, slots)
    first = np.arange(g.shape[1])[None, :] < count[:, None]
    g_hi = np.where(first, _gather(g, by_relevance), 0.0).sum(axis=1)
    c_hi = np.where(first, _gather(c, by_relevance), 0.0).sum(axis=1)
    scale = _PRUNE_RTOL * np.maximum(np.abs(c).sum(axis=1), np.finfo(float).tiny)
    # g_hi >= need (a feasible LP); the clamp only removes rounding when they are equal, so
    # that the two lines always cross.
    return _kelley(g_t, c_t, allowed_t, need, fewest, slots,
                   (need - g_lo, c_lo, np.minimum(need - g_hi, 0.0), c_hi), scale)


def _kelley(g_t, c_t, allowed_t, need, fewest, slots, lines, scale, cutoff=None):
    """Kelley's cutting-plane search for ``max h`` of :func:`_evaluate_dual`'s dual function.

    ``lines = (slope_lo, icpt_lo, slope_hi, icpt_hi)`` are two lines ``lam slope + icpt`` of
    sets T feasible for the inner maximum (so both lie above ``h``), with ``slope_lo > 0 >=
    slope_hi`` and the first the tangent at ``lam = 0`` (``icpt_lo = h(0)``); arrays are
    ``[n]``, and ``[K, n]`` for ``g_t, c_t, allowed_t``. Each step evaluates ``h`` where the
    two lines cross and replaces the line on the side of the new slope. An instance stops when
    ``h`` meets the crossing within ``scale [n]`` or has slope 0 (the LP optimum is reached),
    and, with ``cutoff [n]``, as soon as the crossing falls below the cutoff or a value reaches
    it (the comparison with the cutoff is decided).

    Output: ``value [n]`` the best ``h(lam)`` found (a valid lower bound; the LP optimum
    without ``cutoff``, and ``value >= cutoff`` exactly when the LP optimum reaches it) and
    ``lam [n]`` where it was found.
    """
    slope_lo, icpt_lo, slope_hi, icpt_hi = (np.array(x, dtype=float) for x in lines)
    value = icpt_lo.copy()                                  # h(0)
    lam_best = np.zeros(value.size)
    pending = np.flatnonzero(slope_lo > 0)
    for _ in range(_MAX_DUAL_ITERATIONS):
        if not pending.size:
            break
        p = pending
        lam = np.maximum((icpt_hi[p] - icpt_lo[p]) / (slope_lo[p] - slope_hi[p]), 0.0)
        upper = icpt_lo[p] + lam * slope_lo[p]              # bounds max h from above
        if cutoff is not None:
            open_ = upper >= cutoff[p]                      # else: LP optimum below cutoff
            p, lam, upper = p[open_], lam[open_], upper[open_]
        g_new, c_new = _evaluate_dual(lam, g_t[:, p], c_t[:, p], allowed_t[:, p], fewest[p],
                                      slots[p])
        slope = need[p] - g_new
        lower = c_new + lam * slope                         # h(lam), a valid lower bound
        improve = lower > value[p]
        value[p[improve]] = lower[improve]
        lam_best[p[improve]] = lam[improve]
        go_on = (lower < upper - scale[p]) & (slope != 0)
        if cutoff is not None:
            go_on &= lower < cutoff[p]
        up = go_on & (slope > 0)
        down = go_on & (slope < 0)
        slope_lo[p[up]], icpt_lo[p[up]] = slope[up], c_new[up]
        slope_hi[p[down]], icpt_hi[p[down]] = slope[down], c_new[down]
        pending = p[go_on]
    return value, lam_best


def _suffix_tables_loop(values, g, c, valid, depth):
    """:func:`_suffix_tables` by one pass from the last position, keeping the top ``depth``.

    Arrays are laid out ``[depth, B]`` so that every step works on contiguous rows of B.
    """
    num_instances, num_experts = values.shape
    incoming = np.stack([np.where(valid, values, -np.inf).T, g.T, c.T], axis=1)   # [K, 3, B]
    keep = np.zeros((3, depth, num_instances))
    keep[0] = -np.inf
    snapshots = np.empty((num_experts + 1, 3, depth, num_instances))
    snapshots[num_experts] = keep
    slots = np.arange(depth)[:, None]
    for position in range(num_experts - 1, -1, -1):
        new = incoming[position][:, None, :]                                    # [3, 1, B]
        rank = (keep[0] >= new[0]).sum(axis=0)                                  # insertion slot
        shifted = np.concatenate([keep[:, :1], keep[:, :-1]], axis=1)
        keep = np.where(slots < rank, keep, np.where(slots == rank, new, shifted))
        snapshots[position] = keep
    present = snapshots[:, 0] > -np.inf                                         # [K + 1, D, B]
    g_sum = np.zeros((num_experts + 1, depth + 1, num_instances))
    c_sum = np.zeros_like(g_sum)
    for m in range(depth):
        g_sum[:, m + 1] = g_sum[:, m] + np.where(present[:, m], snapshots[:, 1, m], 0.0)
        c_sum[:, m + 1] = c_sum[:, m] + np.where(present[:, m], snapshots[:, 2, m], 0.0)
    return g_sum, c_sum


def _suffix_tables(values, g, c, valid, depth):
    """Relevance and cost sums of the ``m`` largest ``values`` of every suffix, ``m = 0..depth``.

    ``values, g, c [B, K]``, ``valid [B, K]`` bool. Returns ``g_sum, c_sum [K + 1, depth + 1, B]``:
    entry ``[i, m, b]`` sums the ``min(m, #valid in i..K-1)`` largest values of positions ``i..``.
    """
    num_instances, num_experts = values.shape
    if num_instances * (num_experts + 1) * num_experts > _MATRIX_TABLE_LIMIT:
        return _suffix_tables_loop(values, g, c, valid, depth)
    masked = np.where(valid, values, -np.inf)
    order = np.argsort(-masked, axis=1, kind="stable")
    g_sorted = _gather(g, order)[:, None, :]
    c_sorted = _gather(c, order)[:, None, :]
    usable = _gather(valid, order)[:, None, :]
    # in_suffix[b, i, r]: the r-th largest value sits at a position >= i.
    in_suffix = (order[:, None, :] >= np.arange(num_experts + 1)[None, :, None]) & usable
    rank = np.cumsum(in_suffix, axis=2)
    g_sum = np.zeros((num_experts + 1, depth + 1, num_instances))
    c_sum = np.zeros_like(g_sum)
    for m in range(1, depth + 1):
        chosen = in_suffix & (rank <= m)
        g_sum[:, m, :] = np.where(chosen, g_sorted, 0.0).sum(axis=2).T
        c_sum[:, m, :] = np.where(chosen, c_sorted, 0.0).sum(axis=2).T
    return g_sum, c_sum


class _Block:
    """One block of instances with ``need > 0``, experts sorted by relevance (ties: cheaper).

    ``g, c [B, K]`` sorted relevance and cost; ``useful [B]`` experts with ``g > 0`` (they come
    first; the others never help once ``need > 0``); prefix sums ``[B, K + 1]``; ``cheap_g,
    cheap_c [K + 1, D + 1, B]`` the relevance and cost of the ``m`` cheapest useful experts at
    positions ``>= i``.
    """

    def __init__(self, relevance, cost, need, max_experts):
        num_instances, num_experts = relevance.shape
        self.order = np.lexsort((cost, -relevance), axis=1)
        self.g = _gather(relevance, self.order)
        self.c = _gather(cost, self.order)
        self.need = need
        self.depth = max_experts
        self.useful = np.count_nonzero(self.g > 0, axis=1)
        self.positions = np.arange(num_experts)
        self.valid = self.positions[None, :] < self.useful[:, None]
        zero = np.zeros((num_instances, 1))
        self.prefix_g = np.concatenate([zero, np.cumsum(self.g, axis=1)], axis=1)
        self.prefix_c = np.concatenate([zero, np.cumsum(self.c, axis=1)], axis=1)
        self.scale = _PRUNE_RTOL * np.maximum(
            np.sort(cost, axis=1)[:, ::-1][:, :max_experts].sum(axis=1), np.finfo(float).tiny)
        self.cheap_g, self.cheap_c = _suffix_tables(-self.c, self.g, self.c, self.valid,
                                                    max_experts)
        self.g_t, self.c_t = self.g.T.copy(), self.c.T.copy()
        self.stride = num_experts + 1
        self.flat_g = self.prefix_g.ravel()
        self.flat_c = self.prefix_c.ravel()

    def window(self, inst, start, count):
        """Relevance and cost ``[n]`` of the ``count`` most relevant experts from ``start`` on."""
        base = inst * self.stride
        useful = self.useful[inst]
        lo = base + np.minimum(start, useful)
        hi = base + np.minimum(start + count, useful)
        return (self.flat_g[hi] - self.flat_g[lo], self.flat_c[hi] - self.flat_c[lo])

    def fewest(self, inst, start, need, slots):
        """Fewest experts from ``start`` on that can reach ``need`` (``slots + 1``: none can)."""
        base = inst * self.stride
        useful = self.useful[inst]
        reached = self.flat_g[base + np.minimum(start, useful)]
        count = np.ones(inst.size, dtype=np.int64)
        for m in range(1, self.depth + 1):
            window = self.flat_g[base + np.minimum(start + m, useful)] - reached
            count += (window < need) & (m <= slots)
        return count


def _search(relevance, cost, need, max_experts):
    """Set-enumeration branch and bound over a block ``[B, K]`` with ``0 < need <= top-D``.

    A node is a set S of sorted positions; its children add one position j after the last of
    S. Level l of the tree holds the sets of size l; every level is one vectorised pass over
    the open nodes of all instances. Returns ``selected [B, K]`` bool in the original expert
    order and ``nodes [B]``.
    """
    num_instances, num_experts = relevance.shape
    blk = _Block(relevance, cost, need, max_experts)
    everyone = np.arange(num_instances)
    positions = blk.positions

    # Incumbents. An incumbent is the set of a node (by level and index) plus the positions
    # [start, start + count); the first is the root plus the most relevant experts until the
    # requirement is met (always feasible), the second the ratio-greedy set when it fits in D.
    root_fewest = blk.fewest(everyone, np.zeros(num_instances, dtype=np.int64), need,
                             np.full(num_instances, max_experts))
    best = blk.prefix_c[everyone, root_fewest]
    best_level = np.zeros(num_instances, dtype=np.int64)
    best_node = everyone.copy()
    best_start = np.zeros(num_instances, dtype=np.int64)
    best_count = root_fewest.copy()
    greedy_set, greedy_cost = _ratio_greedy(blk)
    use_greedy = greedy_cost < best
    best = np.minimum(best, greedy_cost)
    nodes = np.ones(num_instances, dtype=np.int64)

    # Open nodes of the current level: instance, first child position, cost and relevance
    # taken, set size. parents[l] / picks[l]: parent index at level l - 1 and position added.
    f_inst, f_next = everyone, np.zeros(num_instances, dtype=np.int64)
    f_cost, f_rel = np.zeros(num_instances), np.zeros(num_instances)
    f_size = np.zeros(num_instances, dtype=np.int64)
    parents, picks = [None], [None]
    level = 0
    while f_inst.size:
        remaining = need[f_inst] - f_rel
        slots = max_experts - f_size
        # Children j >= next whose `slots` most relevant experts from j on reach the
        # requirement: a contiguous range, since these windows shrink as j grows.
        hi = np.minimum(positions[None, :] + slots[:, None], blk.useful[f_inst][:, None])
        reach = blk.prefix_g[f_inst[:, None], hi] - blk.prefix_g[f_inst[:, None], positions]
        count = np.count_nonzero((positions[None, :] >= f_next[:, None])
                                 & (positions[None, :] < blk.useful[f_inst][:, None])
                                 & (reach >= remaining[:, None]), axis=1)
        kept = []
        cumulative = np.cumsum(count)
        node_start = 0
        while node_start < f_inst.size:
            base = cumulative[node_start - 1] if node_start else 0
            node_stop = int(np.searchsorted(cumulative, base + _PAIR_CHUNK, side="right"))
            node_stop = min(max(node_stop, node_start + 1), f_inst.size)
            span = np.arange(node_start, node_stop)
            # All (node, child) pairs of this chunk.
            pair_node = np.repeat(span, count[span])
            first = np.repeat(np.cumsum(count[span]) - count[span], count[span])
            j = f_next[pair_node] + np.arange(pair_node.size) - first
            inst = f_inst[pair_node]
            np.add.at(nodes, inst, 1)
            child_cost = f_cost[pair_node] + blk.c[inst, j]
            child_rel = f_rel[pair_node] + blk.g[inst, j]
            child_need = need[inst] - child_rel
            child_slots = slots[pair_node] - 1
            leaf = child_need <= 0           # requirement met: adding experts only adds cost
            fewest = blk.fewest(inst, j + 1, child_need, child_slots)
            alive = ~leaf & (fewest <= child_slots)
            fewest = np.minimum(fewest, np.maximum(child_slots, 1))
            # Every open child also yields a feasible set: itself plus its `fewest` most
            # relevant successors.
            fill_g, fill_c = blk.window(inst, j + 1, fewest)
            candidate = np.where(leaf, child_cost,
                                 np.where(alive & (fill_g >= child_need), child_cost + fill_c,
                                          np.inf))
            lowest = best.copy()
            np.minimum.at(lowest, inst, candidate)
            w = np.flatnonzero((candidate < best[inst]) & (candidate == lowest[inst]))
            best_level[inst[w]] = level
            best_node[inst[w]] = pair_node[w]
            best_start[inst[w]] = j[w]
            best_count[inst[w]] = np.where(leaf[w], 1, 1 + fewest[w])
            use_greedy[inst[w]] = False
            best = lowest

            a = np.flatnonzero(alive)
            keep = _lp_bound_below(blk, inst[a], j[a] + 1, child_cost[a], child_need[a],
                                   child_slots[a], fewest[a], best[inst[a]] - blk.scale[inst[a]])
            a = a[keep]
            kept.append((inst[a], j[a] + 1, child_cost[a], child_rel[a], f_size[pair_node[a]] + 1,
                         pair_node[a], j[a]))
            node_start = node_stop
        f_inst, f_next, f_cost, f_rel, f_size, parent, pick = (np.concatenate(x) for x in zip(*kept))
        parents.append(parent)
        picks.append(pick)
        level += 1

    # Rebuild the incumbents: the range [start, start + count) plus the node's ancestors' picks.
    mask = ((positions[None, :] >= best_start[:, None])
            & (positions[None, :] < (best_start + best_count)[:, None]))
    current = best_node
    for lv in range(len(parents) - 1, 0, -1):
        here = np.flatnonzero(best_level == lv)
        mask[here, picks[lv][current[here]]] = True
        current[here] = parents[lv][current[here]]
        best_level[here] = lv - 1
    mask = np.where(use_greedy[:, None], greedy_set, mask)
    selected = np.zeros_like(mask)
    np.put_along_axis(selected, blk.order, mask, axis=1)
    return selected, nodes


def _ratio_greedy(blk):
    """Cheapest relevance first until the requirement is met: ``set [B, K]`` (sorted positions)
    and ``cost [B]`` (``inf`` where it needs more than D experts)."""
    num_instances = blk.g.shape[0]
    everyone = np.arange(num_instances)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(blk.valid, blk.c / blk.g, np.inf)
    by_ratio = np.argsort(ratio, axis=1, kind="stable")
    got = np.cumsum(_gather(blk.g, by_ratio), axis=1)
    count = 1 + np.count_nonzero(got[:, :-1] < blk.need[:, None], axis=1)
    cost = np.cumsum(_gather(blk.c, by_ratio), axis=1)[everyone, count - 1]
    fits = (count <= blk.depth) & (got[everyone, count - 1] >= blk.need)
    chosen = np.zeros(blk.g.shape, dtype=bool)
    np.put_along_axis(chosen, by_ratio, blk.positions[None, :] < count[:, None], axis=1)
    return chosen, np.where(fits, cost, np.inf)


def _lp_bound_below(blk, inst, start, taken_cost, need, slots, fewest, cutoff):
    """Whether each open node's LP bound lies below ``cutoff`` (True: branch, False: prune).

    The node has taken ``taken_cost`` and may still add ``fewest..slots`` experts from sorted
    position ``start`` on to gain ``need``. Cheap bound first: the ``fewest`` cheapest remaining
    experts (the dual function at lam = 0). Then Kelley's search on the dual function from its
    tangents at lam = 0 and lam -> inf (``docs/scheduler.md``, "Bound").
    """
    keep = taken_cost + blk.cheap_c[start, fewest, inst] < cutoff
    k = np.flatnonzero(keep)
    ki, ks, kf = inst[k], start[k], fewest[k]
    slope_lo = need[k] - blk.cheap_g[ks, kf, ki]
    # slope_lo <= 0: the dual peaks at lam = 0, the LP bound is the cheap bound (kept).
    todo = np.flatnonzero(slope_lo > 0)
    if todo.size:
        kt = k[todo]
        ti, ts = inst[kt], start[kt]
        window_g, window_c = blk.window(ti, ts, slots[kt])
        allowed_t = (blk.positions[:, None] >= ts[None, :]) & (
            blk.positions[:, None] < blk.useful[ti][None, :])
        value, _ = _kelley(
            blk.g_t[:, ti], blk.c_t[:, ti], allowed_t, need[kt], fewest[kt], slots[kt],
            (slope_lo[todo], blk.cheap_c[ts, fewest[kt], ti], need[kt] - window_g, window_c),
            blk.scale[ti], cutoff[kt] - taken_cost[kt])
        keep[kt] = value < cutoff[kt] - taken_cost[kt]
    return keep


