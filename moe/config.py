"""Configuration of a dmoe Mixture-of-Experts model and of its training run."""

import dataclasses
import hashlib
import json

__all__ = ["MoEConfig", "TASKS"]

TASKS = ("digits", "modrec", "trace", "multidomain")

# The multidomain generator's domains (dmoe.moe._sequences.DOMAINS, repeated here so that the
# config imports no data code).
_SEQUENCE_DOMAINS = ("reverse", "sort", "add", "qam16", "dqpsk")


@dataclasses.dataclass(frozen=True)
class MoEConfig:
    r"""Frozen, validated configuration of one MoE model, its task and its training.

    The defaults train the ``digits`` model in a few seconds on two CPU cores. Two configs with
    equal fields give bit-identical weights (see ``docs/moe.md``, *Reproducibility*).

    Parameters
    ----------
    task : str
        ``"digits"``, ``"modrec"``, ``"trace"`` or ``"multidomain"`` (a token-level transformer
        MoE on generated sequences, see ``docs/moe.md``).
    num_layers : int
        L, number of MoE layers.
    num_experts : int
        K, experts per MoE layer.
    width : int
        Hidden width (d_model) of the residual stream.
    expert_hidden : int
        Inner width of each expert's feed-forward network.
    top_k : int
        Experts per token used in training (sparse top-k routing), ``1 <= top_k <= num_experts``.
    balance_weight : float
        Weight of the load-balancing loss ``K * sum_k f_k P_k`` (Switch-Transformer form).
    gate_entropy_weight : float
        ``multidomain`` only: weight of a bonus on the gate's mean entropy (subtracted from the
        loss), which keeps relevance scores spread over more than the top-2 experts.
    epochs : int
        Training epochs.
    batch_size : int
        Training mini-batch size.
    learning_rate : float
        Adam learning rate.
    seed : int
        Seed of everything random: data split, synthetic data, initial weights, shuffling.
    test_fraction : float
        Fraction of the examples held out as the test split.
    modrec_examples : int
        Number of ``modrec`` examples generated (train + test).
    modrec_symbols : int
        Received symbols per ``modrec`` example.
    modrec_snr_db : tuple of float
        SNRs (dB, per symbol) drawn uniformly for ``modrec`` examples.
    modrec_orders : tuple of int
        Constellation sizes of the ``modrec`` classes: 2 (BPSK), 4 (QPSK), 16, 64 (square QAM).
    trace_path : str or None
        ``.npz`` file with an array ``gates`` or ``logits`` [tokens, layers, experts] (``trace``).
    trace_width : int
        Hidden width of the traced model, used only for ``payload_bits`` of a ``trace`` model.
    num_heads : int
        Attention heads of each ``multidomain`` block (``width`` must be a multiple of it).
    multidomain_train : int
        Training sequences generated for ``multidomain``.
    multidomain_test : int
        Test sequences generated for ``multidomain`` (its own random stream).
    multidomain_domains : tuple of str
        Domains of the ``multidomain`` sequences, a subset of
        ``("reverse", "sort", "add", "qam16", "dqpsk")``.

    Example
    -------
    >>> config = MoEConfig(task="digits", num_layers=2, num_experts=8, seed=1)
    >>> config.key()[:8]  # stable hash used as cache key
    """

    task: str = "digits"
    num_layers: int = 2
    num_experts: int = 8
    width: int = 32
    expert_hidden: int = 32
    top_k: int = 2
    balance_weight: float = 0.05
    gate_entropy_weight: float = 0.0
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 3e-3
    seed: int = 0
    test_fraction: float = 0.25
    modrec_examples: int = 12000
    modrec_symbols: int = 64
    modrec_snr_db: tuple = (0.0, 5.0, 10.0, 15.0, 20.0)
    modrec_orders: tuple = (2, 4, 16, 64)
    trace_path: str | None = None
    trace_width: int = 4096
    num_heads: int = 4
    multidomain_train: int = 60000
    multidomain_test: int = 2500
    multidomain_domains: tuple = _SEQUENCE_DOMAINS

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        for name in ("num_layers", "num_experts", "width", "expert_hidden", "top_k", "epochs",
                     "batch_size", "modrec_examples", "modrec_symbols", "trace_width", "num_heads",
                     "multidomain_train", "multidomain_test"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k must be <= num_experts={self.num_experts}, got {self.top_k}")
        if not self.gate_entropy_weight >= 0.0:
            raise ValueError(f"gate_entropy_weight must be >= 0, got {self.gate_entropy_weight!r}")
        if not self.balance_weight >= 0.0:
            raise ValueError(f"balance_weight must be >= 0, got {self.balance_weight!r}")
        if not self.learning_rate > 0.0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1), got {self.test_fraction!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        # Tuples (not lists) keep the config hashable and its hash stable.
        object.__setattr__(self, "modrec_snr_db", tuple(float(s) for s in self.modrec_snr_db))
        object.__setattr__(self, "modrec_orders", tuple(int(m) for m in self.modrec_orders))
        if not self.modrec_snr_db:
            raise ValueError("modrec_snr_db must hold at least one SNR")
        bad = [m for m in self.modrec_orders if m not in (2, 4, 16, 64, 256)]
        if bad or len(set(self.modrec_orders)) < 2:
            raise ValueError("modrec_orders must hold >= 2 distinct orders from (2, 4, 16, 64, 256), "
                             f"got {self.modrec_orders}")
        object.__setattr__(self, "multidomain_domains", tuple(self.multidomain_domains))
        bad = [d for d in self.multidomain_domains if d not in _SEQUENCE_DOMAINS]
        if bad or not self.multidomain_domains \
                or len(set(self.multidomain_domains)) != len(self.multidomain_domains):
            raise ValueError(f"multidomain_domains must hold distinct names from {_SEQUENCE_DOMAINS}, "
                             f"got {self.multidomain_domains}")
        if self.task == "multidomain" and self.width % self.num_heads:
            raise ValueError(f"width must be a multiple of num_heads={self.num_heads}, "
                             f"got {self.width}")
        if self.task == "trace" and self.trace_path is None:
            raise ValueError("trace_path must name an .npz file when task='trace'")

    def to_dict(self):
        """Plain-JSON dict of all fields (tuples become lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values):
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"values has unknown MoEConfig fields {sorted(unknown)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()})

    def key(self):
        """SHA-256 hex digest of the fields, stable across runs and machines."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()
