"""What a run's events become in the database: the series names, and the finite numbers of an
event that are stored as points (``worker.writer`` writes them)."""

from __future__ import annotations

import math
from typing import Any

# Every run's series; train and eval events may carry more (the SGD twin's reference_* losses,
# a baseline method's own numbers), and every finite number in them is stored the same way.
TRAIN_KEYS = ("train_loss", "lr", "threshold", "weight_sparsity", "group_sparsity",
              "remaining_params", "remaining_flops", "norm_ratio")
EVAL_KEYS = ("test_loss", "test_accuracy", "test_top5")
LAYER_PREFIX = "layer_group_sparsity/"
# The live valley check: its barrier, and the loss at each t of the latest line (one series per
# t, so the latest curve is read from the job's latest values).
VALLEY_BARRIER = "valley_barrier"  # height above the chord between the ends
VALLEY_BARRIER_ABOVE_ENDS = "valley_barrier_above_ends"
VALLEY_PREFIX = "valley_path/"
# The unpruned accuracy of a model of one's own, at step 0: pretrained_test_accuracy, ...
PRETRAINED_PREFIX = "pretrained_"
NOT_SERIES = {"type", "step", "epoch", "elapsed_s"}


def series(event: dict) -> dict[str, float]:
    """The finite, non-boolean numbers of an event, by key: the points it stores."""
    return {k: v for k, v in event.items()
            if k not in NOT_SERIES and not isinstance(v, bool) and finite(v)}


def compact_line(event: dict) -> str:
    speedups = ", ".join(f"{row['device']} batch {row['batch_size']} {row['speedup']:.2f}×"
                         for row in event.get("latency", []))
    return (f"compact network: {event['compact_params']:,} of {event['dense_params']:,} params, "
            f"test accuracy {event['compact_test_accuracy']:.4f}"
            + (f"; measured speedup {speedups}" if speedups else ""))


def finite(value: Any) -> bool:
    # SQLite stores NaN as NULL (the column is NOT NULL) and JSON has no NaN: keep them out.
    return isinstance(value, int | float) and math.isfinite(value)
