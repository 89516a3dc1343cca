"""Loss-valley analysis of an (SGD, sDprun) pair, in plain PyTorch.

Does the sparse network sDprun finds lie in the same flat valley as its SGD twin? This package
measures it: the loss along the straight line and along a trained Bézier curve between the two
(:mod:`.path`), the top of the Hessian's spectrum at w_SGD and how much of Δ = w_sDprun − w_SGD
lies in it (:mod:`.hessian`), and the loss over the plane through w_init, w_SGD and w_sDprun
(:mod:`.plane`). Every point is measured in eval mode after re-estimating BatchNorm statistics on
training inputs (:mod:`.batchnorm`). From a notebook::

    from pruning.valley import ValleyOptions, analyze_pair
    report = analyze_pair(model, reference=sgd_state, pruned=sdprun_state, initial=init_state,
                          data=data, options=ValleyOptions(), device="cpu")
"""

from .analyze import analyze_pair, hessian_analysis
from .batchnorm import batchnorm_layers, reestimate_batchnorm
from .evaluation import evaluate_state, training_subset
from .hessian import (
    HessianVectorProduct,
    ProjectionFractions,
    projection_fractions,
    top_eigenpairs,
)
from .options import KINDS, ValleyOptions
from .path import bezier_path, linear_path, linear_path_losses
from .plane import PlaneAxes, loss_plane, plane_axes
from .weights import flatten, mix, trainable_names, with_parameters

__all__ = [
    "KINDS",
    "HessianVectorProduct",
    "PlaneAxes",
    "ProjectionFractions",
    "ValleyOptions",
    "analyze_pair",
    "batchnorm_layers",
    "bezier_path",
    "evaluate_state",
    "flatten",
    "hessian_analysis",
    "linear_path",
    "linear_path_losses",
    "loss_plane",
    "mix",
    "plane_axes",
    "projection_fractions",
    "reestimate_batchnorm",
    "top_eigenpairs",
    "trainable_names",
    "training_subset",
    "with_parameters",
]
