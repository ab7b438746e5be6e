r"""Replay of recorded gate scores (``trace`` task): relevance from a file, accuracy = retained mass.

A trace is an ``.npz`` with ``gates`` (softmax relevance) or ``logits`` (router logits, softmaxed
here), shaped ``[tokens, layers, experts]``. There are no activations in a trace, so the
"hidden state" of a token is just its index into the trace, experts have no outputs, and the
"accuracy" of a selection is the relevance mass it keeps, averaged over tokens and layers:
``mean_{t, l} sum_{k in S_{t,l}} g_{t,l,k}`` (1.0 = every expert kept). This is a proxy, not a task
accuracy: it says how much of the router's own weight survived, not whether the answer is right.
"""

import os
from dataclasses import dataclass

import numpy as np

from dmoe.common import DEFAULT_EXECUTION, check_execution
from dmoe.moe import quantize as _quantize
from dmoe.moe._masks import expert_mask
from dmoe.moe.config import MoEConfig

__all__ = ["TraceMoE", "TraceState", "record_trace", "load_trace"]


@dataclass(frozen=True)
class TraceState:
    """Coordinator state of a trace in the co-simulation: tokens and the relevance that arrived.

    Attributes
    ----------
    tokens : [batch], int64
        Token indices into the trace.
    arrived_mass : float
        Relevance of the experts whose outputs arrived, summed over tokens and the layers
        combined so far.
    """

    tokens: np.ndarray
    arrived_mass: float = 0.0


def load_trace(path):
    """Relevance scores of a trace file.

    Parameters
    ----------
    path : str or os.PathLike
        ``.npz`` with ``gates`` (rows on the simplex) or ``logits`` (any finite floats), each
        ``[tokens, layers, experts]``.

    Output
    ------
    gates : [tokens, layers, experts], float32, rows sum to 1

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        ``path`` is not an ``.npz`` archive holding a valid ``gates`` or ``logits`` array (the
        message names the file and ``trace_path``).
    """
    name = f"trace file {os.fspath(path)!r} (trace_path)"
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name} does not exist")
    try:
        archive = np.load(os.fspath(path), allow_pickle=False)
    except Exception as error:  # numpy raises several types for a file it cannot read
        raise ValueError(f"{name} is not a readable .npz archive ({type(error).__name__}: "
                         f"{error})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{name} is a single .npy array, not an .npz archive with 'gates' "
                         "or 'logits'")
    with archive:
        try:
            if "gates" in archive:
                gates = np.asarray(archive["gates"], dtype=np.float64)
                source = "gates"
            elif "logits" in archive:
                logits = np.asarray(archive["logits"], dtype=np.float64)
                if logits.ndim == 3 and not np.all(np.isfinite(logits)):
                    raise ValueError(f"{name}: logits must be finite")
                source = "logits"
                gates = None
            else:
                raise ValueError(f"{name} must hold an array 'gates' or 'logits', "
                                 f"found {sorted(archive.files)}")
        except ValueError:
            raise
        except Exception as error:  # a damaged member of the archive
            raise ValueError(f"{name} is damaged ({type(error).__name__}: {error})") from None
    array = gates if gates is not None else logits
    if array.ndim != 3 or min(array.shape) < 1:
        raise ValueError(f"{name}: {source} must have shape [tokens, layers, experts], "
                         f"got {array.shape}")
    if gates is None:
        shifted = logits - logits.max(axis=-1, keepdims=True)
        gates = np.exp(shifted)
        gates /= gates.sum(axis=-1, keepdims=True)
    elif np.any(gates < 0) or not np.allclose(gates.sum(axis=-1), 1.0, atol=1e-3):
        raise ValueError(f"{name}: gates must be non-negative with rows summing to 1 "
                         "(store router logits as 'logits' instead)")
    return (gates / gates.sum(axis=-1, keepdims=True)).astype(np.float32)


def record_trace(model, x, path, selection="top_k", k=2):
    """Write the gate scores a model produces on ``x`` to a trace ``.npz`` (atomically).

    The scores at layer l depend on the experts chosen before it; they are recorded along a
    pass that uses ``selection`` / ``k`` at every layer (see :meth:`MoEModel.select`).

    Parameters
    ----------
    model : MoEModel
    x : [tokens, num_features], float
    path : str or os.PathLike
        Output file, ``.npz``.
    selection : str
    k : int

    Output
    ------
    gates : [tokens, layers, experts], float32
        What was written (array ``gates``).
    """
    hidden = model.embed(x)
    rows = []
    for layer in range(model.num_layers):
        relevance = model.relevance(layer, hidden)
        rows.append(relevance)
        hidden = model.apply_layer(layer, hidden, model.select(relevance, selection, k))
    gates = np.stack(rows, axis=1).astype(np.float32)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp.npz")
    np.savez(temporary, gates=gates)
    os.replace(temporary, path)
    return gates


class TraceMoE:
    r"""Recorded gate scores behind the same layer-by-layer interface as :class:`MoEModel`.

    Hidden state = token index ``[batch]`` int64 (or a :class:`TraceState` carrying them, as
    :meth:`embed` returns for the co-simulation). ``embed`` checks the indices,
    ``relevance(layer, hidden)`` reads the recorded scores, ``apply_layer`` returns the indices
    unchanged, ``retained_mass`` scores a selection; ``expert_outputs``, ``combine`` and ``head``
    raise ``NotImplementedError`` (a trace has no activations). ``payload_bits`` uses
    ``config.trace_width`` (the traced model's d_model), and ``to_bits`` / ``from_bits`` quantise any
    ``[batch, trace_width]`` array, e.g. random stand-in activations.

    Everything here is numpy: the settable :attr:`execution` property (``"eager"``, ``"graph"``,
    ``"xla"``) exists so that a trace drops in wherever a :class:`MoEModel` does; it is validated
    and recorded but has **no effect** on what a trace computes.

    Parameters
    ----------
    gates : [tokens, layers, experts], float32
    config : MoEConfig
        ``task="trace"``.
    execution : str
        ``"eager"``, ``"graph"`` (default) or ``"xla"``; validated, no effect.

    Example
    -------
    >>> model = load_default_moe("trace")
    >>> tokens, target = model.test_data()
    >>> model.accuracy(tokens, target, selection="top_k", k=2)   # retained relevance mass
    """

    #: Protocol constants (:class:`~dmoe.moe.MoEProtocol`): one routed token per example, and
    #: no activations (failures are drops; accuracy is the relevance mass that arrived).
    tokens_per_example = 1
    has_activations = False

    def __init__(self, gates, config, execution=DEFAULT_EXECUTION):
        gates = np.asarray(gates, dtype=np.float32)
        if gates.ndim != 3:
            raise ValueError(f"gates must have shape [tokens, layers, experts], got {gates.shape}")
        self.gates = gates
        self.config = config
        self.num_tokens, self.num_layers, self.num_experts = gates.shape
        self.width = config.trace_width
        self.execution = execution

    @property
    def execution(self):
        """``"eager"``, ``"graph"`` or ``"xla"``, as :attr:`MoEModel.execution`; no effect on a
        trace (numpy only). Setting any other value raises ``ValueError``."""
        return self._execution

    @execution.setter
    def execution(self, execution):
        self._execution = check_execution(execution)

    @classmethod
    def from_config(cls, config):
        """Load ``config.trace_path`` (see :func:`load_trace`)."""
        if not isinstance(config, MoEConfig) or config.task != "trace":
            raise ValueError("config must be a MoEConfig with task='trace'")
        return cls(load_trace(config.trace_path), config)

    def _layer(self, layer):
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) \
                or not 0 <= layer < self.num_layers:
            raise ValueError(f"layer must be an int in [0, {self.num_layers - 1}], got {layer!r}")
        return int(layer)

    def _tokens(self, hidden):
        if isinstance(hidden, TraceState):
            hidden = hidden.tokens
        hidden = np.asarray(hidden)
        if hidden.ndim != 1 or not np.issubdtype(hidden.dtype, np.integer):
            raise ValueError(f"hidden of a trace must be token indices [batch] (int), got "
                             f"shape {hidden.shape} dtype {hidden.dtype}")
        if hidden.size and (hidden.min() < 0 or hidden.max() >= self.num_tokens):
            raise ValueError(f"hidden token indices must lie in [0, {self.num_tokens - 1}]")
        return hidden.astype(np.int64)

    def _mask(self, selected, batch):
        return expert_mask(selected, batch, self.num_experts)

    def test_data(self):
        """All tokens: indices ``[tokens]`` int64, and the ideal retained mass ``[tokens]`` (ones)."""
        return np.arange(self.num_tokens, dtype=np.int64), np.ones(self.num_tokens, np.float32)

    def embed(self, x):
        """The co-simulation state of tokens ``x`` ``[batch]`` (int indices, checked).

        Output
        ------
        state : TraceState
            The indices, with no relevance arrived yet.
        """
        return TraceState(self._tokens(x))

    def route(self, layer, state):
        """Nothing to send (no activations) and the recorded relevance [batch, K] float64."""
        return None, self.relevance(layer, state).astype(np.float64)

    def evaluate(self, state, y=None):
        """Arrived relevance mass per token against its most (``y`` is ignored).

        Output
        ------
        counts : dict
            ``{"accuracy": (arrived_mass / L, batch)}``: the retained-mass accuracy of
            :meth:`accuracy`, realised over the links. Each token adds its mean arrived mass
            over the layers, a value in [0, 1], so the tokens are the independent trials of the
            row's interval (``docs/cosim.md``).
        """
        return {"accuracy": (state.arrived_mass / self.num_layers, len(state.tokens))}

    def relevance(self, layer, hidden):
        """Recorded relevance ``[batch, K]`` float32 of tokens ``hidden`` at ``layer``."""
        return self.gates[self._tokens(hidden), self._layer(layer)]

    def apply_layer(self, layer, hidden, selected, weights=None):
        """Returns ``hidden`` (token indices) unchanged after checking the arguments."""
        hidden = self._tokens(hidden)
        self._layer(layer)
        self._mask(selected, hidden.shape[0])
        return hidden

    def retained_mass(self, layer, hidden, selected):
        """Relevance mass kept by ``selected``: ``sum_{k in S} g_k``, ``[batch]`` float32."""
        hidden = self._tokens(hidden)
        selected = self._mask(selected, hidden.shape[0])
        return np.sum(np.where(selected, self.relevance(layer, hidden), 0.0), axis=1).astype(np.float32)

    def select(self, relevance, selection="top_k", k=2, rng=None):
        """Same rules as :meth:`MoEModel.select`."""
        from dmoe.moe.model import MoEModel  # TensorFlow, only when a trace selects by rule

        return MoEModel.select(self, relevance, selection, k, rng)

    def accuracy(self, x, y=None, selection="top_k", k=2, seed=0):
        """Retained relevance mass, averaged over tokens and layers (``y`` is ignored).

        Input
        -----
        x : [batch], int token indices
        selection : str or callable ``rule(layer, relevance) -> [batch, K] bool``
        k : int

        Output
        ------
        mass : float, in [0, 1]
        """
        tokens = self._tokens(x)
        rng = np.random.default_rng(seed)
        total = 0.0
        for layer in range(self.num_layers):
            relevance = self.relevance(layer, tokens)
            selected = selection(layer, relevance) if callable(selection) else \
                self.select(relevance, selection, k, rng)
            total += float(np.mean(self.retained_mass(layer, tokens, selected)))
        return total / self.num_layers

    def expert_outputs(self, layer, hidden):
        raise NotImplementedError("a gate trace has no activations: no expert outputs")

    def combine(self, layer, state, expert_outputs, selected, weights=None):
        """Adds the relevance of the ``selected`` [batch, K] experts that arrived to ``state``.

        ``expert_outputs`` and ``weights`` are ignored (a trace has no activations).

        Output
        ------
        state : TraceState
        """
        tokens = self._tokens(state)
        relevance = self.relevance(layer, tokens).astype(np.float64)
        arrived = self._mask(selected, tokens.shape[0])
        mass = state.arrived_mass if isinstance(state, TraceState) else 0.0
        return TraceState(tokens, mass + np.where(arrived, relevance, 0.0).sum())

    def head(self, hidden):
        raise NotImplementedError("a gate trace has no task head: use accuracy() / retained_mass()")

    def payload_bits(self, layer, bits_per_value=16):
        """``16 + trace_width * B`` bits per token."""
        self._layer(layer)
        return _quantize.payload_bits(self.width, bits_per_value)

    def to_bits(self, hidden, bits_per_value=8):
        """Quantise ``[batch, trace_width]`` stand-in activations (see :mod:`dmoe.moe.quantize`)."""
        hidden = np.asarray(hidden, dtype=np.float32)
        if hidden.ndim not in (2, 3) or hidden.shape[-1] != self.width:
            raise ValueError(f"hidden must have shape [batch, {self.width}], got {hidden.shape}")
        return _quantize.to_bits(hidden, bits_per_value)

    def from_bits(self, bits, bits_per_value=8):
        """Inverse of :meth:`to_bits`: ``[batch, trace_width]`` float32."""
        return _quantize.from_bits(bits, bits_per_value, width=self.width)

    def __repr__(self):
        return f"TraceMoE(tokens={self.num_tokens}, L={self.num_layers}, K={self.num_experts})"
