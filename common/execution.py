"""How the TensorFlow parts of dmoe run: execution modes, precisions, compiled functions.

One definition for ``dmoe.phy``, ``dmoe.moe`` and ``dmoe.cosim`` (``docs/scaling.md``). Nothing
here imports TensorFlow at import time: :func:`tf_dtypes` and :func:`compile_function` import
it when called.
"""

import numpy as np

__all__ = ["EXECUTION_MODES", "DEFAULT_EXECUTION", "PRECISIONS", "check_execution",
           "check_precision", "numpy_dtypes", "tf_dtypes", "compile_function"]

#: How TensorFlow code runs: eagerly, as a graph (``tf.function``) or XLA-compiled
#: (``tf.function(jit_compile=True)``).
EXECUTION_MODES = ("eager", "graph", "xla")

DEFAULT_EXECUTION = "graph"

#: Floating-point precision: ``single`` (float32 / complex64), ``double`` (float64 / complex128).
PRECISIONS = ("single", "double")

_NUMPY_DTYPES = {"single": (np.float32, np.complex64), "double": (np.float64, np.complex128)}


def check_execution(execution, name="execution"):
    """``execution`` if it is one of :data:`EXECUTION_MODES`, else ``ValueError`` naming ``name``.

    Parameters
    ----------
    execution : str
    name : str
        The argument or key named in the message.

    Output
    ------
    execution : str
    """
    if not isinstance(execution, str) or execution not in EXECUTION_MODES:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, EXECUTION_MODES))}, "
                         f"got {execution!r}")
    return execution


def check_precision(precision, name="precision"):
    """``precision`` if it is one of :data:`PRECISIONS`, else ``ValueError`` naming ``name``."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, PRECISIONS))}, "
                         f"got {precision!r}")
    return precision


def numpy_dtypes(precision):
    """``(real, complex)`` numpy dtypes of a precision: float32/complex64 or float64/complex128."""
    return _NUMPY_DTYPES[check_precision(precision)]


def tf_dtypes(precision):
    """``(real, complex)`` TensorFlow dtypes of a precision (imports TensorFlow)."""
    import tensorflow as tf
    real, cplx = numpy_dtypes(precision)
    return tf.as_dtype(real), tf.as_dtype(cplx)


def compile_function(function, execution, input_signature=None):
    """``function`` as an execution mode runs it.

    Parameters
    ----------
    function : callable
        A TensorFlow function of tensors.
    execution : str
        One of :data:`EXECUTION_MODES`.
    input_signature : list of tf.TensorSpec or None
        Passed to ``tf.function`` (a batch-agnostic signature traces once).

    Output
    ------
    compiled : callable
        ``function`` itself (eager), ``tf.function(function)`` (graph) or
        ``tf.function(function, jit_compile=True)`` (xla).
    """
    if check_execution(execution) == "eager":
        return function
    import tensorflow as tf
    return tf.function(function, input_signature=input_signature,
                       jit_compile=True if execution == "xla" else None)
