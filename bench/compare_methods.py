"""Every pruning method on digits (mlp and cnn-small), same seed and epoch budget: a table of
test accuracy, FLOPs and params removed, and wall time.

    .venv/bin/python bench/compare_methods.py [--epochs 10] [--models mlp cnn-small]

Baselines prune half the FLOPs (target_ratio 0.5) with their default schedule; sgd is the dense
reference; grda and sdprun use their defaults and reach whatever sparsity their threshold gives.
Runs are CPU, without compaction, one after another on one thread.
"""

from __future__ import annotations

import argparse
import time

import torch

from pruning import TrainConfig, train
from pruning.config import BASELINES, METHODS

SHARED = dict(dataset="digits", batch_size=64, lr=0.1, seed=0, device="cpu", compact=False,
              log_interval=1000)
PER_METHOD = {"sgd": dict(momentum=0.9), "grda": {}, "sdprun": {},
              **{m: dict(momentum=0.9, target_ratio=0.5) for m in BASELINES}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn-small"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| model | method | test accuracy | FLOPs removed | params removed | wall time (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for model in args.models:
        for method in args.methods:
            config = TrainConfig(**SHARED, model=model, method=method, epochs=args.epochs,
                                 **PER_METHOD[method])
            started = time.perf_counter()
            summary = train(config)
            elapsed = time.perf_counter() - started
            print(f"| {model} | {method} | {summary['test_accuracy']:.4f} | "
                  f"{1 - summary['remaining_flops']:.3f} | "
                  f"{1 - summary['remaining_params']:.3f} | {elapsed:.1f} |", flush=True)


if __name__ == "__main__":
    main()
