r"""Step interface of the ``multidomain`` transformer MoE: every token position is routed.

The co-simulation drives the model one MoE layer at a time on a coordinator *state* that it never
looks inside (:class:`SequenceState`, hidden states ``[sequences, positions, width]``). At layer l,
:meth:`SequenceMoEModel.route` runs attention, the norms and the gate at the coordinator and hands
out one routed token per position, ``T = sequences x positions`` rows; only the expert
feed-forward networks are remote (:meth:`~SequenceMoEModel.expert_outputs`), and
:meth:`~SequenceMoEModel.combine` mixes what arrived back into the state. See ``docs/moe.md``.
"""

import numpy as np
import tensorflow as tf
import keras

from dmoe.moe import quantize as _quantize
from dmoe.common import DEFAULT_EXECUTION, check_execution
from dmoe.moe._sequences import DOMAINS, load_sequence_data
from dmoe.moe._masks import expert_mask
from dmoe.moe.config import MoEConfig
from dmoe.moe.network import renormalised_weights
from dmoe.moe.transformer import TransformerMoENetwork

__all__ = ["SequenceMoEModel", "SequenceState"]


class SequenceState:
    """Coordinator state of a batch of sequences between MoE layers (opaque to the engine).

    Attributes
    ----------
    hidden : [sequences, positions, width], float32
        Residual stream entering the next layer.
    domain : [sequences], int32
        Domain id of each sequence (index into :data:`dmoe.moe._sequences.DOMAINS`).
    """

    def __init__(self, hidden, domain):
        self.hidden = hidden
        self.domain = domain
        # route() of a layer leaves (layer, post-attention stream, relevance) here for combine().
        self._routed = None

    @property
    def num_sequences(self):
        return self.hidden.shape[0]

    def __repr__(self):
        return f"SequenceState(hidden={self.hidden.shape})"


class SequenceMoEModel:
    r"""A trained (or freshly built) transformer MoE exposed one layer at a time.

    One pass: ``state = embed(x)``; for each layer l: ``tokens, g = route(l, state)``, choose a
    set S per token, ``f = expert_outputs(l, tokens)``, ``state = combine(l, state, f, S)``;
    finally ``evaluate(state, y)``. With S = all K experts this is the network's own forward pass
    under dense routing; with S = the top-2 set, its training-time forward pass.

    Parameters
    ----------
    network : TransformerMoENetwork
    config : MoEConfig
        ``task="multidomain"``.
    data : SequenceData or None
        Generated from ``config`` when None.
    execution : str
        ``"eager"``, ``"graph"`` (default) or ``"xla"``.

    Attributes
    ----------
    num_layers : int
        L, the MoE layers.
    num_experts : int
        K, the experts per layer.
    width : int
        The hidden width.
    tokens_per_example : int
        Positions per sequence (every position is a routed token).
    has_activations : bool
        True: the engine routes real hidden states.
    domain_names : tuple of str
        Names of the domain ids.

    Example
    -------
    >>> model = load_default_moe("multidomain")
    >>> x, y = model.test_data()
    >>> state = model.embed(x)
    >>> for layer in range(model.num_layers):
    ...     tokens, relevance = model.route(layer, state)
    ...     top2 = model.select(relevance, "top_k", k=2)
    ...     state = model.combine(layer, state, model.expert_outputs(layer, tokens, top2), top2)
    >>> model.evaluate(state, y)["accuracy"]      # (correct, total) answer positions
    """

    kind = "keras"
    has_activations = True

    def __init__(self, network, config, data=None, execution=DEFAULT_EXECUTION):
        if not isinstance(network, TransformerMoENetwork):
            raise TypeError(f"network must be a TransformerMoENetwork, got {type(network).__name__}")
        if not isinstance(config, MoEConfig) or config.task != "multidomain":
            raise TypeError("config must be a MoEConfig with task='multidomain'")
        self.network = network
        self.config = config
        self._data = data
        self.num_layers = network.num_layers
        self.num_experts = network.num_experts
        self.width = network.width
        self.num_classes = network.num_classes
        self.tokens_per_example = network.sequence_length
        self.domain_names = DOMAINS
        self.execution = execution
        self._compiled = {}

    # ------------------------------------------------------------- compiled functions
    @property
    def execution(self):
        """How the TensorFlow functions run: ``"eager"``, ``"graph"`` (default) or ``"xla"``.

        As for :class:`dmoe.moe.MoEModel`. Under ``xla`` the experts are always evaluated
        densely (XLA needs static shapes) and the unselected outputs are zeroed.
        """
        return self._execution

    @execution.setter
    def execution(self, execution):
        self._execution = check_execution(execution)

    def _functions(self):
        mode = self._execution
        if mode not in self._compiled:
            self._compiled[mode] = self._build_functions(mode)
        return self._compiled[mode]

    def _build_functions(self, mode):
        net, width, k = self.network, self.width, self.num_experts
        positions = self.tokens_per_example
        f32, i32 = tf.float32, tf.int32
        state_spec = tf.TensorSpec([None, positions, width], f32)
        token_spec = tf.TensorSpec([None, width], f32)

        def compiled(function, signature, jit=True):
            if mode == "eager":
                return function
            return tf.function(function, input_signature=signature,
                               jit_compile=True if (mode == "xla" and jit) else None)

        def route_of(block):
            def route(hidden):
                mid = block.attend(hidden)
                tokens = tf.reshape(block.expert_input(mid), [-1, width])
                return mid, tokens, block.relevance(tokens)
            return route

        def combine_of(block):
            def combine(mid, relevance, outputs, arrived):
                weights = renormalised_weights(relevance, arrived)
                mixed = tf.einsum("tk,tkw->tw", weights, outputs)
                return mid + tf.reshape(mixed, tf.shape(mid))
            return combine

        blocks = net.blocks
        return {
            "embed": compiled(net.embed, [tf.TensorSpec([None, positions], i32)]),
            "head": compiled(net.head, [state_spec]),
            "route": [compiled(route_of(b), [state_spec]) for b in blocks],
            "dense": [compiled(b.expert_outputs, [token_spec]) for b in blocks],
            # Sparse evaluation has data-dependent shapes: graph mode only, never XLA.
            "routed": [compiled(b.routed_outputs, [token_spec, tf.TensorSpec([None], i32),
                                                   tf.TensorSpec([None], i32)], jit=False)
                       for b in blocks],
            "combine": [compiled(combine_of(b), [state_spec, tf.TensorSpec([None, k], f32),
                                                 tf.TensorSpec([None, k, width], f32),
                                                 tf.TensorSpec([None, k], tf.bool)])
                        for b in blocks],
        }

    # ----------------------------------------------------------------------- validation
    def _layer(self, layer):
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) \
                or not 0 <= layer < self.num_layers:
            raise ValueError(f"layer must be an int in [0, {self.num_layers - 1}], got {layer!r}")
        return int(layer)

    def _state(self, state):
        if not isinstance(state, SequenceState):
            raise TypeError(f"state must be a SequenceState (from embed), got {type(state).__name__}")
        return state

    def _tokens(self, tokens):
        tokens = np.asarray(tokens, dtype=np.float32)
        if tokens.ndim != 2 or tokens.shape[1] != self.width:
            raise ValueError(f"tokens must have shape [T, {self.width}], got {tokens.shape}")
        return tokens

    def _mask(self, mask, rows, name):
        return expert_mask(mask, rows, self.num_experts, name)

    # ----------------------------------------------------------------------- public API
    @property
    def data(self):
        """The task's :class:`~dmoe.moe._sequences.SequenceData` (generated on demand)."""
        if self._data is None:
            self._data = load_sequence_data(self.config)
        return self._data

    def test_data(self):
        """Held-out test split.

        Output
        ------
        x : [num_test, P], int32
            Input tokens (position 0 is the domain token).
        y : [num_test, P], int32
            Answer symbol at answer positions, -1 elsewhere.
        """
        return self.data.x_test, self.data.y_test

    def train_data(self):
        """Training split: x, y [num_train, P] int32."""
        return self.data.x_train, self.data.y_train

    def embed(self, x):
        """Coordinator state of token sequences ``x``.

        Input
        -----
        x : [sequences, P], int

        Output
        ------
        state : SequenceState
            ``hidden`` [sequences, P, width] float32 (token + position embedding).
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.tokens_per_example \
                or not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"x must be an int array of shape [sequences, "
                             f"{self.tokens_per_example}], got {x.dtype} {x.shape}")
        from dmoe.moe._sequences import _DOMAIN0
        hidden = self._functions()["embed"](x.astype(np.int32))
        return SequenceState(np.asarray(hidden), (x[:, 0] - _DOMAIN0).astype(np.int32))

    def _routed(self, layer, state):
        """(post-attention stream [S, P, W], relevance [T, K] float32) of ``layer``."""
        if state._routed is not None and state._routed[0] == layer:
            return state._routed[1], state._routed[3]
        mid, tokens, relevance = self._functions()["route"][layer](state.hidden)
        state._routed = (layer, np.asarray(mid), np.asarray(tokens), np.asarray(relevance))
        return state._routed[1], state._routed[3]

    def route(self, layer, state):
        """Coordinator part of layer ``layer``: attention, norms and gate of every position.

        Input
        -----
        layer : int, in [0, L)
        state : SequenceState

        Output
        ------
        tokens : [T, width], float32
            What each selected expert node receives (``T = sequences x P``, sequence-major).
        relevance : [T, K], float64
            Gate softmax of each routed token (rows sum to 1).
        """
        layer, state = self._layer(layer), self._state(state)
        self._routed(layer, state)
        return state._routed[2], state._routed[3].astype(np.float64)

    def expert_outputs(self, layer, tokens, selected=None):
        """Expert outputs for routed tokens (what node k returns).

        Input
        -----
        layer : int
        tokens : [T, width], float
        selected : [T, K], bool, or None
            Only these (token, expert) pairs are computed (the rest are 0); None computes all.

        Output
        ------
        outputs : [T, K, width], float32
        """
        layer, tokens = self._layer(layer), self._tokens(tokens)
        functions = self._functions()
        if selected is None or self._execution == "xla":
            outputs = np.asarray(functions["dense"][layer](tokens))
            if selected is not None:
                outputs *= self._mask(selected, len(tokens), "selected")[..., None]
            return outputs
        selected = self._mask(selected, len(tokens), "selected")
        rows, experts = np.nonzero(selected)
        outputs = np.zeros((len(tokens), self.num_experts, self.width), np.float32)
        if len(rows):
            outputs[rows, experts] = functions["routed"][layer](
                tokens, rows.astype(np.int32), experts.astype(np.int32))
        return outputs

    def combine(self, layer, state, outputs, arrived):
        r"""Next state: ``m + sum_{k arrived} w_k f_k``, ``w_k = g_k / sum_{j arrived} g_j``.

        ``m`` is the post-attention residual stream of ``route``. A position with no arrived
        expert keeps ``m`` (it skips the feed-forward layer). Outputs of experts that did not
        arrive are ignored, even NaN.

        Input
        -----
        layer : int
        state : SequenceState
        outputs : [T, K, width], float
        arrived : [T, K], bool

        Output
        ------
        state : SequenceState
        """
        layer, state = self._layer(layer), self._state(state)
        rows = state.num_sequences * self.tokens_per_example
        outputs = np.asarray(outputs, dtype=np.float32)
        if outputs.shape != (rows, self.num_experts, self.width):
            raise ValueError(f"outputs must have shape [{rows}, {self.num_experts}, "
                             f"{self.width}], got {outputs.shape}")
        arrived = self._mask(arrived, rows, "arrived")
        mid, relevance = self._routed(layer, state)
        outputs = np.where(arrived[..., None], outputs, 0.0).astype(np.float32)
        hidden = self._functions()["combine"][layer](mid, relevance, outputs, arrived)
        return SequenceState(np.asarray(hidden), state.domain)

    def head(self, state):
        """Per-position logits ``[sequences, P, num_classes]`` float32."""
        return np.asarray(self._functions()["head"](self._state(state).hidden))

    def evaluate(self, state, y):
        """Exact-match counts over the answer positions, overall and per domain.

        Input
        -----
        state : SequenceState
            After the last layer.
        y : [sequences, P], int
            Targets, -1 where nothing is scored.

        Output
        ------
        counts : dict
            ``"accuracy": (correct, total)`` over all answer positions and
            ``"accuracy_<domain>": (correct, total)`` for each domain of the model's data.
        """
        state = self._state(state)
        y = np.asarray(y)
        if y.shape != (state.num_sequences, self.tokens_per_example):
            raise ValueError(f"y must have shape [{state.num_sequences}, "
                             f"{self.tokens_per_example}], got {y.shape}")
        scored = y >= 0
        correct = (np.argmax(self.head(state), axis=-1) == y) & scored
        counts = {"accuracy": (int(correct.sum()), int(scored.sum()))}
        for name in self.config.multidomain_domains:
            rows = state.domain == DOMAINS.index(name)
            counts[f"accuracy_{name}"] = (int(correct[rows].sum()), int(scored[rows].sum()))
        return counts

    def select(self, relevance, selection="top_k", k=2, rng=None):
        """Expert mask of a named rule, as :meth:`dmoe.moe.MoEModel.select`.

        Input
        -----
        relevance : [T, K], float
        selection : str
            ``top_k``, ``bottom_k`` / ``least_relevant``, ``random`` (needs ``rng``),
            ``all``, ``none``.
        k : int

        Output
        ------
        selected : [T, K], bool
        """
        from dmoe.moe.model import MoEModel
        return MoEModel.select(self, relevance, selection, k, rng)

    def run(self, x, y, selection="top_k", k=2, seed=0):
        """Counts of :meth:`evaluate` after a whole pass with one rule at every layer.

        Input
        -----
        x, y : [sequences, P], int
        selection : str or callable
            A name of :meth:`select`, or ``rule(layer, relevance) -> selected [T, K] bool``.
        k : int
        seed : int
            Seed of ``selection="random"``.

        Output
        ------
        counts : dict, as :meth:`evaluate`
        """
        rng = np.random.default_rng(seed)
        state = self.embed(x)
        for layer in range(self.num_layers):
            tokens, relevance = self.route(layer, state)
            if callable(selection):
                selected = np.asarray(selection(layer, relevance), bool)
            else:
                selected = self.select(relevance, selection, k, rng)
            state = self.combine(layer, state, self.expert_outputs(layer, tokens, selected),
                                 selected)
        return self.evaluate(state, y)

    def accuracy(self, x, y, selection="top_k", k=2, seed=0):
        """Exact-match accuracy over answer positions of :meth:`run`: float in [0, 1]."""
        correct, total = self.run(x, y, selection, k, seed)["accuracy"]
        return correct / total

    # ---------------------------------------------------------------------- payloads
    def payload_bits(self, layer, bits_per_value=16):
        """Bits of one routed token (or one expert output): ``16 + width * B``."""
        self._layer(layer)
        return _quantize.payload_bits(self.width, bits_per_value)

    def to_bits(self, tokens, bits_per_value=8):
        """Quantised payloads of ``[T, width]`` or ``[T, K, width]`` tokens: uint8 bits."""
        tokens = np.asarray(tokens, dtype=np.float32)
        if tokens.ndim not in (2, 3) or tokens.shape[-1] != self.width:
            raise ValueError(f"tokens must have shape [T, {self.width}] or [T, K, {self.width}], "
                             f"got {tokens.shape}")
        return _quantize.to_bits(tokens, bits_per_value)

    def from_bits(self, bits, bits_per_value=8):
        """Tokens decoded from (possibly corrupted) payload bits: float32 ``[..., width]``."""
        return _quantize.from_bits(bits, bits_per_value, width=self.width)

    # ------------------------------------------------------------------ save and load
    def save(self, path):
        """Write the model atomically to a ``.keras`` file (the config rides inside)."""
        from dmoe.moe.model import save_network
        save_network(self.network, path)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`; its data is regenerated from the config."""
        import os
        network = keras.saving.load_model(os.fspath(path), compile=False)
        return cls(network, MoEConfig.from_dict(network.moe_config))

    def describe(self):
        """JSON-ready summary: config and training record."""
        return {"config": self.config.to_dict(), "training": self.network.training_record}

    def __repr__(self):
        return (f"SequenceMoEModel(L={self.num_layers}, K={self.num_experts}, width={self.width}, "
                f"positions={self.tokens_per_example}, "
                f"trained={self.network.training_record.get('trained')})")
