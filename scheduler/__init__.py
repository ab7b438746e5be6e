"""Expert selection and subcarrier allocation for DMoE (pure numpy / scipy).

P1 (expert selection, solved exactly by DES), P2 (joint expert and subcarrier allocation,
JESA) and the baselines. Nothing here imports TensorFlow or Sionna.
"""

__all__ = []
