"""P1, the expert-selection problem, and the result every selection scheme returns.

See ``docs/scheduler.md`` ("P1", "Importance factor", "Tolerances").
"""

from dataclasses import dataclass, field
import math
import numbers
import time

import numpy as np

__all__ = ["SelectionProblem", "SelectionResult"]

# Relative slack on the relevance requirement: a set meets gamma when its relevance sum is
# >= gamma - FEASIBILITY_RTOL x (sum of the D largest relevances). It absorbs the rounding of
# summing the same numbers in different orders, so that rho = 1 accepts the top-D set whichever
# way its relevances were added (docs/scheduler.md, "Tolerances").
FEASIBILITY_RTOL = 1e-12

STATUS_OPTIMAL = "optimal"          # exact solver: proven optimum
STATUS_INFEASIBLE = "infeasible"    # no feasible set exists (exact) / set misses P1 (heuristic)
STATUS_FEASIBLE = "feasible"        # heuristic set that meets every constraint of P1
STATUS_NODE_LIMIT = "node_limit"    # exact solver stopped early; best set found so far
_STATUS_DTYPE = "<U10"


def _as_float_array(name, value):
    """``value`` as a float64 array; complex values are refused, not silently made real."""
    try:
        array = np.asarray(value)
        if array.dtype.kind == "c":
            raise TypeError("got complex values")
        if array.dtype != np.float64:
            array = array.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of real numbers: {error}") from None
    return array


def _check_finite_non_negative(name, array, values=None):
    """Raise ``ValueError`` unless every entry is finite and ``>= 0``.

    ``values`` (the entries as a list of floats) takes a cheaper path for one instance: a finite
    sum with a non-negative minimum settles it without numpy; anything else (NaN, inf, or a sum
    that overflows) goes to the numpy checks that name the fault.
    """
    if values is not None:
        total = sum(values)
        if total - total == 0.0 and min(values) >= 0:
            return
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite")
    if np.any(array < 0):
        raise ValueError(f"{name} must be >= 0, got a negative value")


def _check_level(name, level):
    """``importance`` in ``[0, 1]``; ``threshold`` finite and ``>= 0`` (as ``JointProblem``)."""
    if level.ndim == 0:
        value = float(level)
        bad = not 0.0 <= value <= 1.0 if name == "importance" else not 0.0 <= value < math.inf
    elif name == "importance":
        bad = bool(np.any(np.isnan(level)) or np.any(level < 0) or np.any(level > 1))
    else:
        bad = bool(not np.all(np.isfinite(level)) or np.any(level < 0))
    if bad:
        if name == "importance":
            raise ValueError("importance must lie in [0, 1]")
        raise ValueError("threshold must be non-negative and finite")


def numpy_sum(values):
    """Sum of a list of floats by numpy's pairwise summation (``np.add.reduce`` on float64).

    Bit for bit what numpy returns for the same numbers in the same order, so that the
    single-instance paths, which work on Python floats, report the same sums as the batched
    ones.
    """
    return _pairwise_sum(values, 0, len(values))


def _pairwise_sum(a, lo, n):
    if n < 8:
        total = 0.0
        for i in range(lo, lo + n):
            total += a[i]
        return total
    if n <= 128:
        r0, r1, r2, r3, r4, r5, r6, r7 = a[lo:lo + 8]
        i = 8
        stop = n - n % 8
        while i < stop:
            b = lo + i
            r0 += a[b]
            r1 += a[b + 1]
            r2 += a[b + 2]
            r3 += a[b + 3]
            r4 += a[b + 4]
            r5 += a[b + 5]
            r6 += a[b + 6]
            r7 += a[b + 7]
            i += 8
        total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            total += a[lo + i]
            i += 1
        return total
    half = n // 2
    half -= half % 8
    return _pairwise_sum(a, lo, half) + _pairwise_sum(a, lo + half, n - half)


@dataclass(frozen=True, eq=False)
class SelectionProblem:
    r"""A batch of P1 instances: choose the cheapest expert set that meets a relevance requirement.

    For every instance (``docs/scheduler.md``, "P1")::

        minimise   sum_k x_k cost_k
        subject to sum_k x_k relevance_k >= gamma,   1 <= sum_k x_k <= D,   x in {0, 1}^K

    with ``gamma = importance x (sum of the D largest relevances)`` or an absolute ``threshold``.

    Parameters
    ----------
    relevance : [..., K], float
        Gate relevance score of every expert (e.g. a softmax), ``>= 0`` and finite.
    cost : [..., K], float
        Cost of selecting every expert (e.g. link energy in J), ``>= 0`` and finite.
        ``relevance`` and ``cost`` broadcast against each other over the leading axes.
    max_experts : int
        ``D >= 1``, the most experts a set may hold. ``D > K`` is allowed and acts as ``D = K``.
    importance : [...], float, optional
        ``rho`` in ``[0, 1]``; broadcasts over the leading axes. ``rho = 1`` forces a top-D set,
        ``rho = 0`` the cheapest single expert.
    threshold : [...], float, optional
        Absolute requirement ``gamma``, finite and ``>= 0`` (as in ``JointProblem``); broadcasts
        over the leading axes. A threshold no ``D`` experts reach makes that instance infeasible
        (not an error).
        Give exactly one of ``importance`` and ``threshold``.

    Raises
    ------
    ValueError
        Shapes that do not broadcast, ``K = 0``, ``D < 1``, negative or non-finite cost,
        negative or non-finite relevance, ``importance`` outside ``[0, 1]``, a negative or
        non-finite ``threshold``, or both / neither of ``importance`` and ``threshold``.
    TypeError
        ``max_experts`` not an integer, or arrays that are not real numbers (complex values
        included).

    Attributes
    ----------
    relevance, cost : [..., K], float64
        Inputs broadcast to the full batch shape (read-only).
    requirement : [...], float64
        ``gamma`` of every instance.
    batch_shape : tuple
        Leading shape ``...`` (``()`` for a single instance).

    Example
    -------
    >>> p = SelectionProblem(relevance=[0.5, 0.3, 0.2], cost=[3.0, 1.0, 1.0],
    ...                      max_experts=2, importance=0.9)
    >>> round(float(p.requirement), 12)   # 0.9 x (0.5 + 0.3)
    0.72
    """

    relevance: np.ndarray
    cost: np.ndarray
    max_experts: int
    importance: np.ndarray = None
    threshold: np.ndarray = None
    requirement: np.ndarray = field(init=False, repr=False)
    top_relevance: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        relevance = _as_float_array("relevance", self.relevance)
        cost = _as_float_array("cost", self.cost)
        if relevance.ndim == 0 or cost.ndim == 0:
            raise ValueError("relevance and cost must have shape [..., K] with K >= 1, "
                             f"got shapes {relevance.shape} and {cost.shape}")
        if relevance.shape[-1] != cost.shape[-1]:
            raise ValueError("relevance and cost must have the same number of experts K "
                             f"(last axis), got shapes {relevance.shape} and {cost.shape}")
        num_experts = relevance.shape[-1]
        if num_experts == 0:
            raise ValueError("relevance and cost need at least one expert (K >= 1), got K = 0")
        # One instance (the common single call) is checked on Python floats: numpy's fixed
        # cost per call would dominate at K of a few tens.
        single = relevance.ndim == 1 and cost.ndim == 1
        relevance_values = relevance.tolist() if single else None
        cost_values = cost.tolist() if single else None
        _check_finite_non_negative("relevance", relevance, relevance_values)
        _check_finite_non_negative("cost", cost, cost_values)

        max_experts = self.max_experts
        if type(max_experts) is not int and (isinstance(max_experts, (bool, np.bool_))
                                             or not isinstance(max_experts, numbers.Integral)):
            raise TypeError(f"max_experts must be an integer D >= 1, got {max_experts!r}")
        max_experts = int(max_experts)
        if max_experts < 1:
            raise ValueError(f"max_experts must be an integer D >= 1, got {max_experts}")

        if (self.importance is None) == (self.threshold is None):
            raise ValueError("give exactly one of importance (rho in [0, 1]) and threshold "
                             "(absolute gamma)")
        name = "importance" if self.importance is not None else "threshold"
        level = _as_float_array(name, getattr(self, name))
        _check_level(name, level)
        effective_d = min(max_experts, num_experts)

        if single and level.ndim == 0:
            top = numpy_sum(sorted(relevance_values, reverse=True)[:effective_d])
            requirement = float(level) * top if name == "importance" else float(level)
            set_ = object.__setattr__
            set_(self, "relevance", _read_only(relevance))
            set_(self, "cost", _read_only(cost))
            set_(self, "max_experts", max_experts)
            set_(self, name, _read_only(level))
            set_(self, "requirement", _read_only(requirement))
            set_(self, "top_relevance", _read_only(top))
            return

        try:
            batch_shape = np.broadcast_shapes(relevance.shape[:-1], cost.shape[:-1], level.shape)
        except ValueError:
            raise ValueError(
                f"relevance {relevance.shape}, cost {cost.shape} and {name} {level.shape} must "
                "broadcast to one batch shape [..., K] / [...]") from None

        relevance = _read_only(np.broadcast_to(relevance, batch_shape + (num_experts,)))
        cost = _read_only(np.broadcast_to(cost, batch_shape + (num_experts,)))
        level = _read_only(np.broadcast_to(level, batch_shape))
        top = np.sort(relevance, axis=-1)[..., ::-1][..., :effective_d].sum(axis=-1)
        requirement = level * top if name == "importance" else level

        set_ = object.__setattr__
        set_(self, "relevance", relevance)
        set_(self, "cost", cost)
        set_(self, "max_experts", max_experts)
        set_(self, name, level)
        set_(self, "requirement", _read_only(np.asarray(requirement, dtype=np.float64)))
        set_(self, "top_relevance", _read_only(np.asarray(top, dtype=np.float64)))

    @property
    def num_experts(self):
        """``K``, the number of experts (last axis)."""
        return self.relevance.shape[-1]

    @property
    def batch_shape(self):
        """Leading shape ``...`` of the batch (``()`` for a single instance)."""
        return self.relevance.shape[:-1]

    @property
    def effective_max_experts(self):
        """``min(D, K)``."""
        return min(self.max_experts, self.num_experts)

    @property
    def tolerance(self):
        """[...], float64: slack on the requirement (``FEASIBILITY_RTOL`` x top-D relevance)."""
        return FEASIBILITY_RTOL * self.top_relevance

    def is_feasible(self, selected):
        """Whether sets meet every constraint of P1.

        Input
        -----
        selected : [..., K], bool
            Candidate sets (broadcast against the batch).

        Output
        ------
        feasible : [...], bool
            ``1 <= |S| <= D`` and relevance of ``S >= gamma`` (up to :attr:`tolerance`).
        """
        selected = np.asarray(selected, dtype=bool)
        count = selected.sum(axis=-1)
        relevance = np.where(selected, self.relevance, 0.0).sum(axis=-1)
        return ((count >= 1) & (count <= self.max_experts)
                & (relevance >= self.requirement - self.tolerance))

    def _flat(self):
        """Instances flattened to ``[B, K]`` float64 arrays (and ``gamma [B]``)."""
        num_experts = self.num_experts
        return (self.relevance.reshape(-1, num_experts), self.cost.reshape(-1, num_experts),
                self.requirement.reshape(-1), self.tolerance.reshape(-1))


def _read_only(array):
    array = np.array(array, dtype=np.float64)   # own, contiguous copy
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class SelectionResult:
    r"""Decisions of a selection scheme on a :class:`SelectionProblem` batch.

    Parameters
    ----------
    selected : [..., K], bool
        Chosen expert set of every instance (all ``False`` where an exact solver proves the
        instance infeasible).
    cost : [..., ], float64
        Sum of the cost over ``selected``. ``inf`` where an exact solver found no feasible set;
        a heuristic that misses the requirement still reports the cost of the set it returns.
    feasible : [...], bool
        Whether ``selected`` meets every constraint of P1.
    nodes : [...], int64
        Search nodes explored (branch-and-bound nodes for :func:`des`, subsets for
        :func:`brute_force`, HiGHS nodes for :func:`milp_reference`, 0 for heuristics).
    status : [...], str
        ``"optimal"``, ``"feasible"`` (heuristic set meeting P1), ``"infeasible"`` or
        ``"node_limit"`` (exact search stopped by its node limit; best set so far).
    relevance : [...], float64
        Sum of the relevance over ``selected``.
    solve_time_s : float
        Wall-clock seconds of the whole call (all instances together).
    method : str
        Name of the scheme that produced the result.

    Example
    -------
    >>> from dmoe.scheduler import SelectionProblem, des
    >>> r = des(SelectionProblem([0.5, 0.3, 0.2], [3.0, 1.0, 1.0], max_experts=2, importance=0.9))
    >>> r.selected, float(r.cost), str(r.status)
    (array([ True,  True, False]), 4.0, 'optimal')
    """

    selected: np.ndarray
    cost: np.ndarray
    feasible: np.ndarray
    nodes: np.ndarray
    status: np.ndarray
    relevance: np.ndarray
    solve_time_s: float
    method: str

    @property
    def num_selected(self):
        """[...], int64: number of experts in every set."""
        return self.selected.sum(axis=-1).astype(np.int64)

    @property
    def time_per_instance_s(self):
        """``solve_time_s`` divided by the number of instances."""
        return self.solve_time_s / max(1, int(np.prod(self.cost.shape)))


def _finish(problem, selected, status, nodes, start_time, method, exact):
    """Build a :class:`SelectionResult` from flat ``[B, K]`` decisions.

    ``exact`` solvers report ``cost = inf`` where ``status == "infeasible"``; heuristics report
    the cost of whatever set they return and get ``status`` from the feasibility check.
    """
    batch_shape = problem.batch_shape
    num_experts = problem.num_experts
    relevance_flat, cost_flat, _, _ = problem._flat()
    selected = np.asarray(selected, dtype=bool).reshape(-1, num_experts)
    cost = np.where(selected, cost_flat, 0.0).sum(axis=-1)
    relevance = np.where(selected, relevance_flat, 0.0).sum(axis=-1)
    feasible = problem.is_feasible(selected.reshape(batch_shape + (num_experts,))).reshape(-1)
    if exact:
        status = np.asarray(status, dtype=_STATUS_DTYPE).reshape(-1)
        cost = np.where(status == STATUS_INFEASIBLE, np.inf, cost)
    else:
        status = np.where(feasible, STATUS_FEASIBLE, STATUS_INFEASIBLE).astype(_STATUS_DTYPE)
    return SelectionResult(
        selected=selected.reshape(batch_shape + (num_experts,)),
        cost=cost.reshape(batch_shape),
        feasible=feasible.reshape(batch_shape),
        nodes=np.asarray(nodes, dtype=np.int64).reshape(batch_shape),
        status=status.reshape(batch_shape),
        relevance=relevance.reshape(batch_shape),
        solve_time_s=time.perf_counter() - start_time,
        method=method,
    )


def _finish_one(problem, chosen, status, nodes, start_time, method, need=None):
    """:func:`_finish` of an exact solver for one instance (``batch_shape == ()``).

    ``chosen`` lists the indices of the selected experts in increasing order; ``need``, if
    given, is ``requirement - tolerance`` as the caller computed it. Sums and the feasibility
    test use the same floating-point operations as :func:`_finish` (numpy's pairwise sum over
    the K entries, zeros for the unselected), without numpy's fixed cost per call.
    """
    cost = _masked_numpy_sum(problem.cost, chosen)
    relevance = _masked_numpy_sum(problem.relevance, chosen)
    if need is None:
        need = float(problem.requirement) - float(problem.tolerance)
    feasible = 1 <= len(chosen) <= problem.max_experts and relevance >= need
    if status == STATUS_INFEASIBLE:
        cost = math.inf
    selected = np.zeros(problem.relevance.size, dtype=bool)
    for index in chosen:
        selected[index] = True
    return SelectionResult(
        selected=selected,
        cost=np.array(cost),
        feasible=np.array(feasible),
        nodes=np.array(nodes, dtype=np.int64),
        status=np.array(status, dtype=_STATUS_DTYPE),
        relevance=np.array(relevance),
        solve_time_s=time.perf_counter() - start_time,
        method=method,
    )


def _masked_numpy_sum(values, chosen):
    """``np.where(mask, values, 0.0).sum()`` for the mask of the sorted indices ``chosen``.

    Adding the zeros of the unselected entries changes nothing, so only the chosen entries are
    visited, in the lanes numpy's pairwise summation puts them in (:func:`numpy_sum`).
    """
    size = values.size
    if size > 128:
        dense = [0.0] * size
        for index in chosen:
            dense[index] = values.item(index)
        return numpy_sum(dense)
    picked = [values.item(index) for index in chosen]
    if size < 8:
        total = 0.0
        for value in picked:
            total += value
        return total
    lanes = [0.0] * 8
    stop = size - size % 8
    tail_values = []
    for index, value in zip(chosen, picked):
        if index < stop:
            lanes[index % 8] += value
        else:
            tail_values.append(value)
    total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
    for value in tail_values:
        total += value
    return total


def _check_problem(problem):
    """Raise ``TypeError`` unless ``problem`` is a :class:`SelectionProblem` (every solver's first step)."""
    if not isinstance(problem, SelectionProblem):
        raise TypeError(f"problem must be a SelectionProblem, got {type(problem).__name__}")
