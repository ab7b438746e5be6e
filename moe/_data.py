"""Datasets of the dmoe MoE tasks (private helpers of :mod:`dmoe.moe`).

Everything here is offline and seeded: ``digits`` is scikit-learn's bundled copy of the UCI
handwritten digits, ``modrec`` is generated here from the config's seed.
"""

import numpy as np

__all__ = ["TaskData", "load_task_data", "modrec_received_symbols", "modrec_features"]


class TaskData:
    """Train/test split of one task (numpy arrays, batch first).

    Attributes
    ----------
    x_train, x_test : [num_examples, num_features], float32
    y_train, y_test : [num_examples], int64
    num_classes : int
    class_names : list of str
    test_index : [num_test], int64
        Positions of the test examples in the full generated / loaded data set.
    extra_test : dict of str -> [num_test] arrays
        Per-example side information of the test split (``modrec``: ``snr_db``, ``fading``).
    """

    def __init__(self, x_train, y_train, x_test, y_test, num_classes, class_names, test_index,
                 extra_test=None):
        self.x_train, self.y_train = x_train, y_train
        self.x_test, self.y_test = x_test, y_test
        self.num_classes = num_classes
        self.class_names = class_names
        self.test_index = test_index
        self.extra_test = extra_test or {}


def _split(num_examples, test_fraction, rng):
    order = rng.permutation(num_examples)
    num_test = int(round(test_fraction * num_examples))
    return np.sort(order[num_test:]), np.sort(order[:num_test])


def _digits(config):
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    rng = np.random.default_rng([config.seed, 0])
    train, test = _split(len(y), config.test_fraction, rng)
    return TaskData(x[train], y[train], x[test], y[test], 10, [str(d) for d in range(10)],
                    test.astype(np.int64))


def _constellation(order):
    """Unit-energy constellation points of BPSK (order 2) or square M-QAM, [order], complex128."""
    if order == 2:
        return np.array([-1.0, 1.0], dtype=np.complex128)
    side = int(round(np.sqrt(order)))
    levels = np.arange(-(side - 1), side, 2, dtype=np.float64)
    points = (levels[:, None] + 1j * levels[None, :]).ravel()
    return points / np.sqrt(np.mean(np.abs(points) ** 2))


def modrec_received_symbols(orders, labels, snr_db, fading, num_symbols, rng):
    r"""Received symbols of the ``modrec`` task: QAM over AWGN or Rayleigh flat fading.

    This is the one place the ``modrec`` channel is generated; switching it to ``dmoe.phy``
    (Sionna mapper + channel) only changes this function.
    ``y = h x + n`` with unit-energy symbols x, ``h = 1`` (AWGN) or ``h ~ CN(0, 1)`` constant over
    the example (flat block fading), and ``n ~ CN(0, 10^(-snr_db/10))``.

    Parameters
    ----------
    orders : tuple of int
        Constellation size of each class.
    labels : [batch], int
        Class of each example (index into ``orders``).
    snr_db : [batch], float
        Average SNR per symbol in dB.
    fading : [batch], bool
        True: Rayleigh flat fading; False: AWGN only.
    num_symbols : int
        Symbols per example.
    rng : numpy.random.Generator
        Source of all randomness.

    Output
    ------
    y : [batch, num_symbols], complex128
        Received symbols.
    """
    batch = len(labels)
    symbols = np.empty((batch, num_symbols), dtype=np.complex128)
    for index, order in enumerate(orders):
        rows = np.flatnonzero(labels == index)
        points = _constellation(order)
        symbols[rows] = points[rng.integers(0, order, size=(len(rows), num_symbols))]
    gain = np.where(
        fading,
        (rng.standard_normal(batch) + 1j * rng.standard_normal(batch)) / np.sqrt(2.0),
        1.0 + 0.0j,
    )
    noise_var = 10.0 ** (-np.asarray(snr_db, dtype=np.float64) / 10.0)
    noise = (rng.standard_normal((batch, num_symbols))
             + 1j * rng.standard_normal((batch, num_symbols))) * np.sqrt(noise_var / 2.0)[:, None]
    return gain[:, None] * symbols + noise


def modrec_features(received):
    r"""Rotation- and gain-invariant features of received symbols: sorted amplitudes and moments.

    The symbols are scaled to unit mean power (the receiver knows neither the fading gain nor the
    SNR) and de-rotated by ``angle(E y^4) / 4`` (the blind fourth-power phase estimate, ambiguous
    by multiples of pi/2, which the ``|I|``/``|Q|`` folding below removes). Features, each sorted
    over the symbols so that their order does not matter: ``|y|``, ``max(|I|, |Q|)``,
    ``min(|I|, |Q|)``; then the moments ``|E y^2|``, ``|E y^4|``, ``E|y|^4``, ``E|y|^6 / 4`` and
    the fourth-order cumulants ``|C40|``, ``C42`` (``C40 = E y^4 - 3 (E y^2)^2``,
    ``C42 = E|y|^4 - |E y^2|^2 - 2``).

    Parameters
    ----------
    received : [batch, S], complex
        Received symbols.

    Output
    ------
    features : [batch, 3 * S + 6], float32
    """
    y = received / np.sqrt(np.mean(np.abs(received) ** 2, axis=1, keepdims=True))
    m20 = np.mean(y**2, axis=1)
    m40 = np.mean(y**4, axis=1)
    m42 = np.mean(np.abs(y) ** 4, axis=1)
    m63 = np.mean(np.abs(y) ** 6, axis=1)
    c40 = m40 - 3.0 * m20**2
    c42 = m42 - np.abs(m20) ** 2 - 2.0
    derotated = y * np.exp(-1j * np.angle(m40) / 4.0)[:, None]
    i, q = np.abs(derotated.real), np.abs(derotated.imag)
    sorted_parts = [np.sort(np.abs(y), axis=1), np.sort(np.maximum(i, q), axis=1),
                    np.sort(np.minimum(i, q), axis=1)]
    stats = np.stack([np.abs(m20), np.abs(m40), m42, m63 / 4.0, np.abs(c40), c42], axis=1)
    return np.concatenate(sorted_parts + [stats], axis=1).astype(np.float32)


def _modrec(config):
    rng = np.random.default_rng([config.seed, 1])
    n = config.modrec_examples
    labels = rng.integers(0, len(config.modrec_orders), size=n)
    snr_db = rng.choice(np.asarray(config.modrec_snr_db), size=n)
    fading = rng.random(n) < 0.5
    received = modrec_received_symbols(config.modrec_orders, labels, snr_db, fading,
                                       config.modrec_symbols, rng)
    x = modrec_features(received)
    train, test = _split(n, config.test_fraction, rng)
    names = {2: "BPSK", 4: "QPSK"}
    class_names = [names.get(m, f"{m}QAM") for m in config.modrec_orders]
    return TaskData(x[train], labels[train].astype(np.int64), x[test],
                    labels[test].astype(np.int64), len(class_names), class_names,
                    test.astype(np.int64),
                    {"snr_db": snr_db[test].astype(np.float32), "fading": fading[test]})


def load_task_data(config):
    """Train/test data of ``config.task`` (``digits`` or ``modrec``) as a :class:`TaskData`."""
    if config.task == "digits":
        return _digits(config)
    if config.task == "modrec":
        return _modrec(config)
    raise ValueError(f"config.task must be 'digits' or 'modrec' for a trained model, got {config.task!r}")
