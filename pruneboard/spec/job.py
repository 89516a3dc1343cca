"""The job config: every field a training/pruning job takes, its type, range and help.

``JobSpec`` is the engine's config (``pruning.TrainConfig`` is this class), the API's request
body (``JobSubmission`` adds a label and tags), the source of ``pruneboard train``'s flags and,
through its JSON Schema, of the New-job form. Per-field ranges live on the fields; rules between
fields (a field only some methods read, a model's smallest input, batch size against the
training set, service limits) live in ``pruneboard.spec.rules`` and run after the fields.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from pruneboard.spec import catalog
from pruneboard.spec.errors import SpecError
from pruneboard.spec.types import Identifier, Name, integer, number, text

SECTIONS = ("Job", "Pruning and optimizer", "Run",
            "Baselines (l1-filter, spp, increg, gfs, eigendamage, pivot)",
            "Loss valley and small model", "Model and data details")
JOB, OPTIMIZER, RUN, BASELINE, VALLEY, DETAILS = SECTIONS
# Set by the worker that runs the job, never by a client: paths on its host, and its device.
SERVER_FIELDS = ("checkpoint_dir", "export_dir", "device")


def _f(default: Any, help: str, section: str, *, methods: tuple[str, ...] | None = None,
       requires: tuple[str, tuple[str, ...]] | None = None, server: bool = False,
       family_defaults: str | None = None, builtin: tuple[str, ...] | None = None,
       **constraints: Any) -> Any:
    """A field with its help and the facts the form shows: its section, the methods that read
    it, and the field whose value it needs ("requires": a non-default value needs ``field`` to
    be one of ``one_of``)."""
    extra: dict[str, Any] = {"x-section": section}
    if methods is not None:
        extra["x-requires"] = {"field": "method", "one_of": list(methods)}
    if requires is not None:
        extra["x-requires"] = {"field": requires[0], "one_of": list(requires[1])}
    if server:
        extra["x-server"] = True
    if builtin is not None:
        extra["x-builtin"] = list(builtin)  # the form's choices before the service's own
    if family_defaults is not None:
        extra["x-model-defaults"] = {model: catalog.THRESHOLD_DEFAULTS[family][family_defaults]
                                     for model, family in catalog.MODEL_FAMILIES.items()}
        # What a pushed or plugin model gets (their names are the service's, not the schema's).
        extra["x-custom-model-default"] = catalog.THRESHOLD_DEFAULTS[
            catalog.CUSTOM_MODEL_FAMILY][family_defaults]
    return Field(default, description=help, json_schema_extra=extra, **constraints)


TRAINED_BY_SGD = ("sgd", *catalog.BASELINES)
PRUNING_METHODS = tuple(m for m in catalog.METHODS if m != "sgd")


class JobSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", title="Job config")

    model: Name = _f(
        "mlp", "network to train: a built-in one (" + ", ".join(catalog.MODELS) + "), a model "
        "pushed to the service (pruneboard model push) or one a worker plugin registers", JOB,
        builtin=catalog.MODELS)
    model_version: integer(1, 1_000_000) | None = _f(
        None, "version of a pushed model (left out: its newest ready version)", JOB)
    init: Literal[catalog.INITS] | None = _f(
        None, "pretrained: start from the pushed model's trained weights (the default when it "
        "has them); random: fresh weights drawn from the seed (the default otherwise)", JOB)
    dataset: Name = _f(
        "digits", "dataset (digits and synthetic ship with Pruneboard; mnist, cifar10, "
        "cifar100, imagefolder and npz are read from a data folder; a worker plugin may "
        "register more)", JOB, builtin=catalog.DATASETS)
    data_dir: text(500) | None = _f(
        None, "the data folder of mnist, cifar10, cifar100, imagefolder or npz: on a service, "
        "the name of a folder some worker reports; in `pruneboard train`, a path", JOB,
        requires=("dataset", catalog.FOLDER_DATASETS))
    image_size: integer(1, 4096) | None = _f(
        None, "imagefolder: resize every image to this side (needed when the images differ in "
        "size; left out, they keep their own)", JOB, requires=("dataset", ("imagefolder",)))
    method: Literal[catalog.METHODS] = _f(
        "sdprun", "pruning method (sgd trains the dense reference)", JOB)
    lr: number(0.0, 10.0, open_low=True) = _f(0.1, "learning rate γ", OPTIMIZER)
    c: number(0.0, 1.0) = _f(
        0.015, "threshold scale c of grda/sdprun (larger prunes earlier); left out, the model "
        "family's default", OPTIMIZER, methods=catalog.DUAL_AVERAGING, family_defaults="c")
    mu: number(0.0, 1.0, open_low=True, open_high=True) = _f(
        0.6, "threshold exponent μ of grda/sdprun (larger prunes more); left out, the model "
        "family's default", OPTIMIZER, methods=catalog.DUAL_AVERAGING, family_defaults="mu")
    group_weighting: Literal[catalog.GROUP_WEIGHTINGS] = _f(
        "elements", "how sdprun sizes a group's threshold: elements, λ·√|G| against the whole "
        "group's norm; batchnorm, a group that ends in a BatchNorm is shrunk by the factor of its "
        "γ, β alone (λ·√2 against ‖(γ, β)‖), since BatchNorm makes the loss blind to the scale "
        "of the weights before it", OPTIMIZER, methods=("sdprun",))
    momentum: number(0.0, 0.999) = _f(0.0, "momentum (sgd and the baselines)", OPTIMIZER,
                                      methods=TRAINED_BY_SGD)
    weight_decay: number(0.0, 0.1) = _f(0.0, "weight decay (sgd and the baselines)", OPTIMIZER,
                                        methods=TRAINED_BY_SGD)
    schedule: Literal[catalog.SCHEDULES] = _f("constant", "learning-rate schedule", OPTIMIZER)
    schedule_unit: Literal[catalog.SCHEDULE_UNITS] = _f(
        "step", "step: the schedule's lr changes every step; epoch: it is held for each epoch "
        "at its value at the epoch's start (as the gRDA authors' CIFAR code applies it)",
        OPTIMIZER, requires=("schedule", ("step", "cosine", "grda-paper")))
    lr_milestones: tuple[number(0.0, 1.0), ...] = _f(
        (0.5, 0.75), "fractions of the run where the step schedule multiplies lr by lr_gamma",
        OPTIMIZER, requires=("schedule", ("step",)), max_length=64)
    lr_gamma: number(0.0, 1.0, open_low=True) = _f(
        0.1, "factor of each step-schedule milestone", OPTIMIZER,
        requires=("schedule", ("step",)))
    target: Literal[catalog.TARGETS] = _f("flops", "what a baseline's target_ratio removes",
                                          BASELINE, methods=catalog.BASELINES)
    target_ratio: number(0.0, 0.99) = _f(
        0.5, "fraction of the dense FLOPs or params a baseline removes", BASELINE,
        methods=catalog.BASELINES)
    prune_start: number(0.0, 1.0) = _f(
        0.3, "fraction of the run at which a baseline starts pruning (dense training before)",
        BASELINE, methods=catalog.BASELINES)
    prune_end: number(0.0, 1.0) = _f(
        0.6, "fraction of the run by which a baseline reaches its target (fine-tuning after; "
        "equal to prune_start: one-shot); at least prune_start", BASELINE,
        methods=catalog.BASELINES)
    prune_interval: integer(1, 1_000_000) = _f(10, "steps between a baseline's pruning "
                                               "decisions", BASELINE, methods=catalog.BASELINES)
    spp_increment: number(0.0, 1.0, open_low=True) = _f(
        0.05, "spp: largest change of a pruning probability per decision", BASELINE,
        methods=("spp",))
    increg_increment: number(0.0, 100.0, open_low=True) = _f(
        0.1, "increg: largest change of a group's L2 penalty factor per decision", BASELINE,
        methods=("increg",))
    increg_target: number(0.0, 1000.0, open_low=True) = _f(
        1.0, "increg: penalty factor at which a group is removed", BASELINE,
        methods=("increg",))
    prune_samples: integer(1, 1_000_000) = _f(
        128, "gfs, eigendamage, pivot: training samples that the data-driven selection looks "
        "at", BASELINE, methods=catalog.DATA_DRIVEN)
    epochs: integer(1, 10_000) = _f(80, "passes over the training set", RUN)
    batch_size: integer(1, 65_536) = _f(64, "minibatch size (at most the training samples)",
                                        RUN)
    seed: integer(0, 2**31 - 1) = _f(0, "seed of weights, data order and augmentation", RUN)
    device: Literal[catalog.DEVICES] = _f(
        "auto", "where to train (auto picks cuda when present; on a service, the worker's own "
        "device)", RUN, server=True)
    amp: StrictBool = _f(True, "bfloat16 autocast on CUDA (no effect on the CPU)", RUN)
    bn_samples: integer(0, 1_000_000) = _f(
        1024, "training samples (a fixed, seeded subset, no augmentation) on which BatchNorm "
        "statistics are re-estimated before every reported accuracy, so the numbers belong to "
        "the weights; 0: report the running statistics", RUN)
    log_interval: integer(1, 1_000_000) = _f(20, "steps between train events", RUN)
    checkpoint_interval: integer(0, 10_000_000) = _f(
        0, "steps between checkpoints (0: at epoch ends only)", RUN)
    checkpoint_dir: text(500) | None = _f(None, "folder for checkpoints (none: no "
                                          "checkpoints)", RUN, server=True)
    reference: Literal[catalog.REFERENCES] = _f(
        "none", "also train a plain SGD twin from the same initial weights, seed, minibatch "
        "order and schedule, for the loss-valley analysis", VALLEY,
        requires=("method", PRUNING_METHODS))
    valley_interval: integer(0, 10_000) = _f(
        0, "epochs between live valley checks: train loss on the line from the twin to the "
        "current weights (0: off)", VALLEY, requires=("reference", ("sgd",)))
    analyses: tuple[Literal[catalog.ANALYSIS_KINDS], ...] = _f(
        ("linear", "hessian", "plane"), "loss-valley analyses run when a job with a twin ends",
        VALLEY, requires=("reference", ("sgd",)), max_length=len(catalog.ANALYSIS_KINDS))
    compact: StrictBool = _f(True, "at the end, remove the pruned groups physically and "
                             "measure the small network's size, latency and accuracy", VALLEY)
    export_dir: text(500) | None = _f(None, "folder for the exported small model (none: no "
                                      "export)", VALLEY, server=True)
    mlp_widths: tuple[integer(1, 65_536), ...] = _f(
        (300, 100), "hidden widths of the mlp model", DETAILS, requires=("model", ("mlp",)),
        max_length=64)
    exclude: tuple[Identifier, ...] = _f((), "layer names never to prune (a module's name, as "
                                         "in model.named_modules())", DETAILS, max_length=256)
    synthetic_shape: tuple[integer(1, 4096), integer(1, 4096), integer(1, 4096)] = _f(
        (1, 8, 8), "C,H,W of synthetic inputs", DETAILS, requires=("dataset", ("synthetic",)))
    synthetic_classes: integer(2, 1000) = _f(10, "classes of the synthetic dataset", DETAILS,
                                             requires=("dataset", ("synthetic",)))
    synthetic_size: integer(8, 10_000_000) = _f(
        2048, "training samples of the synthetic dataset (a quarter as many test samples)",
        DETAILS, requires=("dataset", ("synthetic",)))

    @model_validator(mode="before")
    @classmethod
    def _family_defaults(cls, values: Any) -> Any:
        """c and μ left out of a grda/sdprun job take its model family's defaults."""
        if not isinstance(values, dict) or values.get("method", "sdprun") not in \
                catalog.DUAL_AVERAGING:
            return values
        model = values.get("model", "mlp")
        if not isinstance(model, str):
            return values  # the model field's own error says so
        return {**catalog.THRESHOLD_DEFAULTS[catalog.model_family(model)], **values}

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> JobSpec:
        from pruneboard.spec.rules import check_job

        check_job(self, info.context)
        return self

    @classmethod
    def from_dict(cls, values: dict[str, Any], context: Any = None) -> JobSpec:
        """Validate ``values``; a refusal is a SpecError naming each bad field (constructing the
        class directly raises pydantic's ValidationError, also a ValueError)."""
        try:
            return cls.model_validate(values, context=context)
        except ValidationError as error:
            raise SpecError.of(error, cls) from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def replace(self, **changes: Any) -> JobSpec:
        """A copy with ``changes``, validated like a new config."""
        return type(self).from_dict({**self.to_dict(), **changes})


def field_default(name: str) -> Any:
    return JobSpec.model_fields[name].get_default(call_default_factory=True, validated_data={})


def field_extra(name: str, model: type[BaseModel] = JobSpec) -> dict[str, Any]:
    extra = model.model_fields[name].json_schema_extra
    return extra if isinstance(extra, dict) else {}


class JobSubmission(JobSpec):
    """The body of POST /jobs: a job config plus the job's own label and tags."""

    model_config = ConfigDict(title="Job submission")

    name: Annotated[text(200) | None, Field(description="a label for lists",
                                            json_schema_extra={"x-section": JOB})] = None
    tags: Annotated[tuple[Annotated[text(50), Field(min_length=1)], ...],
                    Field(max_length=20, description="free-form tags to filter by",
                          json_schema_extra={"x-section": JOB})] = ()

    def engine_config(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"name", "tags"})
