"""Execution modes of the MoE's TensorFlow functions (private helpers of :mod:`dmoe.moe`).

``eager`` calls the Keras layers as plain Python, ``graph`` wraps them in ``tf.function``,
``xla`` in ``tf.function(..., jit_compile=True)``. The same names as
``dmoe.cosim.execution.EXECUTION_MODES``; kept here because nothing in moe imports cosim.
"""

__all__ = ["EXECUTION_MODES", "DEFAULT_EXECUTION", "check_execution"]

#: How the MoE's TensorFlow functions run: eagerly, as graphs (``tf.function``) or XLA-compiled.
EXECUTION_MODES = ("eager", "graph", "xla")

DEFAULT_EXECUTION = "graph"


def check_execution(execution):
    """``execution`` if it is one of :data:`EXECUTION_MODES`, else ``ValueError``.

    Parameters
    ----------
    execution : str
        ``"eager"``, ``"graph"`` or ``"xla"``.

    Output
    ------
    execution : str
    """
    if not isinstance(execution, str) or execution not in EXECUTION_MODES:
        raise ValueError(f"execution must be one of {', '.join(map(repr, EXECUTION_MODES))}, "
                         f"got {execution!r}")
    return execution
