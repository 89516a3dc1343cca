"""Timing helpers shared by the benchmarks: interleaved rounds, medians, a check for other load."""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


def synchronize(device: torch.device) -> None:
    # CUDA kernels run asynchronously: without this a timer around a step measures the launch only.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class OtherLoad:
    """CPU seconds used by *other* processes since creation: the whole machine's busy time (Linux
    /proc/stat) minus this process's. Always 0 where /proc/stat is missing."""

    def __init__(self) -> None:
        self._machine, self._own = _machine_busy_seconds(), _own_busy_seconds()

    def seconds(self) -> float:
        if self._machine is None:
            return 0.0
        machine = _machine_busy_seconds() - self._machine
        return max(machine - (_own_busy_seconds() - self._own), 0.0)


@dataclass
class Timings:
    medians: dict[str, float]  # seconds per call
    discarded: int  # rounds run again because another process was busy during them
    disturbed: bool  # the limit on reruns was reached, so disturbed rounds were kept

    def note(self, what: str) -> str:
        kept = "; LIMIT REACHED, disturbed rounds kept" if self.disturbed else ""
        return f"{what}: {self.discarded} rounds run again{kept}"


def interleaved_medians(
    steps: dict[str, Callable[[], object]],
    *,
    rounds: int,
    warmup: int,
    device: torch.device,
    min_sample_seconds: float = 2e-3,
) -> Timings:
    """Median seconds per call of each function.

    Every round calls each function in turn (A B C, then B C A, ...), so a burst of machine noise
    lands on all of them instead of on whichever happened to be running, and no function always
    follows the same neighbour (cache state). A function faster than ``min_sample_seconds`` runs
    back to back enough times per round to fill it, so microsecond steps are not dominated by the
    timer; that block's mean is one sample. The first ``warmup`` rounds (at least one: it sizes
    the blocks; also lazy state, allocator, caches) are thrown away.

    On a small shared machine one busy neighbour process makes every multithreaded kernel wait a
    scheduler slice for its second thread, which inflates some operations tenfold and others not
    at all. So a round during which other processes used more than a tenth of its wall time (plus
    two clock ticks for daemons) is run again, at most ``rounds`` times in all, which bounds the
    run time at about twice the undisturbed one.
    """
    names = list(steps)
    calls = dict.fromkeys(names, 1)
    samples: dict[str, list[float]] = {name: [] for name in names}
    warmup, kept, discarded = max(warmup, 1), 0, 0
    for index in range(warmup + 2 * rounds):
        if kept == rounds:
            break
        shift = index % len(names)
        round_samples, load, start_round = {}, OtherLoad(), time.perf_counter()
        for name in names[shift:] + names[:shift]:
            function, repeat = steps[name], calls[name]
            synchronize(device)
            start = time.perf_counter()
            for _ in range(repeat):
                function()
            synchronize(device)
            round_samples[name] = (time.perf_counter() - start) / repeat
        if index < warmup:
            for name, per_call in round_samples.items():
                calls[name] = max(calls[name], math.ceil(min_sample_seconds / per_call))
            continue
        allowed = 0.1 * (time.perf_counter() - start_round) + 2 / os.sysconf("SC_CLK_TCK")
        if load.seconds() > allowed and discarded < rounds:
            discarded += 1
            continue
        kept += 1
        for name, per_call in round_samples.items():
            samples[name].append(per_call)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return Timings(medians, discarded, disturbed=discarded >= rounds)


def format_seconds(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _machine_busy_seconds() -> float | None:
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return None
    idle, iowait = fields[3], fields[4]
    return (sum(fields[:8]) - idle - iowait) / os.sysconf("SC_CLK_TCK")


def _own_busy_seconds() -> float:
    times = os.times()
    return times.user + times.system


def markdown_row(*cells) -> str:
    """One row of the Markdown tables the benchmarks print (and bench/README.md keeps)."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def add_hardware_arguments(parser, *, device: bool = True) -> None:
    """--threads (and --device): where a benchmark runs; read back with ``apply_hardware``."""
    if device:
        parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")


def apply_hardware(parser, args) -> torch.device:
    """Sets the thread count; the device asked for, refused through ``parser`` without CUDA."""
    device = torch.device(getattr(args, "device", "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this torch build sees no CUDA device")
    if args.threads:
        torch.set_num_threads(args.threads)
    return device
