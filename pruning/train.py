"""The training loop: one validated config in, plain-dict events out.

``train(config, on_event)`` runs a whole job and returns its summary. Events (all carry ``type``
and ``step``, the number of completed optimizer steps):

- ``start``: config, total_steps, steps_per_epoch, device, dense_params, dense_flops, groups,
  units, prunable_conv_share, dense_layers [{layers, reason}] (coupled channels left dense and
  why) and forecast (``pruning.forecast``: when the threshold alone zeroes each layer).
- ``train`` every ``log_interval`` steps: epoch, train_loss (mean over the interval), lr,
  threshold (λ_n), weight_sparsity, group_sparsity, remaining_params, remaining_flops,
  norm_ratio (‖w‖₂/‖w‖₁ of the prunable weights), layer_group_sparsity {layer: fraction}.
- ``eval`` at every epoch end: test_loss, test_accuracy (and test_top5 with more than 10 classes),
  measured with BatchNorm statistics re-estimated on ``bn_samples`` training samples; a model
  with BatchNorm adds the numbers with its running statistics as running_stats_test_loss, … (see
  ``pruning.bn_stats``; training itself never sees the re-estimation).
- ``checkpoint``: path.  ``error``: message (the run then raises).  ``end``: summary.
- ``log``: level, message; a line of progress before training (an image folder's decoding).

With ``reference="sgd"`` an SGD twin trains in lock-step on the same minibatches
(``pruning.twin``): train events add reference_train_loss, eval events reference_test_loss
and reference_test_accuracy (re-estimated as the run's; reference_running_stats_test_loss and
reference_running_stats_test_accuracy with running statistics), and every ``valley_interval``
epochs a ``valley`` event carries the train loss on the line from the twin to the current weights
(``pruning.valley.monitor``). With
``compact`` the run ends with a ``compact`` event (``pruning.compact.job_end``): the physically
smaller network's size, latency and accuracy, and one ``artifact`` event per exported file.
Before that, after the last checkpoint, the model's BatchNorm statistics are set to the
re-estimated ones for good, so the compact network and every exported file carry them.

On the CPU the same config gives bit-identical metrics, and resuming from a checkpoint continues
bit-identically: data order and augmentation are functions of (seed, epoch, step).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from pruning.bn_stats import ReportedEvaluation
from pruning.checkpoint import load_checkpoint, restore_rng, save_checkpoint
from pruning.compact.job_end import finish_events
from pruning.config import TrainConfig
from pruning.data import augment_batch, progress_lines
from pruning.forecast import forecast
from pruning.job import Job, prepare
from pruning.metrics import sparsity_metrics
from pruning.schedules import learning_rate
from pruning.twin import step_model
from pruning.valley.monitor import valley_event

EventSink = Callable[[dict], None]


class TrainingError(RuntimeError):
    """The run cannot go on (e.g. the loss became NaN); the message says why."""


class TrainingStopped(RuntimeError):
    """``should_stop`` asked the run to end; metrics up to here were emitted."""


def train(config: TrainConfig, on_event: EventSink | None = None, *,
          resume_from: str | Path | None = None,
          should_stop: Callable[[], bool] | None = None,
          model: torch.nn.Module | None = None) -> dict:
    """Run the job; ``model``: a network of one's own instead of ``config.model`` (see
    ``pruning.job.prepare``), trained in place. Started from its own weights, the start event
    carries the accuracy of that unpruned network (``pretrained``), measured once."""
    emit = on_event or (lambda event: None)
    job = prepare(config, model, progress=progress_lines(
        lambda message: emit({"type": "log", "step": 0, "level": "info", "message": message})))
    reported = ReportedEvaluation.for_config(config, job.data)
    pretrained = (reported.evaluate(job.model, job.data, job.device, job.autocast)
                  if model is not None and config.init != "random" and resume_from is None
                  else None)
    start_step, loss_count = 0, 0
    loss_sum = torch.zeros(2, device=job.device)  # [run, twin] since the last train event
    if resume_from is not None:
        payload = load_checkpoint(resume_from, config)
        job.model.load_state_dict(payload["model"])
        job.optimizer.load_state_dict(payload["optimizer"])
        if job.twin is not None:
            job.twin.load_state_dict(payload)
        job.method.load_state_dict(payload.get("method", {}))
        restore_rng(payload)
        start_step = payload["step"]
        # Broadcast: checkpoints from before the twin existed hold a single running sum.
        loss_sum = payload["loss_sum"].to(job.device) * torch.ones(2, device=job.device)
        loss_count = payload["loss_count"]
    emit({"type": "start", "step": start_step, "config": config.to_dict(),
          "total_steps": job.total_steps, "steps_per_epoch": job.steps_per_epoch,
          "device": str(job.device), "dense_params": job.cost.dense_params,
          "dense_flops": job.cost.dense_flops, "groups": len(job.structure.groups),
          "units": sum(g.num_units for g in job.structure.groups),
          "prunable_conv_share": job.structure.prunable_share(),
          "dense_layers": [{"layers": layers, "reason": reason}
                           for layers, reason in job.structure.dense],
          "forecast": forecast(job),
          **({"pretrained": pretrained} if pretrained is not None else {})})
    started = time.perf_counter()
    last_eval: dict = {}
    order = None
    for step in range(start_step, job.total_steps):
        epoch, position = divmod(step, job.steps_per_epoch)
        if order is None or position == 0:
            order = _epoch_order(config.seed, epoch, len(job.data.train_y), job.device)
        lr = _set_learning_rate(job, step)
        loss_sum += _train_step(job, order, step, position)
        loss_count += 1
        done = step + 1
        if done % config.log_interval == 0 or done == job.total_steps:
            mean_loss, reference_loss = (loss_sum / loss_count).tolist()
            loss_sum.zero_()
            loss_count = 0
            if not math.isfinite(mean_loss):
                message = (f"training loss became {mean_loss} at step {done}; lower the learning "
                           f"rate (lr={config.lr})")
                emit({"type": "error", "step": done, "message": message})
                raise TrainingError(message)
            twin = {"reference_train_loss": reference_loss} if job.twin else {}
            emit({"type": "train", "step": done, "epoch": epoch, "train_loss": mean_loss,
                  "lr": lr, "threshold": _threshold(job.optimizer),
                  "elapsed_s": time.perf_counter() - started, **twin, **job.method.metrics(),
                  **sparsity_metrics(job.structure, job.cost)})
        epoch_end = done % job.steps_per_epoch == 0
        if epoch_end:
            last_eval = reported.evaluate(job.model, job.data, job.device, job.autocast)
            emit({"type": "eval", "step": done, "epoch": epoch, **last_eval,
                  **_twin_eval(job, reported)})
            if config.valley_interval and (epoch + 1) % config.valley_interval == 0:
                emit(valley_event(job, done, epoch))
        if config.checkpoint_dir and (epoch_end or (config.checkpoint_interval
                                                    and done % config.checkpoint_interval == 0)):
            extra = {"method": job.method.state_dict(),
                     **(job.twin.state_dict() if job.twin else {})}
            path = save_checkpoint(config.checkpoint_dir, config=config, step=done,
                                   model=job.model, optimizer=job.optimizer,
                                   loss_sum=loss_sum, loss_count=loss_count, extra=extra)
            emit({"type": "checkpoint", "step": done, "path": str(path)})
        if should_stop is not None and should_stop():
            raise TrainingStopped(f"stopped on request after step {done}")
    if not last_eval:  # resumed at the very end: nothing ran, but the summary needs accuracy
        last_eval = reported.evaluate(job.model, job.data, job.device, job.autocast)
    # After the last checkpoint (which keeps training's own statistics, so resuming stays plain):
    # the compact network, its accuracy and the exported files get the re-estimated ones.
    reported.adopt(job.model)
    summary = _summary(job, last_eval, time.perf_counter() - started)
    for event in finish_events(job):
        summary.update(event.pop("summary", {}))
        emit(event)
    emit({"type": "end", "step": job.total_steps, "summary": summary})
    return summary


def _train_step(job: Job, order: torch.Tensor, step: int, position: int) -> torch.Tensor:
    """One step of the run (and of its twin, on the very same batch): their detached losses."""
    batch = order[position * job.batch_size:(position + 1) * job.batch_size]
    inputs, targets = job.data.train_x[batch], job.data.train_y[batch]
    if job.data.augment:
        inputs = augment_batch(inputs, _generator(job.config.seed, step), fill=job.data.black)
    job.method.before_forward(step)
    with job.autocast():
        loss = F.cross_entropy(job.model(inputs), targets)
    job.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    job.method.before_step(step)
    job.optimizer.step()
    job.method.after_step(step)
    twin_loss = (step_model(job.twin.model, job.twin.optimizer, inputs, targets, job.autocast)
                 if job.twin else loss)
    return torch.stack([loss.detach().float(), twin_loss.detach().float()])


def _twin_eval(job: Job, reported: ReportedEvaluation) -> dict:
    if job.twin is None:
        return {}
    result = reported.evaluate(job.twin.model, job.data, job.device, job.autocast)
    keys = ("test_loss", "test_accuracy", "running_stats_test_loss", "running_stats_test_accuracy")
    return {f"reference_{key}": result[key] for key in keys if key in result}


def _epoch_order(seed: int, epoch: int, size: int, device: torch.device) -> torch.Tensor:
    return torch.randperm(size, generator=_generator(seed, epoch)).to(device)


def _generator(seed: int, salt: int) -> torch.Generator:
    # Distinct, reproducible streams per (seed, epoch) or (seed, step), independent of history.
    return torch.Generator().manual_seed(seed * 1_000_003 + salt)


def _set_learning_rate(job: Job, step: int) -> float:
    config = job.config
    lr = learning_rate(config.schedule, config.lr, step, job.total_steps,
                       config.lr_milestones, config.lr_gamma, unit=config.schedule_unit,
                       steps_per_epoch=job.steps_per_epoch)
    optimizers = [job.optimizer] + ([job.twin.optimizer] if job.twin else [])
    for group in (g for optimizer in optimizers for g in optimizer.param_groups):
        group["lr"] = lr
    return lr


def _threshold(optimizer: torch.optim.Optimizer) -> float:
    return max((g.get("threshold", 0.0) for g in optimizer.param_groups if g.get("prune", True)),
               default=0.0)


def _summary(job: Job, last_eval: dict, elapsed: float) -> dict:
    sparsity = sparsity_metrics(job.structure, job.cost)
    sparsity.pop("layer_group_sparsity")
    return {"method": job.config.method, "model": job.config.model,
            "dataset": job.config.dataset, "steps": job.total_steps, "elapsed_s": elapsed,
            "dense_params": job.cost.dense_params, "dense_flops": job.cost.dense_flops,
            "flops_reduction": 1 - sparsity["remaining_flops"], **sparsity, **last_eval}
