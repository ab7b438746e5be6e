"""Mixture-of-Experts models of dmoe (TensorFlow / Keras 3).

This is the only package that defines Keras models. It will provide a layer-by-layer MoE
that supplies gate relevance scores and the task accuracy under any expert choice.
"""

from dmoe.phy._compat import check_versions as _check_versions

_check_versions(("tensorflow", "numpy"))

__all__ = []
