"""The engine's config is the job spec: ``TrainConfig`` is ``pruneboard.spec.JobSpec``.

Its fields, ranges and cross-field rules are written once, in the torch-free spec, which the API,
the CLI and the form read too. ``ConfigError`` names the field of a config the engine finds it
cannot run while building the job (a data folder that does not exist, a CUDA device that is not
there); constructing a config with a bad value raises pydantic's ValidationError (a ValueError),
and ``TrainConfig.from_dict`` turns that into a ConfigError too.
"""

from __future__ import annotations

from pruneboard.spec import BASELINES, SpecError
from pruneboard.spec import JobSpec as TrainConfig

ConfigError = SpecError

__all__ = ["BASELINES", "ConfigError", "TrainConfig"]
