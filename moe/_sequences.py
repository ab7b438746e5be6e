r"""Generated token sequences of the ``multidomain`` task (private helpers of :mod:`dmoe.moe`).

Every sequence has ``SEQUENCE_LENGTH`` positions: a domain token, the question, then one ``ANS``
placeholder per answer position (and ``PAD`` to fill). The model reads the whole sequence at once
(no causal mask) and predicts an answer symbol at every position; only the answer positions are
scored (target ``-1`` elsewhere): the ``ANS`` positions, and for ``dqpsk`` the received symbols
after the first (a differential detector decides each step at the symbol that ends it). Five domains need different computations:

========== ================================================ ===================================
domain     question                                         answer
========== ================================================ ===================================
reverse    6 digits                                         the digits in reverse order
sort       6 digits                                         the digits in ascending order
add        two 2-digit numbers ``a + b`` (most significant  the 3 digits of ``a + b``
           digit first)
qam16      4 noisy 16-QAM symbols, I and Q each quantised   the minimum-distance 16-QAM
           to one of 12 levels (two tokens per symbol)      decision of each symbol (0..15)
dqpsk      12 noisy differentially encoded QPSK symbols,    the 11 phase steps between
           the phase quantised to one of 12 sectors         consecutive symbols (0..3), read
                                                            at symbols 1..11 themselves
========== ================================================ ===================================

The wireless answers are the receiver's hard decisions on what it observed (the quantised
symbols), so every answer is a function of the question: a perfect model scores 100 %, and the
channel noise changes which decision is right, not whether one exists. Bin centres never fall on a
decision boundary, so no decision is a tie. Everything is drawn from ``numpy.random.default_rng``
seeded by the config (no download).
"""

import numpy as np

__all__ = ["DOMAINS", "SEQUENCE_LENGTH", "NUM_SYMBOLS", "VOCABULARY_SIZE", "PAD", "ANS", "PLUS",
           "SequenceData", "generate_sequences", "load_sequence_data", "qam16_levels",
           "iq_bin_centres", "phase_bin_centres", "domain_token", "digit_token", "iq_token",
           "phase_token"]

#: The domains, in the order of their domain ids.
DOMAINS = ("reverse", "sort", "add", "qam16", "dqpsk")

#: Positions per sequence (every domain is padded to it).
SEQUENCE_LENGTH = 13

#: Answer symbols the output head chooses from (16-QAM needs the most: 16).
NUM_SYMBOLS = 16

PAD, ANS, PLUS = 0, 1, 2
_DOMAIN0 = 3
_DIGIT0 = _DOMAIN0 + len(DOMAINS)
IQ_LEVELS = 12
_IQ0 = _DIGIT0 + 10
PHASE_SECTORS = 12
_PHASE0 = _IQ0 + IQ_LEVELS

#: Input tokens: PAD, ANS, PLUS, 5 domains, 10 digits, 12 I/Q levels, 12 phase sectors.
VOCABULARY_SIZE = _PHASE0 + PHASE_SECTORS

_IQ_RANGE = 4.0 / np.sqrt(10.0)      # I/Q quantiser spans [-4a, 4a], a = 1/sqrt(10)
_SNR_DB = (8.0, 12.0, 16.0, 20.0)    # per-symbol SNRs drawn for qam16 and dqpsk


def domain_token(domain):
    """Input token of domain id ``domain`` (int or int array)."""
    return _DOMAIN0 + np.asarray(domain)


def digit_token(digit):
    """Input token of decimal digit(s) ``digit``."""
    return _DIGIT0 + np.asarray(digit)


def iq_token(level):
    """Input token of I/Q quantiser level(s) ``level`` in [0, 12)."""
    return _IQ0 + np.asarray(level)


def phase_token(sector):
    """Input token of phase sector(s) ``sector`` in [0, 12)."""
    return _PHASE0 + np.asarray(sector)


def qam16_levels():
    """The four unit-energy 16-QAM amplitudes per axis, ``(-3, -1, 1, 3) / sqrt(10)``."""
    return np.array([-3.0, -1.0, 1.0, 3.0]) / np.sqrt(10.0)


def iq_bin_centres():
    """Centres of the 12 I/Q quantiser levels, [12], float64 (uniform on [-4a, 4a])."""
    width = 2 * _IQ_RANGE / IQ_LEVELS
    return -_IQ_RANGE + (np.arange(IQ_LEVELS) + 0.5) * width


def phase_bin_centres():
    """Centres of the 12 phase sectors in radians, [12], float64."""
    return (np.arange(PHASE_SECTORS) + 0.5) * (2 * np.pi / PHASE_SECTORS)


class SequenceData:
    """Train/test split of the ``multidomain`` task (numpy arrays, batch first).

    Attributes
    ----------
    x_train, x_test : [num_sequences, SEQUENCE_LENGTH], int32
        Input tokens.
    y_train, y_test : [num_sequences, SEQUENCE_LENGTH], int32
        Answer symbol at every answer position, ``-1`` elsewhere.
    domain_train, domain_test : [num_sequences], int32
        Domain id of each sequence (index into ``domain_names``).
    domain_names : tuple of str
    num_classes : int
        ``NUM_SYMBOLS``.
    test_index : [num_test], int64
        ``arange(num_test)``: the test split is generated on its own stream.
    """

    def __init__(self, train, test, domain_names):
        self.x_train, self.y_train, self.domain_train = train
        self.x_test, self.y_test, self.domain_test = test
        self.domain_names = tuple(domain_names)
        self.num_classes = NUM_SYMBOLS
        self.class_names = [str(s) for s in range(NUM_SYMBOLS)]
        self.test_index = np.arange(len(self.x_test), dtype=np.int64)
        self.extra_test = {"domain": self.domain_test}


def _digits_of(values, count):
    """Decimal digits of ``values`` [n], most significant first: [n, count] int."""
    powers = 10 ** np.arange(count - 1, -1, -1)
    return (np.asarray(values)[:, None] // powers) % 10


def _reverse(n, rng):
    digits = rng.integers(0, 10, size=(n, 6))
    return digit_token(digits), digits[:, ::-1]


def _sort(n, rng):
    digits = rng.integers(0, 10, size=(n, 6))
    return digit_token(digits), np.sort(digits, axis=1)


def _add(n, rng):
    a, b = rng.integers(0, 100, size=n), rng.integers(0, 100, size=n)
    question = np.concatenate([digit_token(_digits_of(a, 2)), np.full((n, 1), PLUS),
                               digit_token(_digits_of(b, 2))], axis=1)
    return question, _digits_of(a + b, 3)


def _noise(shape, snr_db, rng):
    """Complex Gaussian noise of per-row SNR ``snr_db`` [n] for unit-energy symbols."""
    std = np.sqrt(10.0 ** (-snr_db / 10.0) / 2.0)[:, None]
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * std


def _qam16(n, rng):
    levels = qam16_levels()
    sent = rng.integers(0, 4, size=(n, 4, 2))              # (I level, Q level) of 4 symbols
    snr_db = rng.choice(np.asarray(_SNR_DB), size=n)
    received = levels[sent[..., 0]] + 1j * levels[sent[..., 1]] + _noise((n, 4), snr_db, rng)
    width = 2 * _IQ_RANGE / IQ_LEVELS
    quantised = np.stack([received.real, received.imag], axis=-1)      # [n, 4, 2]
    bins = np.clip(np.floor((quantised + _IQ_RANGE) / width), 0, IQ_LEVELS - 1).astype(int)
    # Per axis, the nearest 16-QAM amplitude to the bin centre (decision regions split at 0 and
    # +-2a; no centre lies on a split).
    centres = iq_bin_centres()
    decided = np.argmin(np.abs(centres[bins][..., None] - levels), axis=-1)   # [n, 4, 2]
    return iq_token(bins).reshape(n, 8), 4 * decided[..., 0] + decided[..., 1]


def _dqpsk(n, rng):
    steps = rng.integers(0, 4, size=(n, _DQPSK_SYMBOLS - 1))
    start = rng.uniform(0.0, 2 * np.pi, size=(n, 1))
    phase = start + np.concatenate([np.zeros((n, 1)), np.cumsum(steps, axis=1)], axis=1) * np.pi / 2
    snr_db = rng.choice(np.asarray(_SNR_DB), size=n)
    received = np.exp(1j * phase) + _noise((n, _DQPSK_SYMBOLS), snr_db, rng)
    sectors = np.floor(np.mod(np.angle(received), 2 * np.pi) / (2 * np.pi / PHASE_SECTORS))
    sectors = np.clip(sectors, 0, PHASE_SECTORS - 1).astype(int)
    # A quarter turn is 3 sectors, so a step of d sectors decides round(d / 3) quarter turns;
    # d / 3 is never a half-integer.
    difference = np.mod(np.diff(sectors, axis=1), PHASE_SECTORS)
    decided = np.mod(np.floor(difference / 3 + 0.5), 4).astype(int)
    return phase_token(sectors), decided


# Domains whose answers sit on the question's own positions (no ANS placeholders): the answer to
# dqpsk's step i is read at received symbol i, as a differential detector outputs it.
_IN_PLACE = {"dqpsk": 1}
_DQPSK_SYMBOLS = 12

_GENERATORS = {"reverse": _reverse, "sort": _sort, "add": _add, "qam16": _qam16, "dqpsk": _dqpsk}


def generate_sequences(num_sequences, rng, domains=DOMAINS):
    r"""Sequences of the ``multidomain`` task, domains in equal shares in a shuffled order.

    Parameters
    ----------
    num_sequences : int
        Number of sequences.
    rng : numpy.random.Generator
        Source of all randomness.
    domains : tuple of str
        Domains to draw from (a subset of :data:`DOMAINS`); the domain ids stay those of
        :data:`DOMAINS`.

    Output
    ------
    x : [num_sequences, SEQUENCE_LENGTH], int32
        ``[domain token, question..., ANS x answers, PAD...]`` (``dqpsk``: no ``ANS``).
    y : [num_sequences, SEQUENCE_LENGTH], int32
        Answer symbol at the answer positions, -1 elsewhere.
    domain : [num_sequences], int32
        Domain id (index into :data:`DOMAINS`).
    """
    unknown = [d for d in domains if d not in DOMAINS]
    if unknown or not domains:
        raise ValueError(f"domains must be a non-empty subset of {DOMAINS}, got {domains!r}")
    ids = np.array([DOMAINS.index(d) for d in domains])
    domain = rng.permutation(ids[np.arange(num_sequences) % len(ids)])
    x = np.full((num_sequences, SEQUENCE_LENGTH), PAD, dtype=np.int32)
    y = np.full((num_sequences, SEQUENCE_LENGTH), -1, dtype=np.int32)
    x[:, 0] = domain_token(domain)
    for index in ids:
        rows = np.flatnonzero(domain == index)
        question, answer = _GENERATORS[DOMAINS[index]](len(rows), rng)
        q, a = question.shape[1], answer.shape[1]
        x[rows, 1:1 + q] = question
        if DOMAINS[index] in _IN_PLACE:
            first = 1 + _IN_PLACE[DOMAINS[index]]
            y[rows, first:first + a] = answer
        else:
            x[rows, 1 + q:1 + q + a] = ANS
            y[rows, 1 + q:1 + q + a] = answer
    return x, y, domain.astype(np.int32)


def load_sequence_data(config):
    """Train and test split of a ``multidomain`` config, each on its own seeded stream.

    Parameters
    ----------
    config : MoEConfig
        Uses ``seed``, ``multidomain_train``, ``multidomain_test`` and ``multidomain_domains``.

    Output
    ------
    data : SequenceData
    """
    train = generate_sequences(config.multidomain_train, np.random.default_rng([config.seed, 3, 0]),
                               config.multidomain_domains)
    test = generate_sequences(config.multidomain_test, np.random.default_rng([config.seed, 3, 1]),
                              config.multidomain_domains)
    return SequenceData(train, test, DOMAINS)
