"""Test-set loss and accuracy, batched, without gradients."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from pruning.data import Dataset


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, device: torch.device,
             autocast: Callable[[], AbstractContextManager] = nullcontext,
             batch_size: int = 1024) -> dict:
    """test_loss, test_accuracy (top-1) and, with more than 10 classes, test_top5."""
    was_training = model.training
    model.eval()
    loss = torch.zeros((), dtype=torch.float64, device=device)
    top1 = torch.zeros((), dtype=torch.int64, device=device)
    top5 = torch.zeros((), dtype=torch.int64, device=device)
    try:
        for start in range(0, len(data.test_y), batch_size):
            inputs = data.test_x[start:start + batch_size]
            targets = data.test_y[start:start + batch_size]
            with autocast():
                logits = model(inputs).float()
            loss += F.cross_entropy(logits, targets, reduction="sum").double()
            top1 += (logits.argmax(1) == targets).sum()
            if data.num_classes > 10:
                top5 += (logits.topk(5, dim=1).indices == targets[:, None]).any(1).sum()
    finally:
        model.train(was_training)
    count = len(data.test_y)
    result = {"test_loss": loss.item() / count, "test_accuracy": top1.item() / count}
    if data.num_classes > 10:
        result["test_top5"] = top5.item() / count
    return result
