"""What a service adds to the engine's rules: the data folders its workers report, and limits.

Validation with ``context={"service": ServiceContext(...)}`` applies both; without a context
(``pruneboard train``, a notebook) only the engine's own rules apply, so a user's machine runs
whatever it can hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from pruneboard.spec import catalog
from pruneboard.spec.types import text


class DatasetFolder(BaseModel):
    """One data folder a worker can read: ``data_dir`` is its name under a data root."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    data_dir: text(500)
    input_shape: tuple[int, int, int]  # imagefolder: the first image's, before any resize
    num_classes: int
    train_size: int
    mixed_sizes: bool = False  # imagefolder: the images differ in size (image_size needed)

    def facts(self, image_size: int | None = None) -> catalog.DatasetFacts:
        shape = self.input_shape
        if image_size is not None:
            shape = (shape[0], image_size, image_size)
        return catalog.DatasetFacts(shape, self.num_classes, self.train_size)


class StoredModel(BaseModel):
    """One ready version of a model pushed to the service, with what its inspection measured."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    input_shape: tuple[int, int, int]
    num_classes: int
    params: int
    flops: int
    outputs: int  # values its conv and linear layers emit for one sample (activation memory)
    has_weights: bool


# Not strict, unlike body fields: settings come from the environment as text.
Limit = Annotated[int, Field(ge=1, le=2**62)]


class ServiceLimits(BaseModel):
    """Limits of a shared service (settings ``PRUNEBOARD_LIMITS__<NAME>``), so one submit token
    cannot exhaust a worker host. Not limits of the engine."""

    model_config = ConfigDict(frozen=True)

    max_model_params: Limit = Field(
        100_000_000, description="parameters of the dense model (wrn-28-10: 36.5 M)")
    max_model_flops: Limit = Field(
        25_000_000_000, description="FLOPs of one forward pass of one sample (wrn-28-10 on "
        "32x32: 10.5 G)")
    max_activation_bytes: Limit = Field(
        32 * 2**30, description="a rough estimate of one minibatch's activation memory in "
        "training (float32 outputs of every conv and linear layer, ×3 for BatchNorm and ReLU; "
        "vgg16-bn at batch 64 on 32x32: 0.2 GB)")
    max_total_steps: Limit = Field(
        2_000_000, description="training steps of the whole job (epochs × steps per epoch)")
    max_synthetic_values: Limit = Field(
        400_000_000, description="numbers in a synthetic dataset, train and test (C·H·W × "
        "samples; CIFAR-10 holds 184 M)")
    max_eval_samples: Limit = Field(
        50_000, description="training samples an analysis evaluates on")
    max_random_directions: Limit = Field(
        1_000, description="random directions an analysis compares with")
    max_points: Limit = Field(1_001, description="points on an analysis's linear path")
    max_bezier_steps: Limit = Field(
        5_000, description="training steps of an analysis's Bézier curve")
    max_hessian_k: Limit = Field(50, description="Hessian eigenpairs an analysis computes")
    max_plane_grid: Limit = Field(101, description="points per side of an analysis's loss "
                                  "plane")


# The analysis option each analysis limit bounds: max_<option>.
ANALYSIS_LIMITS = ("eval_samples", "random_directions", "points", "bezier_steps", "hessian_k",
                   "plane_grid")


@dataclass(frozen=True)
class ServiceContext:
    folders: tuple[DatasetFolder, ...] = ()
    limits: ServiceLimits = field(default_factory=ServiceLimits)
    models: tuple[StoredModel, ...] = ()  # every ready version of every pushed model
    plugin_models: tuple[str, ...] = ()  # names some live worker's plugins register
    plugin_datasets: tuple[str, ...] = ()

    def folders_of(self, dataset: str) -> list[DatasetFolder]:
        return [f for f in self.folders if f.dataset == dataset]

    def stored_model(self, name: str, version: int | None) -> StoredModel | None:
        """The ready version ``version`` of pushed model ``name``, or its newest one."""
        found = [m for m in self.models if m.name == name
                 and (version is None or m.version == version)]
        return max(found, key=lambda m: m.version, default=None)


def service_of(context: object) -> ServiceContext | None:
    return context.get("service") if isinstance(context, dict) else None
