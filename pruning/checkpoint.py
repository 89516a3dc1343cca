"""Checkpoints that resume a run bit-identically, loaded without unpickling arbitrary objects.

A checkpoint holds the model and optimizer state, the number of completed steps, the running loss
of the current log interval and the global RNG states. Data order and augmentation are derived
from (seed, epoch, step), so they need no saved state.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from pruning.config import TrainConfig

FORMAT = 1
# Fields that change only logging, where files are, or the hardware (a requeued job may resume
# on a worker with another device or dataset folder); every other field must match on resume.
_RESUMABLE_CHANGES = {"log_interval", "checkpoint_interval", "checkpoint_dir", "epochs",
                      "device", "data_dir", "valley_interval", "analyses", "compact",
                      "export_dir"}


class CheckpointError(ValueError):
    pass


def checkpoint_path(directory: str | Path) -> Path:
    return Path(directory) / "last.pt"


def save_checkpoint(directory: str | Path, *, config: TrainConfig, step: int, model, optimizer,
                    loss_sum: torch.Tensor, loss_count: int, extra: dict | None = None) -> Path:
    """``extra`` holds more state dicts (the SGD twin's, a pruning method's), kept by name."""
    path = checkpoint_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "config": config.to_dict(),
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "loss_sum": loss_sum.detach().cpu(),
        "loss_count": loss_count,
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        **(extra or {}),
    }
    # Write then rename, so a crash mid-write never leaves a truncated "last" checkpoint.
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, config: TrainConfig) -> dict:
    """Read a checkpoint made by a run with a compatible config."""
    path = Path(path)
    if path.is_dir():
        path = checkpoint_path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, tampered or not a checkpoint at all
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a pruneboard checkpoint (format {FORMAT})")
    saved, wanted = payload["config"], config.to_dict()
    # A field added since the checkpoint was written had its default then.
    defaults = TrainConfig().to_dict()
    changed = sorted(k for k in wanted if k not in _RESUMABLE_CHANGES
                     and saved.get(k, defaults[k]) != wanted[k])
    if changed:
        raise CheckpointError(f"checkpoint {path} was made with a different "
                              f"{', '.join(changed)}; resume with the same settings")
    return payload


def restore_rng(payload: dict) -> None:
    torch.set_rng_state(payload["rng_cpu"])
    if payload["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["rng_cuda"])
