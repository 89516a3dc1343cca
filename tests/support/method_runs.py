"""Running a pruning baseline on digits and looking at the network it ends with."""

from __future__ import annotations

import importlib

import torch

from pruning import TrainConfig, train

# The module, not the function of the same name that pruning re-exports.
train_module = importlib.import_module("pruning.train")

SMALL_MLP = dict(model="mlp", dataset="digits", mlp_widths=(32, 16), epochs=4, batch_size=64,
                 log_interval=5, lr=0.1, momentum=0.9, compact=False)
SMALL_CNN = dict(model="cnn-small", dataset="digits", epochs=2, batch_size=64, log_interval=5,
                 lr=0.05, momentum=0.9, compact=False)


def run(monkeypatch, **values):
    """Train with ``values``; returns (events, summary, job) with the job's final model."""
    jobs = []
    real_prepare = train_module.prepare

    def keep_job(config, *args, **kwargs):
        jobs.append(real_prepare(config, *args, **kwargs))
        return jobs[-1]

    monkeypatch.setattr(train_module, "prepare", keep_job)
    events = []
    summary = train(TrainConfig(**values), events.append)
    return events, summary, jobs[-1]


def last_train(events):
    return [e for e in events if e["type"] == "train"][-1]


def assert_reaches_target(events, kind="flops", ratio=0.5, tolerance=0.05):
    remaining = last_train(events)[f"remaining_{kind}"]
    assert 1 - ratio - tolerance <= remaining <= 1 - ratio + 1e-9


def assert_pruned_groups_exactly_zero(job):
    """Every unit is either fully alive-capable or all-zero in every tensor of its group, and
    some units were pruned."""
    dead_total = 0
    for group in job.structure.groups:
        dead = ~group.alive()
        dead_total += int(dead.sum())
        for _, p in group.params:
            rows = p.detach().reshape(p.shape[0], -1)
            assert torch.equal(rows[dead], torch.zeros_like(rows[dead]))
    assert dead_total > 0


def without_timing(events):
    def strip(record):
        return {k: strip(v) if isinstance(v, dict) else v for k, v in record.items()
                if k not in ("elapsed_s", "path")}
    return [strip(e) for e in events]
