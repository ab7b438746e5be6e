"""DES on one instance with Python floats and lists: the single-call path of :func:`des`.

For one instance the vectorised search of ``_des.py`` spends its time in the fixed cost of some
hundreds of small numpy calls, not in arithmetic. This module runs the same search on Python
floats: the same tree, visited level by level in the same order, the same incumbents (the
last of equal candidates of a level wins, as in the vectorised update), the same feasibility,
cardinality and Kelley tests, with the same floating-point operations in the same order, so it
returns the same set and the same node count (``docs/scheduler.md``, "Single calls").

Notation as in ``_des.py``: ``g`` relevance, ``c`` cost, sorted by decreasing relevance (ties:
cheaper first); ``need`` the relevance still required, ``slots`` the experts still allowed.
"""

import math
from itertools import accumulate

import numpy as np

from ._des import _MAX_DUAL_ITERATIONS, _PAIR_CHUNK, _PRUNE_RTOL
from ._problem import numpy_sum

__all__ = ["search_one"]

_INF = math.inf
_TINY = 2.2250738585072014e-308         # np.finfo(float).tiny
# From this K on, sorting the experts is cheaper with numpy than with Python's sort.
_NUMPY_SORT_FROM = 24
# Unit roundoff of float64; bounds the rounding of a window of prefix sums (see _child_count).
_UNIT_ROUNDOFF = 2.0 ** -53


class _Instance:
    """One instance with ``need > 0``, experts sorted by relevance (``_des._Block`` for one row)."""

    def __init__(self, relevance, cost, need, max_experts):
        num_experts = relevance.size
        if num_experts < _NUMPY_SORT_FROM:
            g_all, c_all = relevance.tolist(), cost.tolist()
            # Two stable sorts give lexsort((cost, -relevance)): by relevance descending, then
            # cost, then position.
            order = sorted(range(num_experts), key=c_all.__getitem__)
            negated = [-x for x in g_all]
            order.sort(key=negated.__getitem__)
            g = [g_all[i] for i in order]
            c = [c_all[i] for i in order]
            useful = _count_positive(g)
            # Useful positions by increasing cost, and by increasing cost per relevance (ties:
            # position, as numpy's stable sorts).
            by_cost = sorted(range(useful), key=c.__getitem__)
            ratio = [c[j] / g[j] for j in range(useful)]
            by_ratio = sorted(range(useful), key=ratio.__getitem__)[:max_experts]
        else:
            sorting = np.lexsort((cost, -relevance))
            g_sorted, c_sorted = relevance[sorting], cost[sorting]
            order, g, c = sorting.tolist(), g_sorted.tolist(), c_sorted.tolist()
            useful = _count_positive(g)
            by_cost = np.argsort(c_sorted[:useful], kind="stable").tolist()
            ratio = c_sorted[:useful] / g_sorted[:useful]
            by_ratio = np.argsort(ratio, kind="stable")[:max_experts].tolist()
        self.order, self.g, self.c = order, g, c
        self.need = need
        self.depth = max_experts
        self.useful = useful
        self.by_cost = by_cost
        self.by_ratio = by_ratio
        self.prefix_g = [0.0, *accumulate(g)]
        self.prefix_c = [0.0, *accumulate(c)]
        top_cost = numpy_sum(sorted(c, reverse=True)[:max_experts])
        self.scale = _PRUNE_RTOL * (top_cost if top_cost > _TINY else _TINY)
        self._cheap = {}

    def fewest(self, start, need, slots):
        """Fewest experts from ``start`` on that reach ``need`` (``slots + 1``: none can)."""
        prefix_g, useful = self.prefix_g, self.useful
        reached = prefix_g[start if start < useful else useful]
        count = 1
        for m in range(1, slots + 1):
            end = start + m
            if prefix_g[end if end < useful else useful] - reached < need:
                count += 1
            else:
                break       # the windows grow with m: every larger m reaches too
        return count

    def window(self, start, count):
        """Relevance and cost of the ``count`` most relevant experts from ``start`` on."""
        useful = self.useful
        lo = start if start < useful else useful
        end = start + count
        hi = end if end < useful else useful
        return (self.prefix_g[hi] - self.prefix_g[lo], self.prefix_c[hi] - self.prefix_c[lo])

    def cheap(self, start):
        """Relevance and cost sums ``[D + 1]`` of the ``m`` cheapest useful experts at positions
        ``>= start`` (all of them when fewer remain)."""
        found = self._cheap.get(start)
        if found is None:
            depth, g, c = self.depth, self.g, self.c
            g_sum = c_sum = 0.0
            g_sums, c_sums = [0.0], [0.0]
            for position in self.by_cost:
                if position >= start:
                    g_sum += g[position]
                    c_sum += c[position]
                    g_sums.append(g_sum)
                    c_sums.append(c_sum)
                    if len(g_sums) > depth:
                        break
            else:
                g_sums += [g_sum] * (depth + 1 - len(g_sums))
                c_sums += [c_sum] * (depth + 1 - len(c_sums))
            found = self._cheap[start] = (g_sums, c_sums)
        return found

    def evaluate_dual(self, lam, start, fewest, slots):
        """Relevance and cost of the best set T for ``lam g - c`` (``_des._evaluate_dual``)."""
        g, c, useful = self.g, self.c, self.useful
        values = [lam * g[j] - c[j] for j in range(start, useful)]
        # Largest values first, ties to the lower position (numpy's argmax).
        ranked = sorted(range(len(values)), key=values.__getitem__, reverse=True)[:slots]
        g_sum = 0.0
        c_sum = 0.0
        for rank, index in enumerate(ranked):
            if rank < fewest or values[index] > 0:
                g_sum += g[start + index]
                c_sum += c[start + index]
            else:
                break       # later values are no larger: none is taken
        return g_sum, c_sum

    def bound_below(self, start, taken_cost, need, slots, fewest, cutoff):
        """Whether the node's LP bound lies below ``cutoff`` (``_des._lp_bound_below``)."""
        cheap_g, cheap_c = self.cheap(start)
        if not taken_cost + cheap_c[fewest] < cutoff:
            return False
        slope_lo = need - cheap_g[fewest]
        if not slope_lo > 0:
            return True
        window_g, window_c = self.window(start, slots)
        limit = cutoff - taken_cost
        value = self.kelley(start, need, fewest, slots, slope_lo, cheap_c[fewest],
                            need - window_g, window_c, limit)
        return value < limit

    def kelley(self, start, need, fewest, slots, slope_lo, icpt_lo, slope_hi, icpt_hi, cutoff):
        """``_des._kelley`` for one node with a cutoff: the best ``h(lam)`` found."""
        value = icpt_lo
        scale = self.scale
        for _ in range(_MAX_DUAL_ITERATIONS):
            lam = (icpt_hi - icpt_lo) / (slope_lo - slope_hi)
            if not lam >= 0.0:
                lam = 0.0
            upper = icpt_lo + lam * slope_lo
            if not upper >= cutoff:
                break
            g_new, c_new = self.evaluate_dual(lam, start, fewest, slots)
            slope = need - g_new
            lower = c_new + lam * slope
            if lower > value:
                value = lower
            if not (lower < upper - scale and slope != 0 and lower < cutoff):
                break
            if slope > 0:
                slope_lo, icpt_lo = slope, c_new
            else:
                slope_hi, icpt_hi = slope, c_new
        return value

    def ratio_greedy(self):
        """Cheapest relevance first until ``need`` is met (``_des._ratio_greedy``):
        ``(positions, cost)``, cost ``inf`` where it needs more than D experts."""
        g, c, need, depth = self.g, self.c, self.need, self.depth
        useful = self.useful
        # Experts with g = 0 (ratio inf) follow the useful ones in position order.
        first = self.by_ratio + list(range(useful, useful + depth - len(self.by_ratio)))
        got = 0.0
        spent = 0.0
        for count, position in enumerate(first, start=1):
            if position >= len(g):
                break
            got += g[position]
            spent += c[position]
            if got >= need:
                return first[:count], spent
        return None, _INF


def _count_positive(values):
    """Number of leading entries ``> 0`` of a list sorted in decreasing order."""
    count = len(values)
    while count and not values[count - 1] > 0:
        count -= 1
    return count


def _child_count(inst, start, slots, remaining):
    """Children ``j >= start`` of a node: ``_des._search`` counts the positions whose ``slots``
    most relevant experts from ``j`` on reach ``remaining``, and takes that many from ``start``.

    In exact arithmetic the windows shrink with ``j``, so the first failure ends the range; a
    computed window may exceed the exact one by rounding, so the scan stops early only when
    that cannot bring a later window back to ``remaining``.
    """
    prefix_g, useful = inst.prefix_g, inst.useful
    count = 0
    j = start
    while j < useful:
        end = j + slots
        if prefix_g[end if end < useful else useful] - prefix_g[j] >= remaining:
            count += 1
            j += 1
            continue
        slack = 8.0 * (useful + 2) * _UNIT_ROUNDOFF * prefix_g[useful]
        if prefix_g[end if end < useful else useful] - prefix_g[j] < remaining - slack:
            return count
        for later in range(j + 1, useful):
            end = later + slots
            if prefix_g[end if end < useful else useful] - prefix_g[later] >= remaining:
                count += 1
        return count
    return count


def search_one(relevance, cost, need, max_experts, node_limit):
    """Branch and bound for one instance with ``0 < need <= top-D`` (``_des._search``).

    Input: ``relevance, cost [K]`` float64 arrays, ``need`` float, ``max_experts`` int (``<= K``),
    ``node_limit`` int.
    Output: ``(selected, nodes)``, the chosen expert indices (original order, ascending) and the
    number of search-tree nodes; ``selected`` is None when the search stopped after
    ``node_limit`` nodes (a tree that large is cheaper to search vectorised).
    """
    inst = _Instance(relevance, cost, need, max_experts)
    g, c, prefix_c = inst.g, inst.c, inst.prefix_c
    scale = inst.scale

    root_fewest = inst.fewest(0, need, max_experts)
    best = prefix_c[root_fewest]
    best_level, best_node, best_start, best_count = 0, 0, 0, root_fewest
    greedy_set, greedy_cost = inst.ratio_greedy()
    use_greedy = greedy_cost < best
    if greedy_cost < best:
        best = greedy_cost
    nodes = 1

    # A node: (first child position, cost, relevance, size, parent index, pick).
    levels = [[(0, 0.0, 0.0, 0, -1, -1)]]
    level = 0
    while levels[-1]:
        frontier = levels[-1]
        counts = [_child_count(inst, nxt, max_experts - size, need - rel)
                  for nxt, _, rel, size, _, _ in frontier]
        following = []
        node_start = 0
        num_nodes = len(frontier)
        while node_start < num_nodes:
            # Pairs are bounded in chunks of _PAIR_CHUNK, as in the vectorised search.
            node_stop = node_start + 1
            total = counts[node_start]
            while node_stop < num_nodes and total + counts[node_stop] <= _PAIR_CHUNK:
                total += counts[node_stop]
                node_stop += 1
            # First pass: the candidates of every child, and the chunk's incumbent.
            lowest = best
            winner = None
            alive = []
            for index in range(node_start, node_stop):
                nxt, taken_cost, taken_rel, size, _, _ = frontier[index]
                slots = max_experts - size - 1
                for j in range(nxt, nxt + counts[index]):
                    nodes += 1
                    if nodes > node_limit:
                        return None, nodes
                    child_cost = taken_cost + c[j]
                    child_rel = taken_rel + g[j]
                    child_need = need - child_rel
                    if child_need <= 0:
                        candidate, count = child_cost, 1
                    else:
                        fewest = inst.fewest(j + 1, child_need, slots)
                        if fewest > slots:
                            continue                    # cannot reach need: never a candidate
                        fill_g, fill_c = inst.window(j + 1, fewest)
                        candidate = child_cost + fill_c if fill_g >= child_need else _INF
                        count = 1 + fewest
                        alive.append((index, j, child_cost, child_rel, child_need, slots, fewest,
                                      size))
                    if candidate < best and candidate <= lowest:
                        lowest = candidate
                        winner = (index, j, count)
            if winner is not None:
                best = lowest
                best_level = level
                best_node, best_start, best_count = winner
                use_greedy = False
            # Second pass: the LP bound of every open child against the updated incumbent.
            cutoff = best - scale
            for index, j, child_cost, child_rel, child_need, slots, fewest, size in alive:
                if inst.bound_below(j + 1, child_cost, child_need, slots, fewest, cutoff):
                    following.append((j + 1, child_cost, child_rel, size + 1, index, j))
            node_start = node_stop
        levels.append(following)
        level += 1

    if use_greedy:
        positions = list(greedy_set)
    else:
        positions = list(range(best_start, best_start + best_count))
        index = best_node
        for lv in range(best_level, 0, -1):
            node = levels[lv][index]
            positions.append(node[5])
            index = node[4]
    order = inst.order
    return sorted(order[p] for p in positions), nodes
