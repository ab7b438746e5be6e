"""Keras 3 layers of the dmoe Mixture-of-Experts network (the only Keras models of dmoe).

``MoENetwork`` = stem (Dense) -> L x ``MoELayer`` (gate + K expert FFNs + residual) -> head
(LayerNorm + Dense). See ``docs/moe.md`` for the equations.
"""

import numpy as np
import keras
import tensorflow as tf

__all__ = ["MoELayer", "MoENetwork", "topk_mask", "renormalised_weights"]


def topk_mask(relevance, k):
    """Boolean mask of the ``k`` largest scores of each row.

    Input
    -----
    relevance : [batch, K], float32
    k : int

    Output
    ------
    mask : [batch, K], bool
    """
    num_experts = relevance.shape[-1]
    _, index = tf.math.top_k(relevance, k=k)
    return tf.reduce_any(tf.one_hot(index, num_experts, on_value=True, off_value=False), axis=-2)


def renormalised_weights(relevance, selected):
    r"""Weights ``w_k = g_k / sum_{j in S} g_j`` on the selected set, 0 elsewhere (docs/moe.md, "Combination").

    A row with no selected expert gets all-zero weights (the residual passes through).

    Input
    -----
    relevance : [batch, K], float32
    selected : [batch, K], bool

    Output
    ------
    weights : [batch, K], float32
    """
    masked = tf.where(selected, relevance, tf.zeros_like(relevance))
    total = tf.reduce_sum(masked, axis=-1, keepdims=True)
    return tf.math.divide_no_nan(masked, total)


def _seeded(initializer, seed):
    return keras.initializers.get({"class_name": initializer, "config": {"seed": int(seed)}})


@keras.saving.register_keras_serializable(package="dmoe")
class MoELayer(keras.layers.Layer):
    r"""One MoE layer: pre-norm, softmax gate over K experts, K two-layer FFN experts, residual.

    ``u = LayerNorm(h)``, ``g = softmax(u W_g + b_g)``,
    ``f_k(h) = relu(u W1_k + b1_k) W2_k + b2_k``, ``h' = h + sum_k w_k f_k(h)``.

    Parameters
    ----------
    num_experts : int
        K.
    expert_hidden : int
        Inner width of each expert FFN.
    seed : int
        Seed of the initial weights.

    Input
    -----
    hidden : [batch, width], float32
    top_k : int (keyword)
        Routing used by ``call``: the ``top_k`` most relevant experts, renormalised weights.

    Output
    ------
    hidden : [batch, width], float32
    """

    def __init__(self, num_experts, expert_hidden, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.num_experts = int(num_experts)
        self.expert_hidden = int(expert_hidden)
        self.seed = int(seed)
        seeds = np.random.SeedSequence([self.seed, 7]).generate_state(6)
        self._seeds = [int(s) for s in seeds]
        self.norm = keras.layers.LayerNormalization(name="norm")

    def build(self, input_shape):
        width = int(input_shape[-1])
        self.width = width
        self.norm.build(input_shape)
        k, f = self.num_experts, self.expert_hidden
        self.gate_kernel = self.add_weight(name="gate_kernel", shape=(width, k),
                                           initializer=_seeded("GlorotUniform", self._seeds[0]))
        self.gate_bias = self.add_weight(name="gate_bias", shape=(k,), initializer="zeros")
        self.kernel_in = self.add_weight(name="kernel_in", shape=(k, width, f),
                                         initializer=_seeded("HeUniform", self._seeds[1]))
        self.bias_in = self.add_weight(name="bias_in", shape=(k, f), initializer="zeros")
        self.kernel_out = self.add_weight(name="kernel_out", shape=(k, f, width),
                                          initializer=_seeded("GlorotUniform", self._seeds[2]))
        self.bias_out = self.add_weight(name="bias_out", shape=(k, width), initializer="zeros")

    def relevance(self, hidden):
        """Gate softmax ``[batch, K]`` of hidden ``[batch, width]``."""
        return tf.nn.softmax(self.gate_logits(hidden), axis=-1)

    def gate_logits(self, hidden):
        """Router logits ``[batch, K]`` of hidden ``[batch, width]``."""
        return tf.matmul(self.norm(hidden), self.gate_kernel) + self.gate_bias

    def expert_outputs(self, hidden):
        """Every expert's FFN output ``[batch, K, width]`` for hidden ``[batch, width]``."""
        u = self.norm(hidden)
        inner = tf.nn.relu(tf.einsum("bw,kwf->bkf", u, self.kernel_in) + self.bias_in)
        return tf.einsum("bkf,kfw->bkw", inner, self.kernel_out) + self.bias_out

    @staticmethod
    def combine(hidden, expert_outputs, weights):
        """Residual plus weighted expert sum: ``[batch, width]``."""
        return hidden + tf.einsum("bk,bkw->bw", weights, expert_outputs)

    def route(self, hidden, top_k):
        """Forward with top-k routing; returns (hidden', relevance, mask)."""
        relevance = self.relevance(hidden)
        mask = topk_mask(relevance, top_k)
        weights = renormalised_weights(relevance, mask)
        return self.combine(hidden, self.expert_outputs(hidden), weights), relevance, mask

    def call(self, hidden, top_k=2):
        return self.route(hidden, top_k)[0]

    def get_config(self):
        config = super().get_config()
        config.update(num_experts=self.num_experts, expert_hidden=self.expert_hidden,
                      seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="dmoe")
class MoENetwork(keras.Model):
    r"""Stem -> L MoE layers -> head, a Keras model saved and loaded as ``.keras``.

    Parameters
    ----------
    num_features : int
        Input features per example.
    num_classes : int
        Output classes.
    num_layers, num_experts, width, expert_hidden, top_k, seed : int
        As in :class:`dmoe.moe.MoEConfig`.
    moe_config : dict or None
        The full :class:`MoEConfig` (``to_dict``) recorded in the saved file.
    training_record : dict or None
        Data split, training time and library versions, recorded in the saved file.

    Input
    -----
    x : [batch, num_features], float32

    Output
    ------
    logits : [batch, num_classes], float32
    """

    def __init__(self, num_features, num_classes, num_layers, num_experts, width, expert_hidden,
                 top_k=2, seed=0, moe_config=None, training_record=None, **kwargs):
        kwargs.setdefault("name", "moe_network")
        super().__init__(**kwargs)
        self.num_features = int(num_features)
        self.num_classes = int(num_classes)
        self.num_layers = int(num_layers)
        self.num_experts = int(num_experts)
        self.width = int(width)
        self.expert_hidden = int(expert_hidden)
        self.top_k = int(top_k)
        self.seed = int(seed)
        self.moe_config = moe_config
        self.training_record = training_record or {}
        seeds = [int(s) for s in np.random.SeedSequence([self.seed, 3]).generate_state(num_layers + 2)]
        self.stem = keras.layers.Dense(width, kernel_initializer=_seeded("GlorotUniform", seeds[0]),
                                       name="stem")
        self.moe_layers = [MoELayer(num_experts, expert_hidden, seed=seeds[2 + i], name=f"moe_{i}")
                           for i in range(num_layers)]
        self.head_norm = keras.layers.LayerNormalization(name="head_norm")
        self.head_dense = keras.layers.Dense(num_classes,
                                             kernel_initializer=_seeded("GlorotUniform", seeds[1]),
                                             name="head")
        self.build((None, self.num_features))

    def build(self, input_shape):
        self.stem.build((None, self.num_features))
        for layer in self.moe_layers:
            layer.build((None, self.width))
        self.head_norm.build((None, self.width))
        self.head_dense.build((None, self.width))
        self.built = True

    def embed(self, x):
        return self.stem(x)

    def head(self, hidden):
        return self.head_dense(self.head_norm(hidden))

    def forward(self, x, top_k):
        """Logits ``[batch, C]`` and load-balancing loss (scalar) under top-k routing."""
        hidden = self.embed(x)
        balance = 0.0
        for layer in self.moe_layers:
            hidden, relevance, mask = layer.route(hidden, top_k)
            # Switch-Transformer load balance: K * sum_k (share of routed slots) * (mean gate prob).
            share = tf.reduce_mean(tf.cast(mask, hidden.dtype), axis=0) / top_k
            prob = tf.reduce_mean(relevance, axis=0)
            balance += self.num_experts * tf.reduce_sum(share * prob)
        return self.head(hidden), balance / self.num_layers

    def call(self, x):
        return self.forward(x, self.top_k)[0]

    def get_config(self):
        return {
            "num_features": self.num_features, "num_classes": self.num_classes,
            "num_layers": self.num_layers, "num_experts": self.num_experts, "width": self.width,
            "expert_hidden": self.expert_hidden, "top_k": self.top_k, "seed": self.seed,
            "moe_config": self.moe_config, "training_record": self.training_record,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
