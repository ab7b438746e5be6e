"""Importing TensorFlow without its start-up log.

On import, TensorFlow's C++ side registers its CUDA plugins (cuFFT, cuDNN, cuBLAS factories,
XLA's computation placer) and logs each clash, plus oneDNN and CPU-feature notes, straight to
the process's stderr, before any Python logging setting can apply; on a CPU-only machine it adds
a failed ``cuInit``. None of it is actionable for a dmoe user, so the command line hides it
unless asked (``dmoe --verbose``).
"""

import logging
import os
import sys

__all__ = ["import_tensorflow_quietly"]


def import_tensorflow_quietly():
    """Import TensorFlow with its C++ start-up log silenced, and keep its later log to errors.

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` unless the environment sets it, the ``tensorflow`` Python
    logger to ``ERROR``, and discards what the import itself writes to file descriptor 2.
    Errors still surface: a failing import raises as usual. Does nothing if TensorFlow is
    already imported.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
