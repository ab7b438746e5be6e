"""P1, the expert-selection problem, and the result every selection scheme returns.

See ``docs/scheduler.md`` ("P1", "Importance factor", "Tolerances").
"""

from dataclasses import dataclass, field
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
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of real numbers: {error}") from None
    return array


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
        Absolute requirement ``gamma`` (not NaN); broadcasts over the leading axes. A threshold
        no ``D`` experts reach makes that instance infeasible (not an error).
        Give exactly one of ``importance`` and ``threshold``.

    Raises
    ------
    ValueError
        Shapes that do not broadcast, ``K = 0``, ``D < 1``, negative or non-finite cost,
        negative or non-finite relevance, ``importance`` outside ``[0, 1]``, a NaN
        ``threshold``, or both / neither of ``importance`` and ``threshold``.
    TypeError
        ``max_experts`` not an integer, or arrays that are not real numbers.

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
        if not np.all(np.isfinite(relevance)):
            raise ValueError("relevance must be finite")
        if np.any(relevance < 0):
            raise ValueError("relevance must be >= 0, got a negative score")
        if not np.all(np.isfinite(cost)):
            raise ValueError("cost must be finite")
        if np.any(cost < 0):
            raise ValueError("cost must be >= 0, got a negative cost")

        max_experts = self.max_experts
        if isinstance(max_experts, (bool, np.bool_)) or not isinstance(max_experts, numbers.Integral):
            raise TypeError(f"max_experts must be an integer D >= 1, got {max_experts!r}")
        max_experts = int(max_experts)
        if max_experts < 1:
            raise ValueError(f"max_experts must be an integer D >= 1, got {max_experts}")

        if (self.importance is None) == (self.threshold is None):
            raise ValueError("give exactly one of importance (rho in [0, 1]) and threshold "
                             "(absolute gamma)")
        if self.importance is not None:
            level = _as_float_array("importance", self.importance)
            if np.any(np.isnan(level)) or np.any(level < 0) or np.any(level > 1):
                raise ValueError("importance must lie in [0, 1]")
            name = "importance"
        else:
            level = _as_float_array("threshold", self.threshold)
            if np.any(np.isnan(level)):
                raise ValueError("threshold must not be NaN")
            name = "threshold"

        try:
            batch_shape = np.broadcast_shapes(relevance.shape[:-1], cost.shape[:-1], level.shape)
        except ValueError:
            raise ValueError(
                f"relevance {relevance.shape}, cost {cost.shape} and {name} {level.shape} must "
                "broadcast to one batch shape [..., K] / [...]") from None

        relevance = _read_only(np.broadcast_to(relevance, batch_shape + (num_experts,)))
        cost = _read_only(np.broadcast_to(cost, batch_shape + (num_experts,)))
        level = _read_only(np.broadcast_to(level, batch_shape))
        effective_d = min(max_experts, num_experts)
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


def _check_problem(problem):
    """Raise ``TypeError`` unless ``problem`` is a :class:`SelectionProblem` (every solver's first step)."""
    if not isinstance(problem, SelectionProblem):
        raise TypeError(f"problem must be a SelectionProblem, got {type(problem).__name__}")
