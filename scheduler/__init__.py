"""Expert selection and subcarrier allocation for DMoE (pure numpy / scipy).

P1 (expert selection, solved exactly by DES), P2 (joint expert and subcarrier allocation,
JESA) and the baselines. Nothing here imports TensorFlow or Sionna. See ``docs/scheduler.md``.
"""

from ._problem import SelectionProblem, SelectionResult
from ._des import des
from ._baselines import channel_only, random_selection, top_k, weighted_sum, wlr
from ._reference import brute_force, milp_reference
from ._topd import top_d_mask

__all__ = [
    # P1: problem, result, exact solver
    "SelectionProblem", "SelectionResult", "des",
    # P1 baselines
    "top_k", "channel_only", "random_selection", "weighted_sum", "wlr",
    # P1 exact references
    "brute_force", "milp_reference",
    # the top-D reference set
    "top_d_mask",
]

# P2: joint expert and subcarrier allocation (docs/jesa.md)
from ._joint import JointProblem, JointResult, link_energy_airtime
from ._jesa import allocate_subcarriers, des_decoupled, des_random_subcarriers, jesa, top_k_joint
from ._jesa_exact import jesa_exact

__all__ += [
    "JointProblem", "JointResult", "link_energy_airtime", "jesa", "jesa_exact", "allocate_subcarriers",
    "top_k_joint", "des_random_subcarriers", "des_decoupled",
]
