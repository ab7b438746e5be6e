"""Validation of expert masks, shared by the models of this package."""

import numpy as np

__all__ = ["expert_mask"]


def expert_mask(mask, rows, num_experts, name="selected"):
    """``mask`` as a boolean ``[rows, num_experts]`` array, or a ValueError naming ``name``.

    Input
    -----
    mask : [rows, num_experts], bool (or 0/1 values)
    rows, num_experts : int
        The expected shape.
    name : str
        The argument's name in the error message.

    Output
    ------
    mask : [rows, num_experts], bool
    """
    mask = np.asarray(mask)
    if mask.shape != (rows, num_experts):
        raise ValueError(f"{name} must have shape [{rows}, {num_experts}] (bool), "
                         f"got {mask.shape}")
    if mask.dtype != np.bool_:
        if not np.all((mask == 0) | (mask == 1)):
            raise ValueError(f"{name} must be a boolean mask (or 0/1 values)")
        mask = mask.astype(bool)
    return mask
