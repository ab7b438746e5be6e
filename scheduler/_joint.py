"""The joint expert and subcarrier allocation problem (P2) and its result type.

See ``docs/jesa.md`` for the model: a link carrying ``B`` bits on subcarrier set ``N_k`` costs
``P_sc |N_k| B / sum_{n in N_k} r[k, n]`` joules and lasts ``B / sum_{n in N_k} r[k, n]`` seconds.
"""

from dataclasses import dataclass, field

import numpy as np

from ._problem import FEASIBILITY_RTOL

__all__ = ["JointProblem", "JointResult"]

# Values of JointResult.status (strings, like SelectionResult.status of P1).
STATUS_OPTIMAL = "optimal"  # jesa_exact: proven optimum
STATUS_CONVERGED = "converged"  # jesa: the set and the allocation stopped changing
STATUS_FEASIBLE = "feasible"  # a baseline's decision that meets every constraint
STATUS_INFEASIBLE = "infeasible"  # no feasible decision (found)
STATUS_ITERATION_LIMIT = "iteration_limit"  # jesa stopped at max_iterations, best so far
_STATUS_DTYPE = "<U16"


def _as_float_array(value, name):
    try:
        array = np.asarray(value)
        kind = array.dtype.kind
        array = array.astype(np.float64, copy=False) if kind != "c" else None
    except (TypeError, ValueError) as error:
        raise TypeError(f"`{name}` must be a real array, got {type(value).__name__}") from error
    if array is None:  # numpy alone would drop the imaginary part with a warning
        raise TypeError(f"`{name}` must be a real array, got complex values")
    return array


def _broadcast(value, shape, name, expected):
    array = _as_float_array(value, name)
    if array.ndim == 0:  # a scalar: np.full skips broadcast_to's fixed cost
        return np.full(shape, array)
    try:
        return np.broadcast_to(array, shape).copy()
    except ValueError as error:
        raise ValueError(
            f"`{name}` must broadcast to {expected} = {shape}, got shape {array.shape}"
        ) from error


def _check_positive_finite(array, name):
    # min > 0 fails on NaN too; max < inf catches +inf (one reduction each).
    if array.size and not (array.min() > 0 and array.max() < np.inf):
        raise ValueError(f"`{name}` must be positive and finite")


class JointProblem:
    """Joint expert selection and subcarrier allocation (P2) for a batch of tokens.

    minimise ``sum_k x_k (E^d_k(N^d_k) + E^u_k(N^u_k) + E^c_k)`` subject to the P1 constraints
    (``sum_k x_k g_k >= gamma``, ``1 <= sum_k x_k <= D``), subcarrier sets disjoint among the
    links of one phase, ``N_k`` non-empty iff ``x_k = 1``, and optionally airtime ``<= T`` per
    phase. ``E_k(N_k) = P_sc |N_k| B / sum_{n in N_k} r[k, n]`` (``docs/jesa.md``).

    Parameters
    ----------
    relevance : [..., K], float
        Gate relevance scores ``g`` (non-negative).
    rate_dispatch : [..., K, N], float
        Planning rate in bit/s of subcarrier ``n`` on the coordinator -> node ``k`` link
        (non-negative; a zero rate makes that subcarrier unusable for that link).
    payload_bits_dispatch : float or [...] or [..., K], float
        Bits sent to each selected expert (broadcast to ``[..., K]``).
    subcarrier_power_w : float or [...] or [..., K], float
        Transmit power per subcarrier in watts (broadcast to ``[..., K]``, positive).
    max_experts : int
        ``D``, the largest number of experts per token (``>= 1``).
    importance : float or [...], float, optional
        ``rho`` in [0, 1]: ``gamma = rho x`` (sum of the ``D`` largest relevances).
    threshold : float or [...], float, optional
        Absolute relevance requirement ``gamma`` (exactly one of ``importance``/``threshold``).
    rate_return : [..., K, N], float, optional
        Planning rates of the node ``k`` -> coordinator links. Without it there is no return phase.
    payload_bits_return : float or [...] or [..., K], float, optional
        Bits returned by each selected expert; required with ``rate_return``.
    deadline_s : None, float, [...] or pair, optional
        Airtime limit ``T`` of every link. A scalar or ``[...]`` array applies to both phases;
        a tuple or list ``(T_dispatch, T_return)`` sets each phase (``None`` or ``inf`` for no
        limit).
    compute_energy_j : [..., K], float, optional
        Fixed compute energy of each expert, added when it is selected (default 0).

    Example
    -------
    >>> import numpy as np
    >>> from dmoe.scheduler import JointProblem, jesa
    >>> rng = np.random.default_rng(0)
    >>> g = rng.dirichlet(np.ones(8), size=100)                       # [100, 8]
    >>> r = 30e3 * np.log2(1 + 10 * rng.exponential(size=(100, 8, 64)))  # [100, 8, 64]
    >>> p = JointProblem(relevance=g, rate_dispatch=r, payload_bits_dispatch=65536,
    ...                  subcarrier_power_w=0.01, max_experts=3, importance=0.8)
    >>> res = jesa(p)
    >>> res.energy_j.shape, res.dispatch.shape
    ((100,), (100, 8, 64))
    """

    def __init__(
        self,
        *,
        relevance,
        rate_dispatch,
        payload_bits_dispatch,
        subcarrier_power_w,
        max_experts,
        importance=None,
        threshold=None,
        rate_return=None,
        payload_bits_return=None,
        deadline_s=None,
        compute_energy_j=None,
    ):
        relevance = _as_float_array(relevance, "relevance")
        if relevance.ndim < 1 or relevance.shape[-1] == 0:
            raise ValueError(f"`relevance` must have shape [..., K] with K >= 1, got {relevance.shape}")
        if relevance.size and not (relevance.min() >= 0 and relevance.max() < np.inf):  # NaN fails both comparisons
            raise ValueError("`relevance` must be non-negative and finite")
        batch_shape, num_experts = relevance.shape[:-1], relevance.shape[-1]

        rate_dispatch = self._check_rate(rate_dispatch, "rate_dispatch", batch_shape, num_experts)
        num_subcarriers = rate_dispatch.shape[-1]
        if (rate_return is None) != (payload_bits_return is None):
            raise ValueError("`rate_return` and `payload_bits_return` must be given together")
        if rate_return is not None:
            rate_return = self._check_rate(rate_return, "rate_return", batch_shape, num_experts)
            if rate_return.shape[-1] != num_subcarriers:
                raise ValueError(
                    f"`rate_return` must have N = {num_subcarriers} subcarriers like `rate_dispatch`, "
                    f"got shape {rate_return.shape}"
                )

        link_shape = batch_shape + (num_experts,)
        payload_bits_dispatch = self._per_link(payload_bits_dispatch, "payload_bits_dispatch", link_shape)
        _check_positive_finite(payload_bits_dispatch, "payload_bits_dispatch")
        if payload_bits_return is not None:
            payload_bits_return = self._per_link(payload_bits_return, "payload_bits_return", link_shape)
            _check_positive_finite(payload_bits_return, "payload_bits_return")
        subcarrier_power_w = self._per_link(subcarrier_power_w, "subcarrier_power_w", link_shape)
        _check_positive_finite(subcarrier_power_w, "subcarrier_power_w")

        if isinstance(max_experts, (bool, np.bool_)) or not isinstance(max_experts, (int, np.integer)):
            raise TypeError(f"`max_experts` must be an int, got {type(max_experts).__name__}")
        if max_experts < 1:
            raise ValueError(f"`max_experts` must be >= 1, got {max_experts}")

        if (importance is None) == (threshold is None):
            raise ValueError("give exactly one of `importance` (rho) and `threshold` (gamma)")
        if importance is not None:
            importance = _broadcast(importance, batch_shape, "importance", "the batch shape [...]")
            if importance.size and not (importance.min() >= 0 and importance.max() <= 1):  # NaN fails
                raise ValueError("`importance` must lie in [0, 1]")
        else:
            threshold = _broadcast(threshold, batch_shape, "threshold", "the batch shape [...]")
            if threshold.size and not (threshold.min() >= 0 and threshold.max() < np.inf):
                raise ValueError("`threshold` must be non-negative and finite")

        deadline_dispatch, deadline_return = self._check_deadline(deadline_s, batch_shape)

        if compute_energy_j is None:
            compute_energy_j = np.zeros(link_shape)
        else:
            compute_energy_j = _broadcast(compute_energy_j, link_shape, "compute_energy_j", "[..., K]")
            if compute_energy_j.size and not (compute_energy_j.min() >= 0 and compute_energy_j.max() < np.inf):
                raise ValueError("`compute_energy_j` must be non-negative and finite")

        self.relevance = relevance
        self.rate_dispatch = rate_dispatch
        self.payload_bits_dispatch = payload_bits_dispatch
        self.rate_return = rate_return
        self.payload_bits_return = payload_bits_return
        self.subcarrier_power_w = subcarrier_power_w
        self.max_experts = int(max_experts)
        self.importance = importance
        self.threshold = threshold
        self.deadline_dispatch_s = deadline_dispatch
        self.deadline_return_s = deadline_return
        self.compute_energy_j = compute_energy_j
        d = min(self.max_experts, num_experts)
        # Sum of the D largest relevances, [...]: sets gamma (with rho) and its tolerance.
        self.top_relevance = np.sort(relevance, axis=-1)[..., ::-1][..., :d].sum(axis=-1)

    # ------------------------------------------------------------------ validation helpers
    @staticmethod
    def _check_rate(rate, name, batch_shape, num_experts):
        rate = _as_float_array(rate, name)
        expected = batch_shape + (num_experts,)
        if rate.ndim != len(expected) + 1 or rate.shape[:-1] != expected or rate.shape[-1] == 0:
            raise ValueError(f"`{name}` must have shape [..., K, N] = {expected} + (N >= 1,), got {rate.shape}")
        if rate.size and not (rate.min() >= 0 and rate.max() < np.inf):  # NaN fails both comparisons
            raise ValueError(f"`{name}` must be non-negative and finite")
        return rate

    @staticmethod
    def _per_link(value, name, link_shape):
        array = _as_float_array(value, name)
        # A value of the batch shape [...] is per token: give it a trailing expert axis.
        if array.ndim >= 1 and array.shape == link_shape[:-1] and array.shape != link_shape:
            array = array[..., None]
        return _broadcast(array, link_shape, name, "[..., K]")

    @staticmethod
    def _check_deadline(deadline_s, batch_shape):
        if deadline_s is None:
            phases = (None, None)
        elif isinstance(deadline_s, (tuple, list)):
            if len(deadline_s) != 2:
                raise ValueError("`deadline_s` as a sequence must be a pair (dispatch, return)")
            phases = tuple(deadline_s)
        else:
            phases = (deadline_s, deadline_s)
        out = []
        for phase, value in zip(("dispatch", "return"), phases):
            if value is None:
                out.append(np.full(batch_shape, np.inf))
                continue
            array = _broadcast(value, batch_shape, f"deadline_s ({phase})", "the batch shape [...]")
            if array.size and not array.min() > 0:  # NaN fails the comparison; inf is no deadline
                raise ValueError(f"`deadline_s` ({phase}) must be positive (inf for no deadline)")
            out.append(array)
        return out[0], out[1]

    # ------------------------------------------------------------------ properties
    @property
    def batch_shape(self):
        """Leading shape ``[...]`` of the batch of instances."""
        return self.relevance.shape[:-1]

    @property
    def num_experts(self):
        """``K``."""
        return self.relevance.shape[-1]

    @property
    def num_subcarriers(self):
        """``N``."""
        return self.rate_dispatch.shape[-1]

    @property
    def has_return(self):
        """Whether the problem has a return phase."""
        return self.rate_return is not None

    @property
    def gamma(self):
        """Relevance requirement ``gamma``, [...], float64."""
        if self.threshold is not None:
            return self.threshold
        return self.importance * self.top_relevance

    @property
    def gamma_tolerance(self):
        """Slack on ``gamma``, [...], float64: P1's ``FEASIBILITY_RTOL`` x (sum of the D largest
        relevances), so that P2 and P1 accept the same sets (``docs/scheduler.md``)."""
        return FEASIBILITY_RTOL * self.top_relevance

    def phases(self):
        """The phases as ``(rate [..., K, N], payload_bits [..., K], deadline_s [...])`` tuples."""
        out = [(self.rate_dispatch, self.payload_bits_dispatch, self.deadline_dispatch_s)]
        if self.has_return:
            out.append((self.rate_return, self.payload_bits_return, self.deadline_return_s))
        return out

    def _flat(self):
        """A view of the problem with its batch flattened to ``[B]`` instances (internal)."""
        flat = object.__new__(JointProblem)
        shape = (int(np.prod(self.batch_shape, dtype=np.int64)),)
        k, n = self.num_experts, self.num_subcarriers
        flat.relevance = self.relevance.reshape(shape + (k,))
        flat.rate_dispatch = self.rate_dispatch.reshape(shape + (k, n))
        flat.payload_bits_dispatch = self.payload_bits_dispatch.reshape(shape + (k,))
        flat.rate_return = None if self.rate_return is None else self.rate_return.reshape(shape + (k, n))
        flat.payload_bits_return = (
            None if self.payload_bits_return is None else self.payload_bits_return.reshape(shape + (k,))
        )
        flat.subcarrier_power_w = self.subcarrier_power_w.reshape(shape + (k,))
        flat.max_experts = self.max_experts
        flat.importance = None if self.importance is None else self.importance.reshape(shape)
        flat.threshold = None if self.threshold is None else self.threshold.reshape(shape)
        flat.deadline_dispatch_s = self.deadline_dispatch_s.reshape(shape)
        flat.deadline_return_s = self.deadline_return_s.reshape(shape)
        flat.compute_energy_j = self.compute_energy_j.reshape(shape + (k,))
        flat.top_relevance = self.top_relevance.reshape(shape)
        return flat

    def energy_j(self, selected, dispatch, returned=None):
        """Total energy of a decision, ``inf`` where it breaks a constraint of P2.

        Input
        -----
        selected : [..., K], bool
        dispatch : [..., K, N], bool
        returned : [..., K, N], bool, optional (ignored without a return phase)

        Output
        ------
        energy_j : [...], float64
            Dispatch + return + compute energy; ``inf`` if the set misses ``gamma`` or ``D``,
            subcarrier sets overlap, a selected link has none, an unselected link has some, or a
            link misses its deadline.
        """
        return self._energy_and_links(selected, dispatch, returned)[0]

    def _energy_and_links(self, selected, dispatch, returned=None):
        """``energy_j`` and each phase's ``(energy_j, airtime_s)`` of every link, [..., K] (internal)."""
        selected = np.asarray(selected, dtype=bool)
        total = np.where(selected, self.compute_energy_j, 0.0).sum(axis=-1)
        masks = [np.asarray(dispatch, dtype=bool)]
        if self.has_return:
            masks.append(np.asarray(returned, dtype=bool))
        ok = _meets_selection(self, selected)
        links = []
        for (rate, bits, deadline), mask in zip(self.phases(), masks):
            energy, airtime = link_energy_airtime(rate, mask, bits, self.subcarrier_power_w)
            links.append((energy, airtime))
            ok &= (mask.sum(axis=-2) <= 1).all(axis=-1)
            ok &= (mask.any(axis=-1) == selected).all(axis=-1)
            served = (airtime <= deadline[..., None] * (1 + 1e-12)) & np.isfinite(energy)
            ok &= (~selected | served).all(axis=-1)
            total = total + np.where(selected, energy, 0.0).sum(axis=-1)
        return np.where(ok, total, np.inf), links


def _meets_selection(problem, selected):
    count = selected.sum(axis=-1)
    reached = np.where(selected, problem.relevance, 0.0).sum(axis=-1)
    return (count >= 1) & (count <= problem.max_experts) & (reached >= problem.gamma - problem.gamma_tolerance)


def link_energy_airtime(rate, mask, payload_bits, power_w):
    """Energy and airtime of each link on its subcarrier set.

    Input
    -----
    rate : [..., K, N], float; mask : [..., K, N], bool; payload_bits, power_w : [..., K], float

    Output
    ------
    energy_j, airtime_s : [..., K], float64
        ``P |N_k| B / sum r`` and ``B / sum r``; 0 for an empty set, ``inf`` for a zero rate sum
        (a payload on subcarriers that carry nothing never arrives).
    """
    rate_sum = np.where(mask, rate, 0.0).sum(axis=-1)
    count = mask.sum(axis=-1)
    used = count > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        airtime = np.where(used, payload_bits / rate_sum, 0.0)
    energy = np.where(used, power_w * count * airtime, 0.0)
    return energy, airtime


def fewest_best(rate, available, payload_bits, power_w, deadline_s):
    """Each link's cheapest subcarrier set among the available ones (the structural fact).

    With no deadline that is the single best subcarrier; with airtime limit ``T`` it is the
    fewest best subcarriers whose rates add up to ``B / T`` (``docs/jesa.md``).

    Input
    -----
    rate : [..., K, N], float; available : [..., K, N], bool
    payload_bits, power_w : [..., K], float; deadline_s : [...], float (inf = none)

    Output
    ------
    energy_j : [..., K], float64 (``inf`` where no available set meets the deadline)
    count : [..., K], int (subcarriers used; 0 where infeasible)
    order : [..., K, N], int (available subcarriers, best first; take the first ``count``),
        or None when no instance has a deadline
    """
    # available=True (every subcarrier, a plain bool): the rates as they are, no copy.
    usable = rate if available is True else np.where(available, rate, 0.0)
    if not np.isfinite(deadline_s).any():
        # No deadline anywhere: the single best subcarrier, no sort needed.
        best = usable.max(axis=-1)
        positive = best > 0  # the division sees positive rates only
        energy = np.where(positive, power_w * payload_bits / np.where(positive, best, 1.0), np.inf)
        return energy, positive.astype(np.int64), None
    order = np.argsort(-usable, axis=-1, kind="stable")
    sorted_rate = np.take_along_axis(usable, order, axis=-1)
    cumulative = np.cumsum(sorted_rate, axis=-1)
    needed = payload_bits / deadline_s[..., None]  # 0 with no deadline
    meets = (cumulative >= needed[..., None]) & (cumulative > 0)
    feasible = meets.any(axis=-1)
    count = np.where(feasible, np.argmax(meets, axis=-1) + 1, 0)
    rate_sum = np.take_along_axis(cumulative, np.maximum(count - 1, 0)[..., None], axis=-1)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        energy = np.where(feasible, power_w * count * payload_bits / rate_sum, np.inf)
    return energy, count, order


@dataclass
class JointResult:
    """Decision of a P2 solver for a batch of instances.

    Attributes
    ----------
    selected : [..., K], bool
        Chosen experts (all ``False`` where infeasible).
    dispatch : [..., K, N], bool
        Subcarriers of each expert's dispatch link (disjoint across experts).
    returned : [..., K, N], bool
        Subcarriers of each expert's return link (all ``False`` without a return phase).
    energy_j : [...], float64
        Total energy (dispatch + return + compute), ``inf`` where infeasible.
    feasible : [...], bool
    iterations : [...], int64
        DES calls made (``jesa``); 1 for the one-shot schemes and ``jesa_exact``.
    status : [...], str
        ``"optimal"`` (``jesa_exact``), ``"converged"`` (``jesa``), ``"feasible"`` (baselines),
        ``"iteration_limit"`` (``jesa`` stopped early, best decision so far) or ``"infeasible"``
        (no feasible decision exists, or the scheme found none).
    solve_time_s : float
        Wall time of the whole call.
    history : [..., I], float64
        Objective after each round, padded with the final value (non-increasing for ``jesa``).
    energy_dispatch_j, energy_return_j, energy_compute_j : [...], float64
        The parts of ``energy_j``.
    airtime_dispatch_s, airtime_return_s : [..., K], float64
        Airtime of each selected link (0 for unselected experts).
    """

    selected: np.ndarray
    dispatch: np.ndarray
    returned: np.ndarray
    energy_j: np.ndarray
    feasible: np.ndarray
    iterations: np.ndarray
    status: np.ndarray
    solve_time_s: float
    history: np.ndarray
    energy_dispatch_j: np.ndarray = field(repr=False)
    energy_return_j: np.ndarray = field(repr=False)
    energy_compute_j: np.ndarray = field(repr=False)
    airtime_dispatch_s: np.ndarray = field(repr=False)
    airtime_return_s: np.ndarray = field(repr=False)

    @property
    def num_selected(self):
        """[...], int64: experts per instance."""
        return self.selected.sum(axis=-1).astype(np.int64)

    @property
    def time_per_instance_s(self):
        """``solve_time_s`` divided by the number of instances."""
        return self.solve_time_s / max(1, int(np.prod(self.energy_j.shape)))


def build_result(problem, selected, dispatch, returned, iterations, status, solve_time_s, history, batch_shape,
                 evaluated=None):
    """Fill a JointResult from flat ``[B, ...]`` decisions (internal). ``evaluated``: what
    ``problem._energy_and_links`` returned for this very decision, if the caller has it."""
    num = selected.shape[0]
    infeasible = status == STATUS_INFEASIBLE
    if infeasible.any():
        selected = np.where(infeasible[:, None], False, selected)
        dispatch = np.where(infeasible[:, None, None], False, dispatch)
        returned = np.where(infeasible[:, None, None], False, returned)
        evaluated = None  # the decision is no longer the one evaluated
    if evaluated is None:
        evaluated = problem._energy_and_links(selected, dispatch, returned if problem.has_return else None)
    total, links = evaluated
    parts = [energy.sum(axis=-1) for energy, _ in links]
    airtimes = [airtime for _, airtime in links]
    if not problem.has_return:
        parts.append(np.zeros(num))
        airtimes.append(np.zeros_like(airtimes[0]))
    compute = np.where(selected, problem.compute_energy_j, 0.0).sum(axis=-1)
    total = np.where(infeasible, np.inf, total)
    feasible = np.isfinite(total)
    status = np.where(feasible, status, STATUS_INFEASIBLE)
    k, n = problem.num_experts, problem.num_subcarriers

    def shape(a, *tail):
        return a.reshape(batch_shape + tail)

    return JointResult(
        selected=shape(selected, k),
        dispatch=shape(dispatch, k, n),
        returned=shape(returned, k, n),
        energy_j=shape(total),
        feasible=shape(feasible),
        iterations=shape(np.asarray(iterations, dtype=np.int64)),
        status=shape(np.asarray(status, dtype=_STATUS_DTYPE)),
        solve_time_s=float(solve_time_s),
        history=shape(history, history.shape[-1]),
        energy_dispatch_j=shape(np.where(feasible, parts[0], np.inf)),
        energy_return_j=shape(np.where(feasible, parts[1], np.inf)),
        energy_compute_j=shape(np.where(feasible, compute, np.inf)),
        airtime_dispatch_s=shape(airtimes[0], k),
        airtime_return_s=shape(airtimes[1], k),
    )
