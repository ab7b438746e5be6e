"""Build and train the dmoe MoE (sparse top-k routing + load-balancing loss)."""

import contextlib
import hashlib
import time

import keras
import numpy as np
import sklearn
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

from dmoe.moe._data import load_task_data
from dmoe.moe.config import MoEConfig
from dmoe.moe.model import MoEModel
from dmoe.moe.network import MoENetwork
from dmoe.moe.trace import TraceMoE

__all__ = ["build_moe", "train_moe", "library_versions"]


def library_versions():
    """Versions that change trained weights: ``{"tensorflow", "keras", "numpy", "sklearn"}``."""
    return {"tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "sklearn": sklearn.__version__}


def _check_config(config):
    if not isinstance(config, MoEConfig):
        raise TypeError(f"config must be a MoEConfig, got {type(config).__name__}")


def build_moe(config=MoEConfig()):
    """Untrained model of ``config`` (weights drawn from ``config.seed``), with its task data.

    Parameters
    ----------
    config : MoEConfig
        ``config.task`` is ``"digits"``, ``"modrec"`` or ``"trace"``.

    Output
    ------
    model : MoEModel or TraceMoE
        A ``trace`` config returns the (already complete) :class:`TraceMoE`.

    Example
    -------
    >>> model = build_moe(MoEConfig(task="digits", seed=3))
    >>> model.accuracy(*model.test_data(), selection="top_k", k=2)  # near chance: untrained
    """
    _check_config(config)
    if config.task == "trace":
        return TraceMoE.from_config(config)
    if config.task == "multidomain":
        return _build_sequence_moe(config)
    data = load_task_data(config)
    network = MoENetwork(
        num_features=data.x_train.shape[1], num_classes=data.num_classes,
        num_layers=config.num_layers, num_experts=config.num_experts, width=config.width,
        expert_hidden=config.expert_hidden, top_k=config.top_k, seed=config.seed,
        moe_config=config.to_dict(),
        training_record={"trained": False, "test_index_sha256": _digest(data.test_index)},
    )
    return MoEModel(network, config, data)


def _build_sequence_moe(config):
    from dmoe.moe._sequences import SEQUENCE_LENGTH, VOCABULARY_SIZE, load_sequence_data
    from dmoe.moe.sequence_model import SequenceMoEModel
    from dmoe.moe.transformer import TransformerMoENetwork

    data = load_sequence_data(config)
    network = TransformerMoENetwork(
        vocabulary_size=VOCABULARY_SIZE, sequence_length=SEQUENCE_LENGTH,
        num_classes=data.num_classes, num_layers=config.num_layers,
        num_experts=config.num_experts, width=config.width, expert_hidden=config.expert_hidden,
        num_heads=config.num_heads, top_k=config.top_k, seed=config.seed,
        moe_config=config.to_dict(),
        training_record={"trained": False, "test_index_sha256": _digest(data.test_index)})
    return SequenceMoEModel(network, config, data)


def _digest(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@contextlib.contextmanager
def _op_determinism():
    """Turn on TensorFlow op determinism for the block, and restore the previous setting."""
    # The query and the switch-off are not public API; without them determinism stays on.
    is_enabled = getattr(tf_config, "is_op_determinism_enabled", lambda: False)
    disable = getattr(tf_config, "disable_op_determinism", None)
    was_enabled = is_enabled()
    if not was_enabled:
        tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if not was_enabled and disable is not None:
            disable()


def train_moe(config=MoEConfig(), verbose=False):
    r"""Train a model of ``config`` with top-``config.top_k`` routing and load balancing.

    Loss = cross-entropy + ``balance_weight`` x (Switch load-balancing loss averaged over layers).
    Mini-batches are shuffled by a numpy generator seeded from ``config.seed``; initial weights use
    seeded Keras initialisers; TensorFlow op determinism is on during training (and restored
    afterwards), so the same config gives the same weights on the same library versions.

    Parameters
    ----------
    config : MoEConfig
    verbose : bool
        Print the loss per epoch.

    Output
    ------
    model : MoEModel
        Trained; ``model.network.training_record`` holds train time, final losses, versions.
    """
    _check_config(config)
    if config.task == "trace":
        raise ValueError("config.task='trace' replays recorded gates and has nothing to train; "
                         "use build_moe(config)")
    model = build_moe(config)
    network, data = model.network, model.data
    optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
    optimizer.build(network.trainable_variables)
    top_k = config.top_k
    balance_weight = tf.constant(config.balance_weight, tf.float32)

    sequences = config.task == "multidomain"

    def task_loss_of(y, logits):
        if not sequences:
            return tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        # Cross-entropy over the answer positions only (target -1 elsewhere).
        scored = tf.cast(y >= 0, logits.dtype)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.maximum(y, 0),
                                                                logits=logits)
        return tf.reduce_sum(losses * scored) / tf.maximum(tf.reduce_sum(scored), 1.0)

    entropy_weight = tf.constant(config.gate_entropy_weight, tf.float32)

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            if sequences:
                logits, balance, entropy = network.forward(x, top_k, with_entropy=True)
            else:
                logits, balance = network.forward(x, top_k)
                entropy = 0.0
            task_loss = task_loss_of(y, logits)
            loss = task_loss + balance_weight * balance - entropy_weight * entropy
        gradients = tape.gradient(loss, network.trainable_variables)
        optimizer.apply(gradients, network.trainable_variables)
        return task_loss, balance

    rng = np.random.default_rng([config.seed, 2])
    x_train, y_train = data.x_train, data.y_train
    num_batches = max(1, len(y_train) // config.batch_size)
    start, start_cpu = time.perf_counter(), time.process_time()
    history = []
    with _op_determinism():
        for epoch in range(config.epochs):
            order = rng.permutation(len(y_train))
            losses = []
            for b in range(num_batches):
                rows = order[b * config.batch_size:(b + 1) * config.batch_size]
                losses.append([float(v) for v in step(tf.constant(x_train[rows]),
                                                        tf.constant(y_train[rows]))])
            history.append(np.mean(losses, axis=0).tolist())
            if verbose:
                print(f"epoch {epoch + 1}: task loss {history[-1][0]:.4f}, "
                      f"balance {history[-1][1]:.4f}")
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    network.training_record = {
        "trained": True,
        "train_seconds": seconds,
        # Processor time of all threads: with other jobs on the machine, wall time overstates.
        "train_cpu_seconds": cpu_seconds,
        "final_task_loss": history[-1][0],
        "final_balance_loss": history[-1][1],
        "num_train": int(len(y_train)),
        "num_test": int(len(data.y_test)),
        "test_index_sha256": _digest(data.test_index),
        "versions": library_versions(),
    }
    return model
