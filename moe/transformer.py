r"""Keras 3 layers of the ``multidomain`` transformer MoE.

``TransformerMoENetwork`` = token + position embedding -> L x ``TransformerMoEBlock`` (multi-head
self-attention, then an MoE feed-forward layer with K experts and a softmax gate) -> per-position
head (LayerNorm + Dense). See ``docs/moe.md`` ("The multidomain transformer") for the equations.
"""

import numpy as np
import keras
import tensorflow as tf

from dmoe.moe.network import _seeded

__all__ = ["TransformerMoEBlock", "TransformerMoENetwork"]


@keras.saving.register_keras_serializable(package="dmoe")
class TransformerMoEBlock(keras.layers.Layer):
    r"""One pre-norm transformer block whose feed-forward layer is a Mixture of Experts.

    ``m = h + MHA(LN_a(h))`` (no causal mask), ``u = LN_f(m)``, ``g = softmax(u W_g + b_g)``,
    ``f_k(u) = relu(u W1_k + b1_k) W2_k + b2_k``, ``h' = m + sum_k w_k f_k(u)``.
    Attention, both norms and the gate run at the coordinator; ``u`` is what an expert node
    receives and ``f_k(u)`` what it returns.

    Parameters
    ----------
    num_experts : int
        K.
    expert_hidden : int
        Inner width of each expert FFN.
    num_heads : int
        Attention heads (the width must be a multiple of it).
    seed : int
        Seed of the initial weights.

    Input
    -----
    hidden : [batch, positions, width], float32

    Output
    ------
    hidden : [batch, positions, width], float32 (``call``: top-2 routing)
    """

    def __init__(self, num_experts, expert_hidden, num_heads, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.num_experts = int(num_experts)
        self.expert_hidden = int(expert_hidden)
        self.num_heads = int(num_heads)
        self.seed = int(seed)
        self._seeds = [int(s) for s in np.random.SeedSequence([self.seed, 11]).generate_state(8)]
        self.attention_norm = keras.layers.LayerNormalization(name="attention_norm")
        self.ffn_norm = keras.layers.LayerNormalization(name="ffn_norm")

    def build(self, input_shape):
        width = int(input_shape[-1])
        self.width = width
        self.attention_norm.build(input_shape)
        self.ffn_norm.build(input_shape)
        glorot = [_seeded("GlorotUniform", s) for s in self._seeds]
        self.attention_in = self.add_weight(name="attention_in", shape=(width, 3 * width),
                                            initializer=glorot[0])
        self.attention_out = self.add_weight(name="attention_out", shape=(width, width),
                                             initializer=glorot[1])
        self.attention_bias = self.add_weight(name="attention_bias", shape=(width,),
                                              initializer="zeros")
        k, f = self.num_experts, self.expert_hidden
        self.gate_kernel = self.add_weight(name="gate_kernel", shape=(width, k),
                                           initializer=glorot[2])
        self.gate_bias = self.add_weight(name="gate_bias", shape=(k,), initializer="zeros")
        self.kernel_in = self.add_weight(name="kernel_in", shape=(k, width, f),
                                         initializer=_seeded("HeUniform", self._seeds[3]))
        self.bias_in = self.add_weight(name="bias_in", shape=(k, f), initializer="zeros")
        self.kernel_out = self.add_weight(name="kernel_out", shape=(k, f, width),
                                          initializer=glorot[4])
        self.bias_out = self.add_weight(name="bias_out", shape=(k, width), initializer="zeros")

    def attend(self, hidden):
        """Residual stream after self-attention, ``m = h + MHA(LN_a(h))``: [B, P, width]."""
        batch, positions = tf.shape(hidden)[0], tf.shape(hidden)[1]
        heads, head_width = self.num_heads, self.width // self.num_heads
        qkv = tf.matmul(self.attention_norm(hidden), self.attention_in)
        qkv = tf.reshape(qkv, [batch, positions, 3, heads, head_width])
        query, key, value = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        scores = tf.einsum("bphd,bqhd->bhpq", query, key) / np.sqrt(head_width).astype(np.float32)
        context = tf.einsum("bhpq,bqhd->bphd", tf.nn.softmax(scores, axis=-1), value)
        context = tf.reshape(context, [batch, positions, self.width])
        return hidden + tf.matmul(context, self.attention_out) + self.attention_bias

    def expert_input(self, mid):
        """What the experts receive, ``u = LN_f(m)``: same shape as ``mid``."""
        return self.ffn_norm(mid)

    def relevance(self, tokens):
        """Gate softmax ``[..., K]`` of expert inputs ``tokens`` ``[..., width]``."""
        return tf.nn.softmax(tf.matmul(tokens, self.gate_kernel) + self.gate_bias, axis=-1)

    def expert_outputs(self, tokens):
        """Every expert's output ``[N, K, width]`` for expert inputs ``tokens`` ``[N, width]``."""
        inner = tf.nn.relu(tf.einsum("nw,kwf->nkf", tokens, self.kernel_in) + self.bias_in)
        return tf.einsum("nkf,kfw->nkw", inner, self.kernel_out) + self.bias_out

    def routed_outputs(self, tokens, rows, experts):
        """Outputs of the listed (token, expert) pairs only: ``[M, width]``.

        Each expert runs once on the rows routed to it (``tf.dynamic_partition`` /
        ``dynamic_stitch``), so the cost grows with the pairs, not with K.

        Input
        -----
        tokens : [N, width], float32
        rows : [M], int32, token of each pair
        experts : [M], int32, expert of each pair, in [0, K)
        """
        pairs = tf.range(tf.shape(rows)[0])
        parts = tf.dynamic_partition(pairs, experts, self.num_experts)
        outputs = []
        for k in range(self.num_experts):
            inputs = tf.gather(tokens, tf.gather(rows, parts[k]))
            inner = tf.nn.relu(tf.matmul(inputs, self.kernel_in[k]) + self.bias_in[k])
            outputs.append(tf.matmul(inner, self.kernel_out[k]) + self.bias_out[k])
        return tf.dynamic_stitch(parts, outputs)

    def route(self, hidden, top_k):
        """Block forward with sparse top-k routing: (hidden' [B, P, W], relevance [B*P, K], mask)."""
        mid = self.attend(hidden)
        tokens = tf.reshape(self.expert_input(mid), [-1, self.width])
        relevance = self.relevance(tokens)
        top_value, top_index = tf.math.top_k(relevance, k=top_k)
        weights = top_value / tf.reduce_sum(top_value, axis=-1, keepdims=True)
        num_tokens = tf.shape(tokens)[0]
        rows = tf.repeat(tf.range(num_tokens), top_k)
        outputs = self.routed_outputs(tokens, rows, tf.reshape(top_index, [-1]))
        mixed = tf.reduce_sum(tf.reshape(outputs, [num_tokens, top_k, self.width])
                              * weights[..., None], axis=1)
        mask = tf.reduce_any(tf.one_hot(top_index, self.num_experts, on_value=True,
                                        off_value=False), axis=-2)
        return mid + tf.reshape(mixed, tf.shape(mid)), relevance, mask

    def call(self, hidden, top_k=2):
        return self.route(hidden, top_k)[0]

    def get_config(self):
        config = super().get_config()
        config.update(num_experts=self.num_experts, expert_hidden=self.expert_hidden,
                      num_heads=self.num_heads, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="dmoe")
class TransformerMoENetwork(keras.Model):
    r"""Embedding -> L transformer MoE blocks -> per-position head, saved and loaded as ``.keras``.

    Parameters
    ----------
    vocabulary_size : int
        Input tokens.
    sequence_length : int
        Positions per sequence (P).
    num_classes : int
        Answer symbols of the head.
    num_layers, num_experts, width, expert_hidden, num_heads, top_k, seed : int
        As in :class:`dmoe.moe.MoEConfig`.
    moe_config : dict or None
        The full :class:`MoEConfig` (``to_dict``) recorded in the saved file.
    training_record : dict or None
        Training time, sizes and library versions, recorded in the saved file.

    Input
    -----
    x : [batch, P], int32

    Output
    ------
    logits : [batch, P, num_classes], float32
    """

    def __init__(self, vocabulary_size, sequence_length, num_classes, num_layers, num_experts,
                 width, expert_hidden, num_heads, top_k=2, seed=0, moe_config=None,
                 training_record=None, **kwargs):
        kwargs.setdefault("name", "transformer_moe")
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)
        self.sequence_length = int(sequence_length)
        self.num_classes = int(num_classes)
        self.num_layers = int(num_layers)
        self.num_experts = int(num_experts)
        self.width = int(width)
        self.expert_hidden = int(expert_hidden)
        self.num_heads = int(num_heads)
        self.top_k = int(top_k)
        self.seed = int(seed)
        self.moe_config = moe_config
        self.training_record = training_record or {}
        seeds = [int(s) for s in np.random.SeedSequence([self.seed, 5]).generate_state(num_layers + 3)]
        self.token_embedding = keras.layers.Embedding(
            vocabulary_size, width, embeddings_initializer=_seeded("RandomNormal", seeds[0]),
            name="token_embedding")
        self.position_embedding = keras.layers.Embedding(
            sequence_length, width, embeddings_initializer=_seeded("RandomNormal", seeds[1]),
            name="position_embedding")
        self.blocks = [TransformerMoEBlock(num_experts, expert_hidden, num_heads, seed=seeds[3 + i],
                                           name=f"block_{i}") for i in range(num_layers)]
        self.head_norm = keras.layers.LayerNormalization(name="head_norm")
        self.head_dense = keras.layers.Dense(num_classes,
                                             kernel_initializer=_seeded("GlorotUniform", seeds[2]),
                                             name="head")
        self.build((None, self.sequence_length))

    def build(self, input_shape):
        shape = (None, self.sequence_length, self.width)
        self.token_embedding.build((None, self.sequence_length))
        self.position_embedding.build((None, self.sequence_length))
        for block in self.blocks:
            block.build(shape)
        self.head_norm.build(shape)
        self.head_dense.build(shape)
        self.built = True

    def embed(self, x):
        """Token plus position embedding: [B, P] int -> [B, P, width]."""
        positions = tf.range(tf.shape(x)[1])
        return self.token_embedding(x) + self.position_embedding(positions)[None]

    def head(self, hidden):
        """Per-position logits: [B, P, width] -> [B, P, num_classes]."""
        return self.head_dense(self.head_norm(hidden))

    def forward(self, x, top_k, with_entropy=False):
        """Logits ``[B, P, C]`` and load-balancing loss (scalar) under sparse top-k routing.

        With ``with_entropy``, also the mean entropy of the gate (nats, over positions and
        layers) as a third output.
        """
        hidden = self.embed(x)
        balance = entropy = 0.0
        for block in self.blocks:
            hidden, relevance, mask = block.route(hidden, top_k)
            # Switch-Transformer load balance over routed positions, as in MoENetwork.forward.
            share = tf.reduce_mean(tf.cast(mask, hidden.dtype), axis=0) / top_k
            prob = tf.reduce_mean(relevance, axis=0)
            balance += self.num_experts * tf.reduce_sum(share * prob)
            entropy += -tf.reduce_mean(tf.reduce_sum(
                relevance * tf.math.log(tf.maximum(relevance, 1e-12)), axis=-1))
        if with_entropy:
            return self.head(hidden), balance / self.num_layers, entropy / self.num_layers
        return self.head(hidden), balance / self.num_layers

    def call(self, x):
        return self.forward(x, self.top_k)[0]

    def get_config(self):
        return {
            "vocabulary_size": self.vocabulary_size, "sequence_length": self.sequence_length,
            "num_classes": self.num_classes, "num_layers": self.num_layers,
            "num_experts": self.num_experts, "width": self.width,
            "expert_hidden": self.expert_hidden, "num_heads": self.num_heads,
            "top_k": self.top_k, "seed": self.seed, "moe_config": self.moe_config,
            "training_record": self.training_record, "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
