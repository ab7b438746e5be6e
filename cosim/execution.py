r"""Execution settings of the TensorFlow parts: mode, precision, device and chunking.

How a result was computed is part of the result (``docs/scaling.md``): every row records the
execution mode (``eager``, ``graph`` = ``tf.function``, ``xla`` = ``tf.function(jit_compile=
True)``), the precision (``single`` = float32/complex64, ``double`` = float64/complex128), the
device and the chunk size actually used. This module holds those settings and the three
utilities the engine needs to honour them:

* :func:`configure_device` turns GPU memory growth on (before TensorFlow initialises the GPUs)
  and resolves the device name that is recorded;
* :func:`compile_function` and :func:`execution_scope` apply the mode (and device);
* :func:`run_chunked` splits a big batch into chunks that fit memory: on
  ``tf.errors.ResourceExhaustedError`` (or ``MemoryError``) the chunk is halved and retried, and
  the chunk size that finally worked is returned with the output.

TensorFlow is imported only inside the functions that need it.
"""

import contextlib
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

from dmoe.common import (EXECUTION_MODES, PRECISIONS, check_execution, check_precision,
                         numpy_dtypes)
from dmoe.common import compile_function as _compile

__all__ = ["EXECUTION_MODES", "PRECISIONS", "ExecutionSettings", "ChunkedResult",
           "configure_device", "enable_memory_growth", "resolve_device", "compile_function", "execution_scope",
           "run_chunked", "execution_settings", "model_execution", "run_metadata"]


@dataclass(frozen=True)
class ExecutionSettings:
    r"""How the TensorFlow parts of a run execute (recorded with every result).

    Parameters
    ----------
    mode : {"eager", "graph", "xla"}
        ``graph`` wraps the phy/moe functions in ``tf.function``; ``xla`` adds
        ``jit_compile=True`` (Sionna blocks that XLA cannot compile are listed in
        ``docs/scaling.md``).
    precision : {"single", "double"}
        Float precision of the simulation tensors.
    device : str or None
        TensorFlow device, e.g. ``"/GPU:0"`` or ``"/CPU:0"``; ``None`` lets TensorFlow place
        ops (the first GPU if there is one).
    chunk_size : int or None
        Most tokens processed at once; ``None`` processes the whole batch at once (and halves
        it on an out-of-memory error).
    memory_growth : bool
        Allocate GPU memory as needed instead of all of it up front.

    Example
    -------
    >>> settings = ExecutionSettings(mode="xla", chunk_size=1024)
    >>> settings.jit_compile, settings.float_dtype
    (True, 'float32')
    """

    mode: str = "graph"
    precision: str = "single"
    device: Optional[str] = None
    chunk_size: Optional[int] = None
    memory_growth: bool = True

    def __post_init__(self):
        check_execution(self.mode, "mode")
        check_precision(self.precision)
        if self.device is not None and not (isinstance(self.device, str) and self.device):
            raise ValueError(f"device must be a TensorFlow device name such as '/GPU:0' or "
                             f"None, got {self.device!r}")
        if self.chunk_size is not None and (isinstance(self.chunk_size, bool)
                                            or not isinstance(self.chunk_size, (int, np.integer))
                                            or self.chunk_size < 1):
            raise ValueError(f"chunk_size must be an integer >= 1 or None, "
                             f"got {self.chunk_size!r}")

    @property
    def jit_compile(self):
        """``True`` in ``xla`` mode (the ``jit_compile`` argument of ``tf.function``)."""
        return self.mode == "xla"

    @property
    def run_eagerly(self):
        """``True`` in ``eager`` mode (``tf.config.run_functions_eagerly``)."""
        return self.mode == "eager"

    @property
    def float_dtype(self):
        """``"float32"`` or ``"float64"``."""
        return np.dtype(numpy_dtypes(self.precision)[0]).name

    @property
    def complex_dtype(self):
        """``"complex64"`` or ``"complex128"``."""
        return np.dtype(numpy_dtypes(self.precision)[1]).name

    def record(self, device=None, chunk_size_used=None):
        """The columns every result row carries.

        Parameters
        ----------
        device : str or None
            The device actually used (default: ``self.device``, or ``""`` if unset).
        chunk_size_used : int or None
            The chunk size that finally worked (see :func:`run_chunked`).

        Output
        ------
        columns : dict
            ``execution_mode``, ``precision``, ``device``, ``chunk_size`` (the size used, as
            the engine's rows record it; 0 when ``chunk_size_used`` is not given).
        """
        return {"execution_mode": self.mode, "precision": self.precision,
                "device": device if device is not None else (self.device or ""),
                "chunk_size": int(chunk_size_used or 0)}


def resolve_device(device=None):
    """The full name of the device ops run on, e.g. ``"/device:CPU:0"``.

    Parameters
    ----------
    device : str or None
        A requested device (``"/GPU:1"``, ``"GPU:1"``, ``"/device:CPU:0"``); ``None``: the
        first GPU if any, else the CPU.

    Raises
    ------
    ValueError
        ``device`` names a device this process does not have (the message lists those it has).
    """
    import tensorflow as tf
    logical = [d.name for d in tf.config.list_logical_devices()]
    if device is None:
        gpus = [name for name in logical if ":GPU:" in name]
        return gpus[0] if gpus else "/device:CPU:0"
    wanted = device.upper().replace("/DEVICE:", "").lstrip("/")
    for name in logical:
        if name.upper().replace("/DEVICE:", "").lstrip("/").endswith(wanted):
            return name
    raise ValueError(f"device {device!r} is not available here; this process has: "
                     f"{', '.join(logical)}")


def enable_memory_growth():
    """Make TensorFlow allocate GPU memory as needed, not all of it when it starts.

    Sets ``TF_FORCE_GPU_ALLOW_GROWTH=true`` unless the environment already sets it (read when
    TensorFlow initialises the GPUs; an explicit ``false`` is respected and nothing else is
    done) and turns growth on for every GPU TensorFlow has not initialised yet. Call it before anything touches a GPU (``dmoe`` does so first
    thing, :func:`dmoe.cosim.run_study` and :func:`dmoe.cosim.run_point` before loading a
    model). If TensorFlow initialised the GPUs earlier without growth, a warning says so: the
    setting can no longer change in this process.

    Output
    ------
    gpus : int
        Number of GPUs TensorFlow sees.
    """
    wanted = os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true").lower() == "true"
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus if wanted else ():
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # GPUs already initialised: the setting is fixed by now
            if not tf.config.experimental.get_memory_growth(gpu):
                warnings.warn(f"GPU memory growth could not be turned on for {gpu.name}: "
                              "TensorFlow initialised the GPUs before dmoe could; set "
                              "TF_FORCE_GPU_ALLOW_GROWTH=true in the environment",
                              RuntimeWarning, stacklevel=2)
    return len(gpus)


def configure_device(settings=None):
    """Turn GPU memory growth on (if asked) and return the device results are computed on.

    Parameters
    ----------
    settings : ExecutionSettings or None
        Default ``ExecutionSettings()``.

    Output
    ------
    device : str
        Full device name (see :func:`resolve_device`).

    Raises
    ------
    ValueError
        ``settings.device`` names a device this process does not have.
    """
    settings = settings or ExecutionSettings()
    if settings.memory_growth:
        enable_memory_growth()
    return resolve_device(settings.device)


def compile_function(function, settings):
    """``function`` as the settings' mode runs it.

    Parameters
    ----------
    function : callable
        A TensorFlow function of tensors.
    settings : ExecutionSettings

    Output
    ------
    compiled : callable
        ``function`` itself (eager), ``tf.function(function)`` (graph) or
        ``tf.function(function, jit_compile=True)`` (xla).
    """
    return _compile(function, settings.mode)


@contextlib.contextmanager
def execution_scope(settings):
    """Run the block in the settings' mode and on its device, restoring both afterwards.

    ``eager`` makes every ``tf.function`` inside run eagerly
    (``tf.config.run_functions_eagerly``); ``device`` places the block's ops with
    ``tf.device``.
    """
    import tensorflow as tf
    before = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(settings.run_eagerly)
    try:
        with (tf.device(settings.device) if settings.device else contextlib.nullcontext()):
            yield
    finally:
        tf.config.run_functions_eagerly(before)


@dataclass(frozen=True)
class ChunkedResult:
    """What :func:`run_chunked` returns.

    Attributes
    ----------
    output : array, tuple, list or dict of arrays
        The outputs of every chunk concatenated along axis 0, in batch order (the structure
        of ``function``'s output), or what ``combine`` made of them.
    chunk_size : int
        The chunk size that finally worked (record it with the result).
    num_chunks : int
        How many chunks were run successfully.
    halvings : int
        How often the chunk size was halved after an out-of-memory error.
    """

    output: object
    chunk_size: int
    num_chunks: int
    halvings: int


def _out_of_memory_errors():
    errors = [MemoryError]
    tf = sys.modules.get("tensorflow")  # a function that raised a TF error imported TF
    if tf is not None:
        errors.append(tf.errors.ResourceExhaustedError)
    return tuple(errors)


def _batch_length(batch):
    if isinstance(batch, dict):
        lengths = {key: len(value) for key, value in batch.items()}
    elif isinstance(batch, (tuple, list)):
        lengths = {index: len(value) for index, value in enumerate(batch)}
    else:
        return len(batch)
    if not lengths or len(set(lengths.values())) != 1:
        raise ValueError(f"batch: every array must have the same first (batch) dimension, "
                         f"got lengths {lengths}")
    return next(iter(lengths.values()))


def _slice(batch, start, stop):
    if isinstance(batch, dict):
        return {key: value[start:stop] for key, value in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(value[start:stop] for value in batch)
    return batch[start:stop]


def _concatenate(parts):
    first = parts[0]
    if len(parts) == 1:
        return first
    if isinstance(first, dict):
        return {key: _concatenate([part[key] for part in parts]) for key in first}
    if isinstance(first, (tuple, list)):
        return type(first)(_concatenate([part[i] for part in parts]) for i in range(len(first)))
    if not isinstance(first, np.ndarray) and hasattr(first, "numpy"):  # a TensorFlow tensor
        import tensorflow as tf
        return tf.concat(parts, axis=0)
    return np.concatenate([np.asarray(part) for part in parts], axis=0)


def run_chunked(function, batch, chunk_size=None, min_chunk_size=1, combine=None,
                restart=False):
    r"""Apply ``function`` to a batch in chunks that fit memory.

    The batch is cut along its first axis into chunks of ``chunk_size`` items. If a chunk
    raises ``tf.errors.ResourceExhaustedError`` (or ``MemoryError``), the chunk size is halved
    and the same chunk is retried; the smaller size is kept for the rest of the batch. The
    output equals ``function(batch)`` whenever ``function`` treats batch items independently.
    With ``restart=True`` the chunks already done are discarded and the batch is started
    again at the halved size, so that every chunk has the recorded size (what a function that
    draws one random stream per chunk needs to be reproducible from the recorded size).

    Parameters
    ----------
    function : callable
        ``function(chunk) -> output``; ``output`` is an array/tensor ``[chunk, ...]`` or a
        tuple, list or dict of them.
    batch : array [batch, ...], or tuple / list / dict of arrays with the same first axis
        The whole batch (numpy arrays or tensors).
    chunk_size : int or None
        First chunk size; ``None``: the whole batch.
    min_chunk_size : int
        Smallest chunk tried; an out-of-memory error at this size is raised.
    combine : callable or None
        ``combine(outputs) -> output`` of the list of chunk outputs in batch order; ``None``
        concatenates them along axis 0.
    restart : bool
        After a halving, start the batch again instead of continuing with the failed chunk.

    Output
    ------
    result : ChunkedResult
        ``output`` (concatenated along axis 0), ``chunk_size`` used, ``num_chunks``,
        ``halvings``.

    Example
    -------
    >>> result = run_chunked(lambda x: 2 * x, np.arange(10), chunk_size=4)
    >>> result.output.tolist(), result.chunk_size, result.num_chunks
    ([0, 2, 4, 6, 8, 10, 12, 14, 16, 18], 4, 3)
    """
    length = _batch_length(batch)
    if length < 1:
        raise ValueError("batch must hold at least one item along its first axis")
    if not isinstance(min_chunk_size, (int, np.integer)) or min_chunk_size < 1:
        raise ValueError(f"min_chunk_size must be an integer >= 1, got {min_chunk_size!r}")
    if combine is not None and not callable(combine):
        raise ValueError(f"combine must be a callable or None, got {combine!r}")
    if chunk_size is None:
        chunk_size = length
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) \
            or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1 or None, got {chunk_size!r}")
    size = max(int(min(chunk_size, length)), int(min_chunk_size))
    parts, start, halvings = [], 0, 0
    while start < length:
        stop = min(start + size, length)
        try:
            parts.append(function(_slice(batch, start, stop)))
        except Exception as error:
            # Looked up now: ``function`` may be what imported TensorFlow.
            if not isinstance(error, _out_of_memory_errors()) or size <= min_chunk_size:
                raise
            size = max(size // 2, int(min_chunk_size))
            halvings += 1
            if restart:
                parts, start = [], 0
            continue
        start = stop
    output = _concatenate(parts) if combine is None else combine(parts)
    return ChunkedResult(output=output, chunk_size=size, num_chunks=len(parts),
                         halvings=halvings)


def execution_settings(execution):
    """The :class:`ExecutionSettings` of an ``[execution]`` section."""
    return ExecutionSettings(mode=execution.mode, precision=execution.precision,
                             device=execution.device, chunk_size=execution.chunk_size)


@contextlib.contextmanager
def model_execution(settings, model):
    """Run the block in the settings' mode, on their device, with ``model.execution`` set to
    that mode (restored afterwards)."""
    before = model.execution
    model.execution = settings.mode
    try:
        with execution_scope(settings):
            yield
    finally:
        model.execution = before


def run_metadata(config=None):
    """How results are made: library versions, device, execution mode (and config, seed).

    Output
    ------
    metadata : dict, JSON-serialisable
    """
    from importlib import metadata as md
    import tensorflow as tf
    versions = {}
    for dist in ("dmoe", "tensorflow", "keras", "sionna-no-rt", "numpy", "scipy", "pydantic",
                 "pyarrow", "pandas"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    gpus = tf.config.list_logical_devices("GPU")
    out = {"versions": versions, "device": gpus[0].name if gpus else "/device:CPU:0"}
    if config is not None:
        out.update(execution_mode=config.execution.mode,
                   precision=config.execution.precision,
                   chunk_size=config.execution.chunk_size, seed=config.seed,
                   config=config.model_dump(mode="json"))
    return out
