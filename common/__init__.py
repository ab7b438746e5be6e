"""The vocabulary every part of dmoe shares: execution modes, precisions, version checks.

A leaf: it imports no other dmoe package, and neither TensorFlow nor Sionna at import time.
"""

from .execution import (DEFAULT_EXECUTION, EXECUTION_MODES, PRECISIONS, check_execution,
                        check_precision, compile_function, numpy_dtypes, tf_dtypes)
from .versions import SUPPORTED_VERSIONS, check_versions

__all__ = ["EXECUTION_MODES", "DEFAULT_EXECUTION", "PRECISIONS", "check_execution",
           "check_precision", "numpy_dtypes", "tf_dtypes", "compile_function",
           "SUPPORTED_VERSIONS", "check_versions"]
