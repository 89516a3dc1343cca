"""Does removing zero groups pay off in time? Inference latency of the dense (pruned, zero-filled)
network against its compact form, next to the FLOPs it saves.

    .venv/bin/python bench/compact_speedup.py [--quick] [--device cuda] [--threads N]

For vgg16-bn and resnet56 on CIFAR-shaped input (3×32×32), a fixed fraction of the units of every
group is zeroed (whole groups, units drawn at random), enough that at least half of the FLOPs
go; the FLOPs reduction is CostModel's, checked against the compact network's own count. Both
networks are timed in this one process, in interleaved rounds after a warm-up (bench/_timing.py),
and the medians are compared: the target is a batch-64 CPU speedup of at least 0.7× the FLOPs
reduction factor. bench/README.md keeps the latest table.
"""

from __future__ import annotations

import argparse
import datetime
import time
from functools import partial

import torch
from _timing import (
    OtherLoad,
    add_hardware_arguments,
    apply_hardware,
    format_seconds,
    interleaved_medians,
)
from _timing import (
    markdown_row as row,
)
from torch import nn

from pruning.compact import compact
from pruning.groups import GroupStructure, build_groups
from pruning.metrics import CostModel
from pruning.models import build_model

INPUT_SHAPE = (3, 32, 32)
# (model, fraction of each group's units zeroed, kept widths rounded down to a multiple of).
# Every vgg16-bn conv loses units on both its output and its input side, so half the units take
# ~3/4 of its FLOPs; resnet56's groups include its residual streams (one group per stream
# channel, across every conv writing into it), zeroed at the same rate. The last row keeps
# widths that the CPU's convolution kernels handle well (multiples of 8), to show how much of
# resnet56's shortfall is the odd widths (6, 13, 26) of the plain random pattern.
CONFIGS = (("vgg16-bn", 0.5, 1), ("resnet56", 0.6, 1), ("resnet56", 0.6, 8))
TARGET = 0.7


@torch.no_grad()
def zero_groups(structure: GroupStructure, fraction: float, multiple: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for group in structure.groups:
        count = group.num_units
        keep = round((1 - fraction) * count)
        if multiple > 1:
            keep = max(multiple, keep // multiple * multiple)
        units = torch.randperm(count, generator=generator)[:count - keep]
        for _, param in group.params:
            param[units] = 0


def prepare(name: str, fraction: float, multiple: int,
            device: torch.device) -> tuple[nn.Module, nn.Module, float, float]:
    """The pruned dense network, its compact form, the FLOPs reduction factor (CostModel) and
    the compact network's own FLOPs reduction (counted on it directly)."""
    torch.manual_seed(0)
    model = build_model(name, input_shape=INPUT_SHAPE, num_classes=10)
    structure = build_groups(model)
    cost = CostModel(model, structure, INPUT_SHAPE)
    zero_groups(structure, fraction, multiple, seed=1)
    alive = [g.alive().double().mean().item() for g in structure.groups]
    _, flops_fraction = cost.remaining(alive)
    model.eval()
    small = compact(model, structure, input_shape=INPUT_SHAPE)
    counted = CostModel(small, GroupStructure([], []), INPUT_SHAPE).dense_flops
    check = torch.randn(2, *INPUT_SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(small(check), model(check), rtol=1e-4, atol=1e-4)
    return model.to(device), small.to(device), 1 / flops_fraction, cost.dense_flops / counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, noisier")
    add_hardware_arguments(parser)
    args = parser.parse_args()
    device = apply_hardware(parser, args)
    rounds, warmup = (3, 1) if args.quick else (9, 2)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"# Compact-network speedup, {datetime.date.today()}, torch {torch.__version__}, "
          f"{where}, {torch.get_num_threads()} threads{' (quick)' if args.quick else ''}\n")
    load, wall_start, notes, checks = OtherLoad(), time.perf_counter(), [], []
    print(row("model", "zeroed units", "params dense → compact", "FLOPs reduction",
              "batch", "dense", "compact", "speedup", "speedup ÷ FLOPs reduction"))
    print(row(*["---"] * 9))
    for name, fraction, multiple in CONFIGS:
        dense, small, reduction, counted = prepare(name, fraction, multiple, device)
        assert abs(counted / reduction - 1) < 1e-6, (name, counted, reduction)
        params = (f"{sum(p.numel() for p in dense.parameters()) / 1e6:.2f} M → "
                  f"{sum(p.numel() for p in small.parameters()) / 1e6:.2f} M")
        zeroed = f"{fraction:.0%}" + (f", widths ×{multiple}" if multiple > 1 else "")
        label = name if multiple == 1 else f"{name} (widths ×{multiple})"
        for batch in (64, 1):
            x = torch.randn(batch, *INPUT_SHAPE, device=device)
            with torch.inference_mode():
                steps = {"dense": partial(dense, x), "compact": partial(small, x)}
                timings = interleaved_medians(steps, rounds=rounds, warmup=warmup, device=device)
            notes.append(timings.note(f"{label} batch {batch}"))
            medians = timings.medians
            speedup = medians["dense"] / medians["compact"]
            print(row(label, zeroed, params, f"{reduction:.2f}×", batch,
                      format_seconds(medians["dense"]), format_seconds(medians["compact"]),
                      f"{speedup:.2f}×", f"{speedup / reduction:.2f}"))
            if batch == 64:
                checks.append((label, speedup / reduction))
    print("\n## Target: batch-64 speedup ≥ 0.7 × FLOPs reduction\n")
    print(row("model", "speedup ÷ FLOPs reduction", "target", "met"))
    print(row(*["---"] * 4))
    for name, ratio in checks:
        print(row(name, f"{ratio:.2f}", f"≥ {TARGET}", "yes" if ratio >= TARGET else "**no**"))
    print(f"\n{time.perf_counter() - wall_start:.0f} s in all; other processes used "
          f"{load.seconds():.1f} CPU-seconds; {'; '.join(notes)}.")


if __name__ == "__main__":
    main()
