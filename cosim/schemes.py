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
from typing import Any, Callable, Optional

import numpy as np

from dmoe import scheduler

from .config import SCHEMES

__all__ = ["Decision", "SchemeOptions", "Scheme", "SCHEMES", "decide", "register_scheme",
           "registered_schemes", "get_scheme"]

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


@dataclass(frozen=True)
class SchemeOptions:
    """What a scheme may read besides the problem.

    Attributes
    ----------
    rng : numpy.random.Generator or None
        The scheme's own random stream (seeded per point and scheme).
    top_k : int or None
        k of ``top_k`` (None: ``problem.max_experts``).
    weighted_sum_lambda : float
        lambda of ``weighted_sum``.
    compute_time_s : float
        Compute time of one expert evaluation (``wlr`` ranks by latency).
    layer : int
        The MoE layer of this decision.
    config : StudyConfig or None
        The whole point (None when :func:`decide` is called outside a study).
    """

    rng: Optional[np.random.Generator] = None
    top_k: Optional[int] = None
    weighted_sum_lambda: float = 0.5
    compute_time_s: float = 0.0
    layer: int = 0
    config: Any = None


@dataclass(frozen=True)
class Scheme:
    """A registered scheme.

    Attributes
    ----------
    name : str
    decide : callable
        ``decide(problem, options) -> Decision`` or ``selected [T, K] bool`` (subcarriers are then
        assigned by the energy-optimal rule of the selection-only schemes).
    layerwise : bool
        Plans with the layer's entry of ``layer_importance`` instead of ``importance``.
    """

    name: str
    decide: Callable
    layerwise: bool = False


_REGISTRY = {}


def register_scheme(name, decide, *, layerwise=False, replace=False):
    r"""Make a scheme available to :func:`decide` and to study files under ``name``.

    Parameters
    ----------
    name : str
        Identifier used in ``schemes = [...]`` of a study.
    decide : callable
        ``decide(problem, options)`` with ``problem`` a :class:`~dmoe.scheduler.JointProblem`
        (batch ``[T]``) and ``options`` a :class:`SchemeOptions`; returns the expert set
        ``selected`` [T, K] bool (each selected link then gets its energy-optimal subcarrier
        per phase) or a full :class:`Decision`.
    layerwise : bool
        Plan with ``layer_importance[layer]`` (the study must set it) instead of ``importance``.
    replace : bool
        Allow replacing an existing registration of ``name``.

    Output
    ------
    scheme : Scheme

    Example
    -------
    >>> def cheapest(problem, options):          # the D cheapest experts, whatever they know
    ...     rate = problem.rate_dispatch.max(axis=-1)
    ...     order = np.argsort(-rate, axis=-1)[:, :problem.max_experts]
    ...     selected = np.zeros(rate.shape, bool)
    ...     np.put_along_axis(selected, order, True, axis=-1)
    ...     return selected
    >>> register_scheme("cheapest", cheapest)      # doctest: +SKIP

    Registrations live in the process that makes them: a process-pool or Ray executor runs
    points in fresh interpreters, so register there too (e.g. in a module the workers import).
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be an identifier such as 'my_scheme', got {name!r}")
    if not callable(decide):
        raise TypeError(f"decide must be callable as decide(problem, options), got "
                        f"{type(decide).__name__}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"scheme {name!r} is already registered (pass replace=True to "
                         "replace it)")
    scheme = Scheme(name=name, decide=decide, layerwise=bool(layerwise))
    _REGISTRY[name] = scheme
    return scheme


def registered_schemes():
    """Names of every registered scheme, built-in ones first: tuple of str."""
    return tuple(_REGISTRY)


def get_scheme(name):
    """The :class:`Scheme` registered as ``name`` (``ValueError`` naming the known ones)."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"scheme must be one of {', '.join(_REGISTRY)}, got {name!r}") from None


def decide(scheme, problem, *, rng=None, top_k=None, weighted_sum_lambda=0.5,
           compute_time_s=0.0, layer=0, config=None):
    r"""Run one registered scheme on a batch of one-layer problems.

    Parameters
    ----------
    scheme : str
        A registered name (:data:`SCHEMES` or :func:`register_scheme`).
    problem : dmoe.scheduler.JointProblem
        Batch shape ``[T]``, with a return phase; all planning rates > 0.
    rng, top_k, weighted_sum_lambda, compute_time_s, layer, config
        The :class:`SchemeOptions` the scheme sees.

    Output
    ------
    decision : Decision
    """
    entry = get_scheme(scheme)
    options = SchemeOptions(rng=rng, top_k=top_k, weighted_sum_lambda=weighted_sum_lambda,
                            compute_time_s=compute_time_s, layer=layer, config=config)
    num = problem.relevance.shape[0]
    start = time.perf_counter()
    result = entry.decide(problem, options)
    if not isinstance(result, Decision):
        selected = np.asarray(result)
        if selected.shape != problem.relevance.shape or selected.dtype != bool:
            raise ValueError(f"scheme {scheme!r} returned {selected.dtype} "
                             f"{list(selected.shape)}: expected a Decision or selected "
                             f"[{num}, {problem.num_experts}] bool")
        dispatch, returned, _ = scheduler.allocate_subcarriers(problem, selected)
        result = Decision(selected=selected, dispatch=dispatch, returned=returned,
                          nodes=np.full(num, np.nan), iterations=np.full(num, np.nan),
                          solver_time_s=0.0)
    return Decision(selected=result.selected, dispatch=result.dispatch,
                    returned=result.returned, nodes=result.nodes,
                    iterations=result.iterations, solver_time_s=time.perf_counter() - start)


# ---- the built-in schemes

def _selection_problem(problem):
    """P1 of a joint problem, on the decoupled best-subcarrier costs."""
    return scheduler.SelectionProblem(
        relevance=problem.relevance, cost=_best_costs(problem),
        max_experts=min(problem.max_experts, problem.num_experts), importance=problem.importance)


def _selection_only(rule, searches=False):
    """A scheme that picks experts with ``rule(p1, problem, options) -> SelectionResult``
    (``searches``: it reports branch-and-bound nodes)."""
    def scheme(problem, options):
        result = rule(_selection_problem(problem), problem, options)
        selected = np.asarray(result.selected, dtype=bool)
        dispatch, returned, _ = scheduler.allocate_subcarriers(problem, selected)
        num = selected.shape[0]
        nodes = (np.asarray(result.nodes, dtype=np.float64) if searches
                 else np.full(num, np.nan))
        return Decision(selected=selected, dispatch=dispatch, returned=returned, nodes=nodes,
                        iterations=np.full(num, np.nan), solver_time_s=0.0)
    return scheme


def _joint(solve, keep_iterations=False):
    """A scheme that chooses experts and subcarriers together with ``solve(problem, options)``."""
    def scheme(problem, options):
        result = solve(problem, options)
        num = problem.relevance.shape[0]
        iterations = (np.asarray(result.iterations, dtype=np.float64) if keep_iterations
                      else np.full(num, np.nan))
        return Decision(selected=np.asarray(result.selected, bool),
                        dispatch=np.asarray(result.dispatch, bool),
                        returned=np.asarray(result.returned, bool), nodes=np.full(num, np.nan),
                        iterations=iterations, solver_time_s=0.0)
    return scheme


def _des(p1, problem, options):
    return scheduler.des(p1)


def _top(k):
    def rule(p1, problem, options):
        chosen = k or options.top_k or problem.max_experts
        return scheduler.top_k(p1, min(chosen, problem.num_experts))
    return rule


def _optimal(problem, options):
    # Both methods are exact; enumerating the expert sets (Hungarian inside) is ~100x faster
    # than the MILP while the sets are few.
    sets = sum(math.comb(problem.num_experts, d)
               for d in range(1, min(problem.max_experts, problem.num_experts) + 1))
    return scheduler.jesa_exact(problem, method="enumerate" if sets <= _MAX_ENUMERATED_SETS
                                else "milp")


_BUILTIN = {
    "des": _selection_only(_des, searches=True),
    "jesa": _joint(lambda problem, options: scheduler.jesa(problem), keep_iterations=True),
    "top_k": _selection_only(_top(None)),
    "top_1": _selection_only(_top(1)),
    "top_2": _selection_only(_top(2)),
    "channel_only": _selection_only(lambda p1, problem, options: scheduler.channel_only(p1)),
    "random": _selection_only(
        lambda p1, problem, options: scheduler.random_selection(p1, options.rng)),
    "weighted_sum": _selection_only(
        lambda p1, problem, options: scheduler.weighted_sum(p1, options.weighted_sum_lambda)),
    "wlr": _selection_only(lambda p1, problem, options: scheduler.wlr(
        p1, latency=_best_latency(problem, options.compute_time_s))),
    "optimal": _joint(_optimal),
    "des_random_subcarriers": _joint(
        lambda problem, options: scheduler.des_random_subcarriers(problem, options.rng)),
}

for _name in SCHEMES:
    # `des_layerwise` is `des` planned with the layer's rho, likewise `jesa_layerwise`.
    register_scheme(_name, _BUILTIN[_name.removesuffix("_layerwise")],
                    layerwise=_name.endswith("_layerwise"))
