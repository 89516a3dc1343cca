"""The options of one loss-valley analysis, validated field by field."""

from __future__ import annotations

from dataclasses import dataclass, fields

KINDS = ("linear", "bezier", "hessian", "plane")

# field: (low, high); ints must be ints, floats any real number in the closed range.
_RANGES: dict[str, tuple[float, float]] = {
    "points": (2, 10_001),
    "bezier_points": (2, 10_001),
    "bezier_steps": (0, 1_000_000),
    "bezier_lr": (0.0, 10.0),
    "bezier_batch_size": (1, 65_536),
    "hessian_k": (1, 200),
    "hessian_tol": (0.0, 0.1),
    "random_directions": (1, 100_000),
    "plane_grid": (2, 401),
    "plane_margin": (0.0, 10.0),
    "eval_samples": (1, 100_000_000),
    "batch_size": (1, 65_536),
    "seed": (0, 2**31 - 1),
}


@dataclass(frozen=True)
class ValleyOptions:
    """What to compute and how much of it.

    kinds: any of "linear" (straight path SGD → sDprun), "bezier" (quadratic Bézier curve with a
    trained middle point), "hessian" (top eigenpairs at w_SGD and the projection fractions),
    "plane" (loss over the plane through w_init, w_SGD, w_sDprun).
    points / bezier_points: evenly spaced t in [0, 1], both ends included.
    bezier_steps, bezier_lr, bezier_batch_size: SGD (momentum 0.9) on the curve's middle point,
    one random t per minibatch.
    hessian_k: eigenpairs; hessian_tol: ARPACK's relative tolerance (the model's HVPs are float32,
    so 0, i.e. machine precision, may never converge).
    random_directions: random directions whose fraction is reported beside Δ's.
    plane_grid: points per side; plane_margin: how far the grid reaches beyond the three points,
    as a fraction of their extent along each axis.
    eval_samples: at most this many training samples (a seeded random subset) for every training
    loss, BatchNorm re-estimation and Hessian-vector product; the test set is always used whole.
    batch_size: evaluation batch size. seed: subset, Lanczos start, random directions, curve.
    """

    kinds: tuple[str, ...] = ("linear", "hessian", "plane")
    points: int = 41
    bezier_points: int = 21
    bezier_steps: int = 200
    bezier_lr: float = 0.05
    bezier_batch_size: int = 128
    hessian_k: int = 10
    hessian_tol: float = 1e-4
    random_directions: int = 10
    plane_grid: int = 21
    plane_margin: float = 0.25
    eval_samples: int = 5000
    batch_size: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        kinds = self.kinds
        if isinstance(kinds, str) or not all(isinstance(k, str) for k in kinds):
            raise ValueError(f"kinds: must be a list of names from {', '.join(KINDS)}; "
                             f"got {kinds!r}")
        kinds = tuple(kinds)
        unknown = [k for k in kinds if k not in KINDS]
        if unknown or not kinds or len(set(kinds)) != len(kinds):
            raise ValueError(f"kinds: must be distinct names from {', '.join(KINDS)}, at least "
                             f"one; got {kinds!r}")
        object.__setattr__(self, "kinds", kinds)
        for f in fields(self):
            if f.name not in _RANGES:
                continue
            value, (low, high) = getattr(self, f.name), _RANGES[f.name]
            integer = f.type == "int"
            valid_type = (isinstance(value, int) if integer else isinstance(value, int | float))
            if isinstance(value, bool) or not valid_type or not low <= value <= high:
                kind = "an integer" if integer else "a number"
                raise ValueError(f"{f.name}: must be {kind} in [{low}, {high}]; got {value!r}")
            if not integer:
                object.__setattr__(self, f.name, float(value))
        if self.bezier_lr == 0:
            raise ValueError(f"bezier_lr: must be a number in (0, 10]; got {self.bezier_lr!r}")
