"""Pruning optimizers: gRDA (elementwise) and sDprun (group-wise) dual averaging."""

from pruning.optim.dual_averaging import DualAveraging, threshold_increment
from pruning.optim.grda import GRDA
from pruning.optim.sdprun import SDprun, unit_norms

__all__ = ["GRDA", "DualAveraging", "SDprun", "threshold_increment", "unit_norms"]
