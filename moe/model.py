"""Layer-by-layer interface of a trained MoE: the object the co-simulation drives.

Numpy in, numpy out (tf tensors are accepted too). The TensorFlow computations run in the mode of
:attr:`MoEModel.execution`: eager, graph (``tf.function`` with a batch-agnostic signature, traced
once per layer; the default) or XLA (``jit_compile=True``). Everything else (selection rules,
quantisation) is numpy and identical in every mode.
"""

import os
import tempfile
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import keras

from dmoe.common import DEFAULT_EXECUTION, check_execution, compile_function
from dmoe.scheduler import top_d_mask
from dmoe.moe import quantize as _quantize
from dmoe.moe._data import load_task_data
from dmoe.moe._masks import expert_mask
from dmoe.moe.config import MoEConfig
from dmoe.moe.network import MoENetwork, renormalised_weights

__all__ = ["MoEModel", "SELECTIONS", "save_network"]

SELECTIONS = ("top_k", "bottom_k", "least_relevant", "random", "all", "none")


def save_network(network, path):
    """Write a Keras network atomically to ``path`` (``.keras``; temporary file + ``os.replace``)."""
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"path must end in '.keras', got {path!r}")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".keras", dir=directory)
    os.close(handle)
    try:
        network.save(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


@dataclass(frozen=True)
class _Functions:
    """The TensorFlow functions of one execution mode (per-layer ones indexed by layer)."""

    embed: object
    head: object
    relevance: tuple
    expert_outputs: tuple
    combine: tuple


class MoEModel:
    r"""A trained (or freshly built) MoE exposing each layer as a step.

    One token's pass: ``h = embed(x)``; for each layer l: ``g = relevance(l, h)``, choose a mask S,
    ``h = apply_layer(l, h, S)``; finally ``logits = head(h)``. ``apply_layer`` equals
    ``combine(l, h, expert_outputs(l, h), S)``.

    Parameters
    ----------
    network : MoENetwork
        The Keras model.
    config : MoEConfig
        Its configuration (task, sizes, seed).
    data : TaskData or None
        Train/test split; regenerated from ``config`` when None.
    execution : str
        ``"eager"``, ``"graph"`` (default) or ``"xla"``; see :attr:`execution`.

    Attributes
    ----------
    num_layers : int
        L.
    num_experts : int
        K.
    width : int
        Hidden width (values per token in the residual stream).
    num_classes : int
    config : MoEConfig
    network : MoENetwork
    execution : str
        Settable: how the TensorFlow functions run (one of :data:`dmoe.common.EXECUTION_MODES`).

    Example
    -------
    >>> model = load_default_moe("digits")
    >>> x, y = model.test_data()
    >>> h = model.embed(x)
    >>> for layer in range(model.num_layers):
    ...     g = model.relevance(layer, h)
    ...     h = model.apply_layer(layer, h, selected=g >= np.sort(g, axis=1)[:, -2:-1])
    >>> np.mean(np.argmax(model.head(h), axis=1) == y)
    """

    #: Protocol constants (:class:`~dmoe.moe.MoEProtocol`): one routed token per example, and
    #: real activations that travel and can be corrupted.
    tokens_per_example = 1
    has_activations = True

    def __init__(self, network, config, data=None, execution=DEFAULT_EXECUTION):
        if not isinstance(network, MoENetwork):
            raise TypeError(f"network must be a MoENetwork, got {type(network).__name__}")
        if not isinstance(config, MoEConfig):
            raise TypeError(f"config must be a MoEConfig, got {type(config).__name__}")
        self.network = network
        self.config = config
        self._data = data
        self.num_layers = network.num_layers
        self.num_experts = network.num_experts
        self.width = network.width
        self.num_classes = network.num_classes
        self.num_features = network.num_features
        self.execution = execution
        self._compiled = {}

    # ------------------------------------------------------------- compiled functions
    @property
    def execution(self):
        """How the TensorFlow functions run: ``"eager"``, ``"graph"`` (default) or ``"xla"``.

        ``eager`` calls the Keras layers as plain Python; ``graph`` runs each function as a
        ``tf.function`` with a batch-agnostic input signature (traced once); ``xla`` adds
        ``jit_compile=True`` (XLA compiles once per batch size it meets). The functions of a
        mode are built the first time the mode is used and kept, so switching back and forth
        costs no retracing. Outputs agree across modes to float32 rounding (``docs/moe.md``).
        Setting any other value raises ``ValueError``.
        """
        return self._execution

    @execution.setter
    def execution(self, execution):
        self._execution = check_execution(execution)

    def _functions(self):
        """The functions of the current mode (built on first use, then cached)."""
        mode = self._execution
        if mode not in self._compiled:
            self._compiled[mode] = self._build_functions(mode)
        return self._compiled[mode]

    def _build_functions(self, mode):
        net, width, k = self.network, self.width, self.num_experts
        f32 = tf.float32
        hidden_spec = tf.TensorSpec([None, width], f32)

        def compiled(function, signature):
            return compile_function(function, mode, input_signature=signature)

        def combine_of(layer):
            def combine(hidden, outputs, selected, weights, use_relevance):
                relevance = tf.cond(use_relevance, lambda: layer.relevance(hidden),
                                    lambda: tf.zeros_like(weights))
                weights = tf.where(use_relevance, renormalised_weights(relevance, selected),
                                   tf.where(selected, weights, tf.zeros_like(weights)))
                return layer.combine(hidden, outputs, weights)
            return combine

        combine_spec = [hidden_spec, tf.TensorSpec([None, k, width], f32),
                        tf.TensorSpec([None, k], tf.bool), tf.TensorSpec([None, k], f32),
                        tf.TensorSpec([], tf.bool)]
        return _Functions(
            embed=compiled(net.embed, [tf.TensorSpec([None, self.num_features], f32)]),
            head=compiled(net.head, [hidden_spec]),
            relevance=tuple(compiled(layer.relevance, [hidden_spec]) for layer in net.moe_layers),
            expert_outputs=tuple(compiled(layer.expert_outputs, [hidden_spec])
                                 for layer in net.moe_layers),
            combine=tuple(compiled(combine_of(layer), combine_spec) for layer in net.moe_layers))

    # ----------------------------------------------------------------------- validation
    def _layer(self, layer):
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) \
                or not 0 <= layer < self.num_layers:
            raise ValueError(f"layer must be an int in [0, {self.num_layers - 1}], got {layer!r}")
        return int(layer)

    def _hidden(self, hidden, name="hidden"):
        hidden = np.asarray(hidden, dtype=np.float32)
        if hidden.ndim != 2 or hidden.shape[1] != self.width:
            raise ValueError(f"{name} must have shape [batch, {self.width}], got {hidden.shape}")
        return hidden

    def _mask(self, selected, batch):
        return expert_mask(selected, batch, self.num_experts)

    # ----------------------------------------------------------------------- public API
    @property
    def data(self):
        """The task's :class:`~dmoe.moe._data.TaskData` (regenerated from the config on demand)."""
        if self._data is None:
            self._data = load_task_data(self.config)
        return self._data

    def test_data(self):
        """Held-out test split.

        Output
        ------
        x : [num_test, num_features], float32
        y : [num_test], int64
        """
        return self.data.x_test, self.data.y_test

    def train_data(self):
        """Training split: x [num_train, num_features] float32, y [num_train] int64."""
        return self.data.x_train, self.data.y_train

    def embed(self, x):
        """Hidden state after the stem.

        Input
        -----
        x : [batch, num_features], float

        Output
        ------
        hidden : [batch, width], float32
        """
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"x must have shape [batch, {self.num_features}], got {x.shape}")
        return self._functions().embed(x).numpy()

    def relevance(self, layer, hidden):
        """Gate relevance scores g (softmax of the router logits).

        Input
        -----
        layer : int, in [0, L)
        hidden : [batch, width], float

        Output
        ------
        relevance : [batch, K], float32, rows sum to 1
        """
        layer = self._layer(layer)
        return self._functions().relevance[layer](self._hidden(hidden)).numpy()

    def expert_outputs(self, layer, hidden):
        """Every expert's FFN output for every token (what node k returns).

        Input
        -----
        layer : int
        hidden : [batch, width], float

        Output
        ------
        outputs : [batch, K, width], float32
        """
        layer = self._layer(layer)
        return self._functions().expert_outputs[layer](self._hidden(hidden)).numpy()

    def combine(self, layer, hidden, expert_outputs, selected, weights=None):
        r"""Next hidden state from the experts' returns: ``h + sum_k w_k f_k`` (docs/moe.md, "Combination").

        With ``weights=None``, ``w_k = g_k / sum_{j in S} g_j`` for k in S (g = relevance of
        ``hidden``) and 0 elsewhere. Given ``weights`` are used as they are on S (no
        renormalisation) and zeroed off S. A row with an empty S returns ``hidden`` unchanged.

        Input
        -----
        layer : int
        hidden : [batch, width], float
        expert_outputs : [batch, K, width], float
            Possibly corrupted expert returns; rows of unselected experts are ignored.
        selected : [batch, K], bool
        weights : [batch, K], float, or None

        Output
        ------
        hidden : [batch, width], float32
        """
        layer = self._layer(layer)
        hidden = self._hidden(hidden)
        batch = hidden.shape[0]
        outputs = np.asarray(expert_outputs, dtype=np.float32)
        if outputs.shape != (batch, self.num_experts, self.width):
            raise ValueError(f"expert_outputs must have shape [{batch}, {self.num_experts}, "
                             f"{self.width}], got {outputs.shape}")
        selected = self._mask(selected, batch)
        use_relevance = weights is None
        if use_relevance:
            weights = np.zeros((batch, self.num_experts), np.float32)
        else:
            weights = np.asarray(weights, dtype=np.float32)
            if weights.shape != (batch, self.num_experts):
                raise ValueError(f"weights must have shape [{batch}, {self.num_experts}], "
                                 f"got {weights.shape}")
        # Unselected experts' returns may hold anything (NaN from a dropped link): zero them.
        outputs = np.where(selected[:, :, None], outputs, 0.0).astype(np.float32)
        return self._functions().combine[layer](hidden, outputs, selected, weights,
                                                tf.constant(use_relevance)).numpy()

    def apply_layer(self, layer, hidden, selected, weights=None):
        """One MoE layer with the experts in ``selected``: ``combine(expert_outputs(...))``.

        Input
        -----
        layer : int
        hidden : [batch, width], float
        selected : [batch, K], bool
        weights : [batch, K], float, or None (renormalised relevance over the selected set)

        Output
        ------
        hidden : [batch, width], float32
        """
        return self.combine(layer, hidden, self.expert_outputs(layer, hidden), selected, weights)

    def head(self, hidden):
        """Task logits.

        Input
        -----
        hidden : [batch, width], float

        Output
        ------
        logits : [batch, num_classes], float32
        """
        return self._functions().head(self._hidden(hidden)).numpy()

    def route(self, layer, hidden):
        """What layer ``layer`` sends (:class:`~dmoe.moe.MoEProtocol`): the state itself.

        Input
        -----
        layer : int
        hidden : [batch, width], float

        Output
        ------
        tokens : [batch, width], float (``hidden``)
        relevance : [batch, K], float64
        """
        return hidden, self.relevance(layer, hidden).astype(np.float64)

    def evaluate(self, hidden, y):
        """Correct predictions of the final state (:class:`~dmoe.moe.MoEProtocol`).

        Input
        -----
        hidden : [batch, width], float
        y : [batch], int

        Output
        ------
        counts : dict
            ``{"accuracy": (correct, batch)}``, ints.
        """
        predictions = np.argmax(self.head(hidden), axis=-1)
        return {"accuracy": (int(np.sum(predictions == np.asarray(y))), len(predictions))}

    def select(self, relevance, selection="top_k", k=2, rng=None):
        """Expert mask of a named rule.

        Input
        -----
        relevance : [batch, K], float
        selection : str
            ``top_k`` (k most relevant), ``bottom_k`` / ``least_relevant`` (k least relevant),
            ``random`` (k uniformly at random, needs ``rng``), ``all``, ``none``.
        k : int, in [1, K]
        rng : numpy.random.Generator or None

        Output
        ------
        selected : [batch, K], bool
            Ties go to the lower expert index (as ``tf.math.top_k``). Plain numpy, the same in
            every execution mode.
        """
        relevance = np.asarray(relevance, dtype=np.float32)
        if selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= self.num_experts:
            raise ValueError(f"k must be an int in [1, {self.num_experts}], got {k!r}")
        batch = relevance.shape[0]
        if selection == "all":
            return np.ones((batch, self.num_experts), bool)
        if selection == "none":
            return np.zeros((batch, self.num_experts), bool)
        if selection == "random":
            if rng is None:
                raise ValueError("rng must be a numpy Generator for selection='random'")
            scores = rng.random(relevance.shape)
        else:
            scores = relevance if selection == "top_k" else -relevance
        return top_d_mask(np.asarray(scores, np.float32), int(k))

    def accuracy(self, x, y, selection="top_k", k=2, seed=0):
        """Task accuracy of a whole pass with one selection rule at every layer.

        Input
        -----
        x : [batch, num_features], float
        y : [batch], int
        selection : str or callable
            A name of :meth:`select`, or ``rule(layer, relevance) -> selected [batch, K] bool``.
        k : int
        seed : int
            Seed of ``selection="random"``.

        Output
        ------
        accuracy : float, in [0, 1]
        """
        y = np.asarray(y)
        x = np.asarray(x, dtype=np.float32)
        if y.shape != (x.shape[0],):
            raise ValueError(f"y must have shape [{x.shape[0]}], got {y.shape}")
        rng = np.random.default_rng(seed)
        hidden = self.embed(x)
        for layer in range(self.num_layers):
            relevance = self.relevance(layer, hidden)
            if callable(selection):
                selected = selection(layer, relevance)
            else:
                selected = self.select(relevance, selection, k, rng)
            hidden = self.apply_layer(layer, hidden, selected)
        return float(np.mean(np.argmax(self.head(hidden), axis=1) == y))

    def payload_bits(self, layer, bits_per_value=16):
        """Bits to send one token's hidden state (or one expert output): ``16 + width * B``.

        Input
        -----
        layer : int
        bits_per_value : int, in [2, 24]

        Output
        ------
        bits : int, equal to ``to_bits(h, bits_per_value).shape[1]``
        """
        self._layer(layer)
        return _quantize.payload_bits(self.width, bits_per_value)

    def to_bits(self, hidden, bits_per_value=8):
        """Quantised payload of hidden states (per-token float16 scale + B-bit codes).

        Input
        -----
        hidden : [batch, width] or [batch, K, width], float

        Output
        ------
        bits : [batch, payload_bits] (or [batch, K, payload_bits]), uint8, values 0/1
        """
        hidden = np.asarray(hidden, dtype=np.float32)
        if hidden.ndim not in (2, 3) or hidden.shape[-1] != self.width:
            raise ValueError(f"hidden must have shape [batch, {self.width}] or "
                             f"[batch, K, {self.width}], got {hidden.shape}")
        return _quantize.to_bits(hidden, bits_per_value)

    def from_bits(self, bits, bits_per_value=8):
        """Hidden states decoded from (possibly corrupted) payload bits.

        Input
        -----
        bits : [batch, payload_bits] (or [batch, K, payload_bits]), uint8 0/1

        Output
        ------
        hidden : [batch, width] (or [batch, K, width]), float32
        """
        return _quantize.from_bits(bits, bits_per_value, width=self.width)

    # ------------------------------------------------------------------ save and load
    def save(self, path):
        """Write the model atomically to ``path`` (a ``.keras`` file; the config rides inside)."""
        save_network(self.network, path)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`; its task data is regenerated from the config."""
        network = keras.saving.load_model(os.fspath(path), compile=False)
        config = MoEConfig.from_dict(network.moe_config)
        return cls(network, config)

    def describe(self):
        """JSON-ready summary: config and training record."""
        return {"config": self.config.to_dict(), "training": self.network.training_record}

    def __repr__(self):
        return (f"MoEModel(task={self.config.task!r}, L={self.num_layers}, K={self.num_experts}, "
                f"width={self.width}, trained={self.network.training_record.get('trained')})")
