"""Run the loss-valley analysis of a finished run from its checkpoints.

The pruned run's last checkpoint holds its final weights and, when it trained an SGD twin, the
twin's; otherwise a second run's checkpoint is the reference. The initial weights are rebuilt
from the config: ``prepare`` seeds right before building the model, so the same config gives
the same w_init the run started from.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pruning.checkpoint import CheckpointError, load_checkpoint
from pruning.config import TrainConfig
from pruning.job import prepare
from pruning.valley import ValleyOptions, analyze_pair


class AnalysisError(ValueError):
    """The analysis cannot run (a checkpoint is missing, or the options are out of range)."""


def run_valley_analysis(config: TrainConfig, *, checkpoint: str | Path,
                        reference_checkpoint: str | Path | None = None,
                        options: dict[str, Any] | None = None,
                        on_progress: Callable[[float, str], None] | None = None,
                        model: torch.nn.Module | None = None) -> dict:
    try:
        valley_options = ValleyOptions(**{k: tuple(v) if isinstance(v, list) else v
                                          for k, v in (options or {}).items()})
    except (TypeError, ValueError) as error:
        raise AnalysisError(f"analysis options: {error}") from error
    job = prepare(config, model)  # model: the job's own network, as it started (not built in)
    initial = {k: v.detach().clone() for k, v in job.model.state_dict().items()}
    try:
        payload = load_checkpoint(checkpoint, config)
    except CheckpointError as error:
        raise AnalysisError(f"the pruned run's weights: {error}") from error
    if reference_checkpoint is None:
        if "reference_model" not in payload:
            raise AnalysisError(f"{checkpoint} holds no SGD twin; name a reference job")
        reference = payload["reference_model"]
    else:
        reference = _final_weights(reference_checkpoint)
    return analyze_pair(job.model, reference=reference, pruned=payload["model"],
                        initial=initial, data=job.data, options=valley_options,
                        device=job.device, on_progress=on_progress)


def _final_weights(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"the reference run left no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        return payload["model"]
    except Exception as error:
        raise AnalysisError(f"cannot read the reference checkpoint {path}: {error}") from error
