"""The options of one loss-valley analysis: the engine's ``ValleyOptions`` and the API's body.

kinds: any of "linear" (straight path SGD → sDprun), "bezier" (quadratic Bézier curve with a
trained middle point), "hessian" (top eigenpairs at w_SGD and the projection fractions),
"plane" (loss over the plane through w_init, w_SGD, w_sDprun).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from pruneboard.spec import catalog
from pruneboard.spec.errors import refuse
from pruneboard.spec.service import ANALYSIS_LIMITS, service_of
from pruneboard.spec.types import INT64_MAX, integer, number

Kinds = Annotated[tuple[Literal[catalog.ANALYSIS_KINDS], ...],
                  Field(min_length=1, max_length=len(catalog.ANALYSIS_KINDS))]


def _o(default: Any, help: str) -> Any:
    return Field(default, description=help)


class AnalysisOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", title="Analysis options")

    kinds: Kinds = _o(("linear", "hessian", "plane"), "analyses to run")
    points: integer(2, 10_001) = _o(41, "evenly spaced t in [0, 1] on the linear path, both "
                                    "ends included")
    bezier_points: integer(2, 10_001) = _o(21, "points on the Bézier curve")
    bezier_steps: integer(0, 1_000_000) = _o(200, "SGD steps (momentum 0.9) on the curve's "
                                             "middle point, one random t per minibatch")
    bezier_lr: number(0.0, 10.0, open_low=True) = _o(0.05, "learning rate of those steps")
    bezier_batch_size: integer(1, 65_536) = _o(128, "minibatch of those steps")
    hessian_k: integer(1, 200) = _o(10, "top Hessian eigenpairs")
    hessian_tol: number(0.0, 0.1) = _o(1e-4, "ARPACK's relative tolerance (the model's HVPs "
                                       "are float32, so 0 may never converge)")
    random_directions: integer(1, 100_000) = _o(10, "random directions whose projection "
                                                "fraction is reported beside Δ's")
    plane_grid: integer(2, 401) = _o(21, "grid points per side of the loss plane")
    plane_margin: number(0.0, 10.0) = _o(0.25, "how far the plane reaches beyond the three "
                                         "points, as a fraction of their extent")
    eval_samples: integer(1, 100_000_000) = _o(5000, "training samples (a seeded subset) for "
                                               "every train loss, BatchNorm re-estimation and "
                                               "Hessian-vector product; the test set is whole")
    batch_size: integer(1, 65_536) = _o(512, "evaluation batch size")
    seed: integer(0, 2**31 - 1) = _o(0, "seed of the subset, Lanczos start, random "
                                     "directions and curve")

    @model_validator(mode="after")
    def _kinds_distinct(self, info: ValidationInfo) -> AnalysisOptions:
        problems = []
        if self.kinds and len(set(self.kinds)) != len(self.kinds):
            problems.append(("kinds", f"must be distinct, got {list(self.kinds)}"))
        service = service_of(info.context)
        if service is not None:
            for name in ANALYSIS_LIMITS:
                limit = getattr(service.limits, f"max_{name}")
                if getattr(self, name) > limit:
                    problems.append((name, f"this service allows at most {limit:,} "
                                           f"(max_{name}), got {getattr(self, name):,}"))
        refuse(problems, "AnalysisOptions")
        return self


class AnalysisRequest(AnalysisOptions):
    """POST /jobs/{id}/analyses: the options, which job to compare with, kinds optional."""

    model_config = ConfigDict(title="Analysis request")

    kinds: Kinds | None = _o(None, "analyses to run (default: the job's `analyses`)")
    reference_job_id: integer(1, INT64_MAX) | None = _o(
        None, "a finished job to compare with (default: the job's own SGD twin)")

    def engine_options(self, default_kinds: list[str]) -> dict[str, Any]:
        options = self.model_dump(mode="json", exclude={"reference_job_id"})
        options["kinds"] = list(dict.fromkeys(self.kinds or default_kinds))
        return options


__all__ = ["AnalysisOptions", "AnalysisRequest", "ValidationError"]
