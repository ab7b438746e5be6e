r"""The MoE interface the co-simulation drives, layer by layer (a :class:`typing.Protocol`).

Any object with these attributes and methods can be passed to ``dmoe.cosim.run_point(config,
model=...)``: the Keras models of this package (:class:`~dmoe.moe.MoEModel`), a gate trace
(:class:`~dmoe.moe.TraceMoE`) and hand-written classes alike. Nothing here imports TensorFlow.

The engine never looks inside the coordinator *state* (it is opaque: ``[E, width]`` for the
digits model, token indices for a trace, anything a transformer needs). What travels over the
air are *routed tokens*, rows of ``tokens`` ``[T, width]`` with ``T = E x tokens_per_example``
for ``E`` examples; each row is sent to the experts chosen for it (``docs/cosim.md``, "One
round").
"""

from typing import Protocol, runtime_checkable

__all__ = ["MoEProtocol"]


@runtime_checkable
class MoEProtocol(Protocol):
    r"""A Mixture-of-Experts the co-simulation can run, one MoE layer per protocol round.

    Attributes
    ----------
    num_layers : int
        L, MoE layers (protocol rounds) per example.
    num_experts : int
        K, experts per layer (one per expert node).
    tokens_per_example : int
        Routed tokens per example: 1 for the digits, modrec and trace models, the sequence
        length for a transformer.
    has_activations : bool
        ``False`` for a gate trace: there are no hidden states, so ``to_bits``, ``from_bits``
        and ``expert_outputs`` are never called, a failed link is always a drop, and
        ``tokens`` of :meth:`route` may be ``None``.
    execution : str
        Settable: ``"eager"``, ``"graph"`` or ``"xla"``; how the model's TensorFlow functions
        run (the engine sets it for a point and restores it afterwards).

    Example
    -------
    One pass with every expert arriving (``docs/tutorial.md`` has a hand-written model):

    >>> x, y = model.test_data()
    >>> state = model.embed(x)
    >>> for layer in range(model.num_layers):
    ...     tokens, relevance = model.route(layer, state)
    ...     outputs = model.expert_outputs(layer, tokens)
    ...     state = model.combine(layer, state, outputs, np.ones(relevance.shape, bool))
    >>> correct, total = model.evaluate(state, y)["accuracy"]
    """

    num_layers: int
    num_experts: int
    tokens_per_example: int
    has_activations: bool
    execution: str

    def test_data(self):
        """The examples a point draws from.

        Output
        ------
        x : [num_examples, ...]
        y : [num_examples, ...]
            Whatever :meth:`evaluate` compares against.
        """

    def embed(self, x):
        """Coordinator state of examples ``x`` ``[E, ...]`` before the first MoE layer."""

    def route(self, layer, state):
        """What layer ``layer`` sends, and to whom it would like to send it.

        Output
        ------
        tokens : [T, width], float32, or None
            Each routed token's input to the experts (None when ``has_activations`` is False).
        relevance : [T, K], float64
            Gate relevance, rows on the simplex.
        """

    def payload_bits(self, layer, bits_per_value):
        """Bits of one routed token (and of one expert output) at ``layer``: int."""

    def to_bits(self, tokens, bits_per_value):
        """Quantised payloads: ``tokens`` [..., width] -> uint8 0/1 [..., payload_bits]."""

    def from_bits(self, bits, bits_per_value):
        """Inverse of :meth:`to_bits` on (possibly corrupted) bits -> float32 [..., width]."""

    def expert_outputs(self, layer, tokens):
        """Every expert's output on every routed token: [T, width] -> float32 [T, K, width]."""

    def combine(self, layer, state, outputs, arrived):
        r"""The state after layer ``layer`` from the expert outputs that arrived.

        ``y = sum over arrived k of w_k f_k`` with ``w_k = g_k / sum over arrived j of g_j``
        (``docs/moe.md``); a token with nothing arrived keeps its input.

        Input
        -----
        outputs : [T, K, width], float32 (rows of experts that did not arrive are ignored)
        arrived : [T, K], bool
        """

    def evaluate(self, state, y):
        """Task score of the final state as counts, summable over chunks of examples.

        Output
        ------
        counts : dict
            ``{"accuracy": (correct, total)}``, optionally more ``"accuracy_<group>"`` entries
            of the same form; the row's column is ``correct / total``.
        """
