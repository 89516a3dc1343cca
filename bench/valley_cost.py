"""What does the loss-valley analysis cost? The 41-point linear path, the Hessian's top 10 and the
21×21 loss plane between an SGD twin and its sDprun run on digits, for mlp and cnn-small.

    .venv/bin/python bench/valley_cost.py [--quick] [--threads N]

The two endpoints of each model are trained here with ``pruning.train.train`` (same seed, so
the same initial weights; method sgd and sdprun). Every measurement runs in a fresh subprocess so
that its peak resident memory is its own. After setup (imports, data, model, a warm-up
evaluation and HVP) the kernel's high-water mark is reset (``/proc/self/clear_refs``), so the
table shows the peak during the measurement and how far it rose above the resident memory at its
start. Baselines in
the same process: a path point against one plain evaluation of the same weights (what BatchNorm
re-estimation and mixing add), and the minibatched Hessian-vector product against a full-batch
one (memory: the point of accumulating over minibatches). bench/README.md keeps the latest table.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _timing import OtherLoad, add_hardware_arguments, apply_hardware
from _timing import markdown_row as row
from compare_methods import DUAL_AVERAGING

from pruning import TrainConfig, train
from pruning.checkpoint import load_checkpoint
from pruning.data import load_dataset
from pruning.job import prepare
from pruning.models import build_model
from pruning.valley import (
    HessianVectorProduct,
    ValleyOptions,
    analyze_pair,
    evaluate_state,
    reestimate_batchnorm,
    training_subset,
)

MODELS = ("mlp", "cnn-small")
# The README's digits runs: 80 epochs; sDprun with the defaults on mlp and the larger threshold
# that makes it prune on cnn-small (compare_methods.DUAL_AVERAGING).
EPOCHS = {"mlp": 80, "cnn-small": 80}


def _status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def start_peak() -> float:
    """Reset the kernel's high-water mark of resident memory (Linux ≥ 4.0: clear_refs 5) and
    return the resident memory now, the baseline of the rise. Without /proc, fall back to the
    process's lifetime peak, so the rise is only a lower bound."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return _status_mib("VmRSS")
    except OSError:
        return peak_mib()


def peak_mib() -> float:
    high_water = _status_mib("VmHWM")
    if high_water is not None:
        return high_water
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def train_pair(name: str, epochs: int, folder: Path) -> Path:
    """SGD twin and sDprun run from the same seed; their last weights and the initial ones."""
    states, summaries = {}, {}
    for method in ("sgd", "sdprun"):
        config = TrainConfig(model=name, dataset="digits", method=method, epochs=epochs, seed=0,
                             device="cpu", log_interval=1000, compact=False,
                             checkpoint_dir=str(folder / f"{name}-{method}"),
                             **(DUAL_AVERAGING[name] if method == "sdprun" else {}))
        summaries[method] = train(config)
        states[method] = load_checkpoint(config.checkpoint_dir, config)["model"]
    initial = prepare(config).model.state_dict()
    path = folder / f"{name}.pt"
    torch.save({"reference": states["sgd"], "pruned": states["sdprun"], "initial": initial,
                "summaries": {m: {k: s[k] for k in ("test_accuracy", "group_sparsity",
                                                     "flops_reduction", "remaining_params")}
                              for m, s in summaries.items()}}, path)
    return path


def child(kind: str, name: str, states_path: str, options: ValleyOptions) -> dict:
    """One measurement in this (fresh) process."""
    saved = torch.load(states_path, weights_only=True)
    data = load_dataset("digits")
    model = build_model(name, input_shape=data.input_shape, num_classes=data.num_classes)
    train_x, train_y = training_subset(data, options.eval_samples, options.seed)
    plain = lambda: evaluate_state(model, saved["reference"], data, train_x, train_y,  # noqa: E731
                                   batch_size=options.batch_size, reestimate_bn=False)
    plain()  # warm-up: allocator, oneDNN primitives for these batch shapes
    evaluate_state(model, saved["reference"], data, train_x, train_y,
                   batch_size=options.batch_size)
    model.load_state_dict(saved["reference"])
    reestimate_batchnorm(model, train_x, batch_size=options.batch_size)
    model.eval()
    batch = len(train_y) if kind == "hvp-full" else options.batch_size
    hvp = HessianVectorProduct(model, train_x, train_y, batch_size=batch)
    vector = torch.randn(hvp.dim, dtype=torch.float64)
    if kind != "hvp-full":
        hvp(vector)  # warm-up of the double backward (the full batch's would set the peak)
    out: dict = {"kind": kind, "model": name, "setup_peak_mib": peak_mib()}
    out["baseline_mib"] = start_peak()
    if kind.startswith("hvp"):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            hvp(vector)
            times.append(time.perf_counter() - start)
        out.update(seconds=statistics.median(times), batch=batch)
    else:
        repeats = 3 if kind == "linear" else 1
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            report = analyze_pair(model, reference=saved["reference"], pruned=saved["pruned"],
                                  initial=saved["initial"], data=data,
                                  options=dataclasses.replace(options, kinds=(kind,)),
                                  device="cpu")
            times.append(time.perf_counter() - start)
        out.update(seconds=statistics.median(times), report=report[kind])
        if kind == "linear":
            evaluations = []
            for _ in range(5):
                start = time.perf_counter()
                plain()
                evaluations.append(time.perf_counter() - start)
            out["plain_evaluation_s"] = statistics.median(evaluations)
    out["peak_mib"] = peak_mib()
    return out


def run_child(kind: str, name: str, states: Path, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--model", name, "--states", str(states)]
    if args.quick:
        command.append("--quick")
    if args.threads:
        command += ["--threads", str(args.threads)]
    env = dict(os.environ)
    if args.threads:  # numpy's BLAS (ARPACK's vector work) too, before the child imports it
        env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(args.threads)
    finished = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def options_for(quick: bool) -> ValleyOptions:
    if quick:
        return ValleyOptions(points=11, plane_grid=7, hessian_k=5, random_directions=10)
    return ValleyOptions(random_directions=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs, points and grid")
    add_hardware_arguments(parser, device=False)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--states", help=argparse.SUPPRESS)
    args = parser.parse_args()
    apply_hardware(parser, args)
    options = options_for(args.quick)
    if args.child:
        print(json.dumps(child(args.child, args.model, args.states, options)))
        return

    print(f"# Loss-valley cost, {datetime.date.today()}, torch {torch.__version__}, cpu, "
          f"{torch.get_num_threads()} threads{' (quick)' if args.quick else ''}\n")
    load, wall = OtherLoad(), time.perf_counter()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in MODELS:
            epochs = 3 if args.quick else EPOCHS[name]
            states = train_pair(name, epochs, Path(folder))
            summaries = torch.load(states, weights_only=True)["summaries"]
            results[name] = {"epochs": epochs, "summaries": summaries}
            for kind in ("linear", "hessian", "plane", "hvp-minibatch", "hvp-full"):
                results[name][kind] = run_child(kind, name, states, args)

    k, points, grid = options.hessian_k, options.points, options.plane_grid
    print("## What the analysis finds (SGD twin → sDprun, digits)\n")
    print(row("model", "epochs", "test acc SGD / sDprun", "sDprun group sparsity / FLOPs cut",
              "train loss SGD / sDprun", "barrier (train loss)", "λ₁ … λ_k",
              f"fraction of Δ in top-{k}",
              f"random directions, mean ({options.random_directions})", "√(k/d)"))
    print(row(*["---"] * 10))
    for name, r in results.items():
        s, lin, hes = r["summaries"], r["linear"]["report"], r["hessian"]["report"]
        print(row(name, r["epochs"],
                  f"{s['sgd']['test_accuracy']:.4f} / {s['sdprun']['test_accuracy']:.4f}",
                  f"{s['sdprun']['group_sparsity']:.3f} / {s['sdprun']['flops_reduction']:.3f}",
                  f"{lin['endpoints']['reference']['train_loss']:.4f} / "
                  f"{lin['endpoints']['pruned']['train_loss']:.4f}", f"{lin['barrier']:.3g}",
                  f"{hes['eigenvalues'][0]:.3g} … {hes['eigenvalues'][-1]:.3g}",
                  f"{hes['fraction']:.4f}", f"{hes['random_mean']:.4f}",
                  f"{hes['random_expected']:.4f}"))
    print("\n## Cost (median of 3 for the path and the HVPs, one run otherwise)\n")
    print(row("model", "measurement", "time", "per unit", "baseline", "peak RSS",
              "rise during it"))
    print(row(*["---"] * 7))
    for name, r in results.items():
        lin, hes, plane = r["linear"], r["hessian"], r["plane"]
        mini, full = r["hvp-minibatch"], r["hvp-full"]
        per_point = lin["seconds"] / points
        lines = [
            (f"linear path, {points} points", lin, f"{per_point * 1e3:.1f} ms/point",
             f"{per_point / lin['plain_evaluation_s']:.2f}× one plain evaluation"),
            (f"Hessian top-{k} (d = {hes['report']['dim']})", hes,
             f"{hes['report']['hvps']} HVPs, {hes['seconds'] / hes['report']['hvps'] * 1e3:.0f} "
             f"ms/HVP", ""),
            (f"plane {grid}×{grid}", plane, f"{plane['seconds'] / grid ** 2 * 1e3:.1f} ms/point",
             ""),
            (f"one HVP, minibatches of {mini['batch']}", mini, "", ""),
            (f"one HVP, full batch of {full['batch']}", full, "",
             f"rise {_rise(full) / max(_rise(mini), 1e-9):.1f}× the minibatched one"),
        ]
        for label, m, unit, baseline in lines:
            print(row(name, label, f"{m['seconds']:.2f} s", unit, baseline,
                      f"{m['peak_mib']:.0f} MiB", f"{_rise(m):.0f} MiB"))
    print(f"\nWall time {time.perf_counter() - wall:.0f} s; other processes used "
          f"{load.seconds():.0f} CPU-seconds meanwhile.")


def _rise(measurement: dict) -> float:
    # RSS can dip below its value at the start (pages returned); a rise is never negative.
    return max(measurement["peak_mib"] - measurement["baseline_mib"], 0.0)


if __name__ == "__main__":
    main()
