"""The one job spec: the only place the rules of a valid job and of an analysis live.

Torch-free, so the API validates request bodies with it directly, ``pruneboard train`` builds its
flags from it and the form builds itself from its JSON Schema, while the engine takes a
``JobSpec`` as its config. Validated with ``context={"service": ServiceContext(...)}``, a config
also meets the service's rules: data folders its workers report, and its limits.
"""

from pruneboard.spec.analysis import AnalysisOptions, AnalysisRequest
from pruneboard.spec.catalog import (
    ANALYSIS_KINDS,
    BASELINES,
    BUILTIN_DATASETS,
    DATASETS,
    DEVICES,
    FOLDER_DATASETS,
    METHODS,
    MODELS,
    REFERENCES,
    SCHEDULES,
    TARGETS,
    DatasetFacts,
)
from pruneboard.spec.errors import SpecError, describe, one_line
from pruneboard.spec.job import SECTIONS, SERVER_FIELDS, JobSpec, JobSubmission
from pruneboard.spec.schema import allowed_range, config_document
from pruneboard.spec.service import DatasetFolder, ServiceContext, ServiceLimits

__all__ = [
    "ANALYSIS_KINDS",
    "BASELINES",
    "BUILTIN_DATASETS",
    "DATASETS",
    "DEVICES",
    "FOLDER_DATASETS",
    "METHODS",
    "MODELS",
    "REFERENCES",
    "SCHEDULES",
    "SECTIONS",
    "SERVER_FIELDS",
    "TARGETS",
    "AnalysisOptions",
    "AnalysisRequest",
    "DatasetFacts",
    "DatasetFolder",
    "JobSpec",
    "JobSubmission",
    "ServiceContext",
    "ServiceLimits",
    "SpecError",
    "allowed_range",
    "config_document",
    "describe",
    "one_line",
]
