"""JESA: joint expert and subcarrier allocation by block-coordinate descent, and its baselines.

``docs/jesa.md`` explains the iteration: DES on per-expert costs, subcarrier allocation for the
chosen set, DES again on the costs that allocation induces, until nothing changes.
"""

import itertools
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

from ._des import des
from ._joint import (
    STATUS_CONVERGED,
    STATUS_FEASIBLE,
    STATUS_INFEASIBLE,
    STATUS_ITERATION_LIMIT,
    JointProblem,
    build_result,
    fewest_best,
    link_energy_airtime,
)
from ._problem import SelectionProblem
from ._topd import top_d_mask

__all__ = ["jesa", "allocate_subcarriers", "des_decoupled", "des_random_subcarriers", "top_k_joint"]

# Relative improvement below which a new set is not accepted (guards against float ties).
_IMPROVEMENT_RTOL = 1e-12
# Largest selected set for which the deadline greedy tries every processing order.
_MAX_PERMUTED = 4


# ---------------------------------------------------------------------------- P1 bridge
def select_experts(problem, cost, rows=None):
    """Solve P1 with DES on ``cost`` for the flat instances ``rows`` (internal).

    Input
    -----
    problem : JointProblem, flat batch ``[M]``
    cost : [R, K], float64, may hold ``inf`` (an expert that cannot be served)
    rows : [R], int, optional (default: all M)

    Output
    ------
    selected : [R, K], bool
    ok : [R], bool
        False where P1 has no solution among the experts of finite cost.
    nodes : [R], int
    """
    pick = _rows_picker(rows)
    num_experts = problem.num_experts
    finite = np.isfinite(cost)
    # DES takes finite costs only: scale each row to max 1 and give an unservable expert a
    # cost larger than any set of servable ones, so it is chosen only when nothing else works.
    scale = np.where(finite, cost, 0.0).max(axis=-1, keepdims=True)
    scale = np.where(scale > 0, scale, 1.0)
    scaled = np.where(finite, cost / scale, num_experts + 1.0)
    level = problem.importance if problem.importance is not None else problem.threshold
    name = "importance" if problem.importance is not None else "threshold"
    relevance, level = pick(problem.relevance), pick(level)
    if len(relevance) == 1:
        # One instance: des's single-instance path, then back to a batch of one.
        kwargs = {"relevance": relevance[0], "cost": scaled[0], name: level[0]}
    else:
        kwargs = {"relevance": relevance, "cost": scaled, name: level}
    result = des(SelectionProblem(max_experts=min(problem.max_experts, num_experts), **kwargs))
    selected = result.selected.reshape(-1, num_experts)
    ok = result.feasible.reshape(-1) & ~(selected & ~finite).any(axis=-1)
    return selected, ok, result.nodes.reshape(-1)


# ---------------------------------------------------------------------------- allocation
def allocate(problem, selected, rows=None):
    """Subcarriers for the chosen experts, every phase (internal).

    Without a deadline, the Hungarian algorithm on the single-subcarrier energies (optimal for the
    set); with one, the fewest-best greedy with conflict resolution by processing order.

    Input
    -----
    problem : JointProblem, flat batch ``[M]``; selected : [R, K], bool; rows : [R], int

    Output
    ------
    masks : list of [R, K, N] bool, one per phase
    ok : [R], bool (False where some selected link could not be served)
    """
    # rows=None: every instance, without copying the arrays (``x[arange(M)]`` equals ``x``).
    pick = _rows_picker(rows)
    power = pick(problem.subcarrier_power_w)
    masks, ok = [], np.ones(selected.shape[0], dtype=bool)
    for rate, bits, deadline in problem.phases():
        mask, phase_ok = _allocate_phase(pick(rate), pick(bits), power, pick(deadline), selected)
        masks.append(mask)
        ok &= phase_ok
    return masks, ok


def allocate_subcarriers(problem, selected):
    """Energy-optimal subcarriers of every phase for given expert sets.

    The allocation step of JESA on its own: with no deadline, the Hungarian algorithm on the
    single-subcarrier energies P_sc B / r[k, n] (optimal for the set, ``docs/jesa.md``); with a
    deadline, the fewest-best-subcarriers greedy with conflict resolution. This is how the
    co-simulation realises schemes that only choose experts.

    Parameters
    ----------
    problem : JointProblem
        Rates ``[..., K, N]`` per phase, payloads, power and deadline.
    selected : [..., K], bool
        The expert set of every instance.

    Output
    ------
    dispatch : [..., K, N], bool
        Subcarriers of each selected expert's dispatch link (none for unselected experts).
    returned : [..., K, N], bool
        The same for the return phase; all False when the problem has none.
    served : [...], bool
        False where some selected link could not be given subcarriers (no usable subcarrier
        left, or the deadline cannot be met).

    Example
    -------
    >>> import numpy as np
    >>> from dmoe.scheduler import JointProblem, allocate_subcarriers
    >>> p = JointProblem(relevance=[0.6, 0.4], rate_dispatch=[[1e5, 2e5], [3e5, 1e5]],
    ...                  payload_bits_dispatch=1000, subcarrier_power_w=0.01, max_experts=2,
    ...                  importance=1.0)
    >>> dispatch, returned, served = allocate_subcarriers(p, [True, True])
    >>> dispatch.astype(int).tolist(), bool(served)
    ([[0, 1], [1, 0]], True)
    """
    if not isinstance(problem, JointProblem):
        raise TypeError(f"problem must be a JointProblem, got {type(problem).__name__}")
    batch_shape = problem.batch_shape
    num_experts, num_subcarriers = problem.num_experts, problem.num_subcarriers
    selected = np.asarray(selected)
    if selected.shape != batch_shape + (num_experts,):
        raise ValueError(f"selected must have shape {batch_shape + (num_experts,)} "
                         f"(problem batch + K), got {selected.shape}")
    flat = problem._flat()
    masks, served = allocate(flat, selected.astype(bool).reshape(-1, num_experts))
    dispatch = masks[0].reshape(batch_shape + (num_experts, num_subcarriers))
    if len(masks) > 1:
        returned = masks[1].reshape(dispatch.shape)
    else:
        returned = np.zeros(dispatch.shape, dtype=bool)
    return dispatch, returned, served.reshape(batch_shape)


def _single_energy(rate, bits, power):
    usable = rate > 0  # a zero rate is divided as 1.0 and replaced by inf: no division by zero
    return np.where(usable, (power * bits)[..., None] / np.where(usable, rate, 1.0), np.inf)


def _allocate_phase(rate, bits, power, deadline, selected):
    num, num_experts, num_subcarriers = rate.shape
    mask = np.zeros(rate.shape, dtype=bool)
    ok = np.ones(num, dtype=bool)
    timed = np.isfinite(deadline)

    untimed = (~timed).nonzero()[0]  # 1-D: nonzero skips flatnonzero's ravel
    if untimed.size:
        if untimed.size == num:  # every instance: no copies
            energy, sel = _single_energy(rate, bits, power), selected  # [U, K, N], [U, K]
        else:
            energy = _single_energy(rate[untimed], bits[untimed], power[untimed])
            sel = selected[untimed]
        best = np.argmin(energy, axis=-1)  # [U, K]
        # Fast path: when the best subcarriers of the chosen experts are distinct, giving each
        # its best is optimal; only instances with a collision need the Hungarian algorithm.
        tagged = np.where(sel, best, -1 - np.arange(num_experts))
        ordered = np.sort(tagged, axis=-1)
        collide = (ordered[:, 1:] == ordered[:, :-1]).any(axis=-1)
        free = (~collide).nonzero()[0]
        u_idx, k_idx = np.nonzero(sel[free])
        mask[untimed[free][u_idx], k_idx, best[free][u_idx, k_idx]] = True
        for local in collide.nonzero()[0]:
            experts = sel[local].nonzero()[0]
            if experts.size > num_subcarriers:
                ok[untimed[local]] = False
                continue
            costs = energy[local][experts]
            finite = np.isfinite(costs)
            big = (costs[finite].max() + 1.0) * (experts.size + 1) if finite.any() else 1.0
            row, col = linear_sum_assignment(np.where(finite, costs, big))
            mask[untimed[local], experts[row], col] = True
            ok[untimed[local]] = bool(np.all(finite[row, col]))
        # A chosen expert whose every subcarrier is dead cannot be served.
        ok[untimed] &= ~(sel & ~np.isfinite(energy.min(axis=-1))).any(axis=-1)

    timed = timed.nonzero()[0]
    if timed.size:
        # Fast path: each chosen expert's fewest best subcarriers over all of them; where these
        # sets do not overlap they are the optimal allocation for the set. Only instances with
        # an overlap go through the greedy with conflict resolution.
        sel = selected[timed]
        everything = np.ones(rate[timed].shape, dtype=bool)
        energy, count, order = fewest_best(rate[timed], everything, bits[timed], power[timed], deadline[timed])
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(num_subcarriers), axis=-1)
        wanted = (rank < count[..., None]) & sel[..., None]
        overlap = np.any(wanted.sum(axis=-2) > 1, axis=-1)
        alone = ~overlap
        mask[timed[alone]] = wanted[alone]
        # An expert that misses the deadline with every subcarrier misses it with any subset.
        ok[timed[alone]] = ~np.any(sel[alone] & ~np.isfinite(energy[alone]), axis=-1) & sel[alone].any(axis=-1)
        for index in timed[overlap]:
            mask[index], ok[index] = _deadline_greedy(
                rate[index], bits[index], power[index], deadline[index], np.flatnonzero(selected[index])
            )
    return mask, ok


def _deadline_greedy(rate, bits, power, deadline, experts):
    """Fewest-best subcarriers per link, conflicts resolved by the best processing order."""
    num_experts, num_subcarriers = rate.shape
    if experts.size <= _MAX_PERMUTED:
        orders = itertools.permutations(experts)
    else:
        need = bits[experts] / deadline
        capacity = np.sort(rate[experts], axis=-1)[:, ::-1].cumsum(axis=-1)
        hardness = np.argmax(capacity >= need[:, None], axis=-1)
        orders = [experts[np.argsort(-hardness, kind="stable")], experts]
    best_mask, best_energy = np.zeros((num_experts, num_subcarriers), dtype=bool), np.inf
    for order in orders:
        taken = np.zeros(num_subcarriers, dtype=bool)
        mask = np.zeros((num_experts, num_subcarriers), dtype=bool)
        total = 0.0
        for k in order:
            energy, count, sub_order = fewest_best(
                rate[k][None], ~taken[None], bits[k : k + 1], power[k : k + 1], np.asarray(deadline)
            )
            if not np.isfinite(energy[0]):
                total = np.inf
                break
            chosen = sub_order[0, : count[0]]
            mask[k, chosen] = True
            taken[chosen] = True
            total += energy[0]
        if total < best_energy:
            best_mask, best_energy = mask, total
    return best_mask, bool(np.isfinite(best_energy)) and experts.size > 0


def induced_costs(problem, masks, rows=None):
    """Per-expert cost given an allocation: each expert's cheapest link on the subcarriers no
    *other* chosen expert holds (its own allocated set for the chosen ones), summed over phases
    plus compute energy (internal). ``masks``: one [R, K, N] bool per phase, or None for a phase
    where nothing is held. Output: [R, K] float64, may hold ``inf``."""
    pick = _rows_picker(rows)
    cost = pick(problem.compute_energy_j).copy()
    power = pick(problem.subcarrier_power_w)
    for (rate, bits, deadline), mask in zip(problem.phases(), masks):
        # A mask of None: nothing is held, every subcarrier is available.
        available = True if mask is None else (mask.sum(axis=-2, keepdims=True) - mask) <= 0
        energy, _, _ = fewest_best(pick(rate), available, pick(bits), power, pick(deadline))
        cost = cost + energy
    return cost


def _rows_picker(rows):
    """``x -> x[rows]``, or the identity for ``rows=None`` (every instance, no copy)."""
    if rows is None:
        return lambda array: array
    return lambda array: array[rows]


def _allocation_energy(problem, masks, ok, rows):
    """Link energy of an allocation summed over links and phases, [R] (inf where not ok)."""
    total = np.zeros(len(rows))
    power = problem.subcarrier_power_w[rows]
    for (rate, bits, _), mask in zip(problem.phases(), masks):
        energy, _ = link_energy_airtime(rate[rows], mask, bits[rows], power)
        total = total + energy.sum(axis=-1)
    return np.where(ok, total, np.inf)


def displacement_costs(problem, selected, masks, cost, rows):
    """Re-costings that charge each collision to the expert holding the contested subcarrier.

    A chosen expert ``j`` costs its best links with all subcarriers free (its decoupled cost)
    plus the energy its presence adds to the other chosen links, ``E(S) - E(S minus j) - E_j``
    (allocation energies, ``E_j`` its own allocated links). The plain induced costs blame a
    collision on the expert that lost the subcarrier; here the holder carries it, so DES may drop
    the holder instead (docs/jesa.md). Unchosen experts are costed two ways, giving two
    re-costings: on their decoupled best links (as if the chosen set's subcarriers were free
    for them, right when an outsider would replace the holder), and as in the plain costs (on the
    subcarriers the chosen set does not hold, right when it would join beside it).

    Input: selected [R, K] bool, masks list of [R, K, N] bool, cost [R, K] float (the plain
    induced costs, kept where the difference is not usable), rows [R] int.
    Output: two [R, K] float64 arrays (unchosen experts: decoupled, plain).
    """
    ones = np.ones(len(rows), dtype=bool)
    base = _allocation_energy(problem, masks, ones, rows)
    power = problem.subcarrier_power_w[rows]
    own = np.zeros(selected.shape)
    for (rate, bits, _), mask in zip(problem.phases(), masks):
        own = own + link_energy_airtime(rate[rows], mask, bits[rows], power)[0]
    best = induced_costs(problem, [None] * len(masks), rows)  # all free; includes compute energy
    charged = cost.copy()
    for j in range(problem.num_experts):
        has = (selected[:, j] & np.isfinite(base)).nonzero()[0]
        if has.size == 0:
            continue
        reduced = selected[has].copy()
        reduced[:, j] = False
        reduced_masks, ok = allocate(problem, reduced, rows[has])
        empty = ~reduced.any(axis=-1)
        without = np.where(empty, 0.0, _allocation_energy(problem, reduced_masks, ok, rows[has]))
        displaced = base[has] - without - own[has, j]
        # A heuristic (deadline) allocation can make the difference meaningless: keep the plain cost.
        usable = np.isfinite(without) & (displaced >= -1e-9 * base[has])
        charged[has[usable], j] = best[has[usable], j] + np.maximum(displaced[usable], 0.0)
    return np.where(selected, charged, best), charged


def _total_energy(problem, selected, masks, ok, rows):
    sub = problem if rows is None else _subproblem(problem, rows)
    returned = masks[1] if problem.has_return else None
    energy = sub.energy_j(selected, masks[0], returned)
    return np.where(ok, energy, np.inf)


def _close(a, b):
    """Elementwise a == b up to rounding (inf == inf)."""
    with np.errstate(invalid="ignore"):
        return (a == b) | (np.abs(a - b) <= 1e-12 * np.abs(b))


def _subproblem(problem, rows):
    """The flat problem restricted to ``rows`` (shares no state with the original)."""
    sub = object.__new__(JointProblem)
    for name, value in vars(problem).items():
        setattr(sub, name, value[rows] if isinstance(value, np.ndarray) else value)
    return sub


# ---------------------------------------------------------------------------- JESA
def jesa(problem, max_iterations=50):
    r"""Joint expert selection and subcarrier allocation by block-coordinate descent (JESA).

    1. DES on each expert's cost over its best link (the decoupled problem);
    2. allocate subcarriers to the chosen set (Hungarian algorithm with no deadline, fewest-best
       greedy with conflict resolution with one), each phase separately;
    3. DES again with each expert costed on the subcarriers no other chosen expert holds;
    4. accept the new set if its allocated energy is lower, and repeat from 2; stop when the set
       stops changing or stops improving. The objective never increases (``res.history``).

    Step 3 is skipped (converged) when the allocation leaves the chosen experts' costs as DES saw
    them and makes no other expert cheaper: the set is then still a DES optimum. With no
    collision among the best subcarriers this stops after one DES call, at the joint optimum.

    Parameters
    ----------
    problem : JointProblem
        Instances of any batch shape ``[...]``.
    max_iterations : int
        Largest number of re-selection rounds after the first DES (default 50).

    Output
    ------
    JointResult
        ``selected [..., K]``, ``dispatch``/``returned [..., K, N]`` bool, ``energy_j [...]``,
        ``feasible [...]``, ``iterations [...]`` (DES calls), ``status`` (``"converged"``,
        ``"infeasible"`` where none was found, ``"iteration_limit"``), ``history [..., I]``.

    Example
    -------
    >>> import numpy as np
    >>> from dmoe.scheduler import JointProblem, jesa
    >>> rng = np.random.default_rng(1)
    >>> p = JointProblem(relevance=rng.dirichlet(np.ones(8), 4),
    ...                  rate_dispatch=rng.exponential(1e5, (4, 8, 32)), payload_bits_dispatch=8192,
    ...                  subcarrier_power_w=0.01, max_experts=3, importance=0.7)
    >>> res = jesa(p)
    >>> bool(np.all(res.dispatch.sum(axis=-2) <= 1))
    True
    """
    if not isinstance(problem, JointProblem):
        raise TypeError(f"`problem` must be a JointProblem, got {type(problem).__name__}")
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, (int, np.integer)) or max_iterations < 0:
        raise ValueError(f"`max_iterations` must be a non-negative int, got {max_iterations!r}")
    start = time.perf_counter()
    batch_shape = problem.batch_shape
    flat = problem._flat()
    selected, masks, energy, iterations, status, history, evaluated = _jesa_flat(flat, int(max_iterations))
    returned = masks[1] if flat.has_return else np.zeros_like(masks[0])
    return build_result(
        flat, selected, masks[0], returned, iterations, status, time.perf_counter() - start, history, batch_shape,
        evaluated,
    )


def _jesa_flat(problem, max_iterations):
    num = problem.relevance.shape[0]
    cost = induced_costs(problem, [None] * len(problem.phases()))  # nothing held: each expert's best link
    selected, select_ok, _ = select_experts(problem, cost)
    masks, alloc_ok = allocate(problem, selected)
    # As _total_energy, keeping the links: while no instance changes its decision, build_result
    # takes them instead of evaluating the same decision again.
    evaluated = problem._energy_and_links(selected, masks[0], masks[1] if problem.has_return else None)
    energy = np.where(select_ok & alloc_ok, evaluated[0], np.inf)
    iterations = np.ones(num, dtype=np.int64)
    status = np.full(num, STATUS_CONVERGED, dtype="<U16")
    history = [energy.copy()]
    active = np.ones(num, dtype=bool)
    # An instance whose P1 has no solution at all will not find one by re-costing.
    active &= select_ok | np.isfinite(energy)

    decoupled = cost.copy()  # each expert on its best links, all subcarriers free
    last_cost = cost  # the costs on which DES chose the current set

    for _ in range(max_iterations):
        rows = active.nonzero()[0]
        if rows.size == 0:
            break
        if rows.size == num:  # every instance: the arrays themselves, no copies
            cost = induced_costs(problem, masks)
            sel, seen, free_cost = selected, last_cost, decoupled
        else:
            cost = induced_costs(problem, [mask[rows] for mask in masks], rows)
            sel, seen, free_cost = selected[rows], last_cost[rows], decoupled[rows]
        # If the chosen experts cost what DES saw and no other expert got cheaper, every other
        # set costs at least what it did and the current set is still a DES optimum of the plain
        # re-costing; if moreover no chosen expert lost a subcarrier to another, the
        # holder-charged re-costings have nothing to charge. Converged without another DES call:
        # the common case (no collision) once N >> K.
        same = np.where(sel, _close(cost, seen), cost >= seen).all(axis=-1)
        same &= ~(sel & ~_close(cost, free_cost)).any(axis=-1)
        active[rows[same]] = False
        rows, cost = rows[~same], cost[~same]
        if rows.size == 0:
            history.append(energy.copy())
            break
        # Three re-costings of the same allocation (docs/jesa.md): the plain one and
        # two that blame collisions on the holder; DES solves them in one batched call and the
        # best new set is tried.
        holder_free, holder_plain = displacement_costs(
            problem, selected[rows], [mask[rows] for mask in masks], cost, rows)
        variants = np.concatenate([cost, holder_free, holder_plain])
        num_variants = 3
        candidates, candidates_ok, _ = select_experts(problem, variants, np.tile(rows, num_variants))
        iterations[rows] += 1
        best_energy = energy[rows].copy()
        improved = np.zeros(rows.size, dtype=bool)
        for variant in range(num_variants):
            part = slice(variant * rows.size, (variant + 1) * rows.size)
            new_selected, new_ok = candidates[part], candidates_ok[part]
            changed = ((new_selected != selected[rows]).any(axis=-1) & new_ok).nonzero()[0]
            if changed.size == 0:
                continue
            trial = rows[changed]
            trial_masks, trial_ok = allocate(problem, new_selected[changed], trial)
            trial_energy = _total_energy(problem, new_selected[changed], trial_masks, trial_ok, trial)
            old = best_energy[changed]
            better = trial_energy < np.where(np.isfinite(old), old * (1 - _IMPROVEMENT_RTOL), np.inf)
            accept = trial[better]
            if accept.size:
                evaluated = None
            selected[accept] = new_selected[changed][better]
            for mask, trial_mask in zip(masks, trial_masks):
                mask[accept] = trial_mask[better]
            energy[accept] = trial_energy[better]
            last_cost[accept] = variants[part][changed][better]
            best_energy[changed[better]] = trial_energy[better]
            improved[changed[better]] = True
        active[rows[~improved]] = False
        history.append(energy.copy())
    status[active] = STATUS_ITERATION_LIMIT
    status[~np.isfinite(energy)] = STATUS_INFEASIBLE
    return selected, masks, energy, iterations, status, np.stack(history, axis=-1), evaluated


# ---------------------------------------------------------------------------- baselines
def des_decoupled(problem):
    """DES on the decoupled costs ``min over links of E[k, .]``, then the allocation fix.

    The first step of JESA alone: what JESA converges to when the experts' best subcarriers do
    not collide. Colliding links are repaired by the Hungarian algorithm (fewest-best greedy with
    a deadline).

    Parameters
    ----------
    problem : JointProblem

    Output
    ------
    JointResult (``iterations`` = 1)
    """
    return jesa(problem, max_iterations=0)


def _generator(rng):
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"`rng` must be a numpy Generator or an int seed, got {type(rng).__name__}")


def _random_allocation(problem, experts, rng):
    """Disjoint random subcarriers for ``experts`` [M, K] bool, every phase (internal).

    Experts take subcarriers from one random permutation per instance and phase, in expert
    order: one each with no deadline, as many as the deadline needs with one.
    """
    num, num_experts = experts.shape
    num_subcarriers = problem.num_subcarriers
    masks, ok = [], np.ones(num, dtype=bool)
    for rate, bits, deadline in problem.phases():
        perm = np.argsort(rng.random((num, num_subcarriers)), axis=-1)
        mask = np.zeros((num, num_experts, num_subcarriers), dtype=bool)
        timed = np.isfinite(deadline)
        rank = np.cumsum(experts, axis=-1) - 1
        served = experts & (rank < num_subcarriers) & ~timed[:, None]
        b_idx, k_idx = np.nonzero(served)
        mask[b_idx, k_idx, perm[b_idx, rank[b_idx, k_idx]]] = True
        phase_ok = ~np.any(experts & ~served & ~timed[:, None], axis=-1)
        for b in np.flatnonzero(timed):
            position = 0
            for k in np.flatnonzero(experts[b]):
                need, total = bits[b, k] / deadline[b], 0.0
                while position < num_subcarriers and (total < need or total == 0):
                    mask[b, k, perm[b, position]] = True
                    total += rate[b, k, perm[b, position]]
                    position += 1
                if total < need or total == 0:
                    phase_ok[b] = False
        masks.append(mask)
        ok &= phase_ok
    return masks, ok


def top_k_joint(problem, k, subcarriers="hungarian", rng=None):
    """Top-k experts by relevance, with Hungarian (or random) subcarriers.

    Parameters
    ----------
    problem : JointProblem
    k : int
        Experts per token, ``1 <= k <= K`` (``k > D`` or a set missing ``gamma`` is infeasible).
    subcarriers : {"hungarian", "random"}
        ``"hungarian"``: the optimal allocation for the set (fewest-best greedy with a deadline);
        ``"random"``: random disjoint subcarriers (needs ``rng``).
    rng : numpy.random.Generator or int, optional
        Source of randomness for ``"random"``.

    Output
    ------
    JointResult (``iterations`` = 1)
    """
    if not isinstance(problem, JointProblem):
        raise TypeError(f"`problem` must be a JointProblem, got {type(problem).__name__}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= problem.num_experts:
        raise ValueError(f"`k` must be an int in [1, K={problem.num_experts}], got {k!r}")
    if subcarriers not in ("hungarian", "random"):
        raise ValueError(f"`subcarriers` must be 'hungarian' or 'random', got {subcarriers!r}")
    start = time.perf_counter()
    batch_shape = problem.batch_shape
    flat = problem._flat()
    selected = top_d_mask(flat.relevance, k)
    if subcarriers == "hungarian":
        masks, ok = allocate(flat, selected)
    else:
        masks, ok = _random_allocation(flat, selected, _generator(rng))
    return _one_shot_result(flat, selected, masks, ok, start, batch_shape)


def des_random_subcarriers(problem, rng):
    """Random disjoint subcarriers for every expert, then DES on the costs they induce.

    The channel-unaware scheme: each expert is given random subcarriers (one each with no
    deadline, enough for the deadline with one), DES picks the set on those link energies.

    Parameters
    ----------
    problem : JointProblem
    rng : numpy.random.Generator or int

    Output
    ------
    JointResult (``iterations`` = 1)
    """
    if not isinstance(problem, JointProblem):
        raise TypeError(f"`problem` must be a JointProblem, got {type(problem).__name__}")
    start = time.perf_counter()
    batch_shape = problem.batch_shape
    flat = problem._flat()
    everyone = np.ones(flat.relevance.shape, dtype=bool)
    masks, _ = _random_allocation(flat, everyone, _generator(rng))
    cost = flat.compute_energy_j.copy()
    for (rate, bits, deadline), mask in zip(flat.phases(), masks):
        energy, airtime = link_energy_airtime(rate, mask, bits, flat.subcarrier_power_w)
        served = mask.any(axis=-1) & np.isfinite(energy) & (airtime <= deadline[:, None] * (1 + 1e-12))
        cost = cost + np.where(served, energy, np.inf)
    selected, ok, _ = select_experts(flat, cost)
    masks = [mask & selected[..., None] for mask in masks]
    return _one_shot_result(flat, selected, masks, ok, start, batch_shape)


def _one_shot_result(flat, selected, masks, ok, start, batch_shape):
    num = selected.shape[0]
    energy = _total_energy(flat, selected, masks, ok, np.arange(num))
    status = np.where(np.isfinite(energy), STATUS_FEASIBLE, STATUS_INFEASIBLE)
    returned = masks[1] if flat.has_return else np.zeros_like(masks[0])
    return build_result(
        flat, selected, masks[0], returned, np.ones(num, dtype=np.int64), status,
        time.perf_counter() - start, energy[:, None], batch_shape,
    )
