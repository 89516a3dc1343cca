"""The engine at the sDprun paper's scale, on the CPU: CIFAR-shaped synthetic data.

Prints two tables (markdown), each run against an SGD twin trained in lock-step from the same
initial weights, seed and minibatches:

1. prunable share: the fraction of conv weights in prunable groups, with the dependency graph's
   coupled groups (what sDprun/gRDA get) and with single-layer groups only (what the baselines
   get, and what every method got before residual streams were grouped);
2. group weighting under BatchNorm: sDprun with ``elements`` and ``batchnorm`` weighting on
   cnn-small/digits and vgg16-bn, reported accuracy (BN statistics re-estimated), the
   running-statistics accuracy, remaining FLOPs and the twin; the vgg16-bn row at the family
   defaults is the acceptance check (sDprun within 5 points of its twin).

    .venv/bin/python bench/cifar_scale.py [--quick]

``--quick`` runs only the digits rows (two minutes); the three vgg16-bn rows take about 12
minutes each on two idle cores. The synthetic data is the engine's own (``dataset:
synthetic``): class-conditional Gaussians. It is easy — the SGD twin reaches 100 % — so it
shows whether pruning destroys what was learnt, not how a network ranks on real CIFAR.
"""

from __future__ import annotations

import argparse
import sys
import time

from pruning import TrainConfig, train
from pruning.groups import build_groups
from pruning.models import build_model

CIFAR = {"dataset": "synthetic", "synthetic_shape": [3, 32, 32], "synthetic_classes": 10,
         "synthetic_size": 2048}


def prunable_shares() -> list[str]:
    rows = ["| model | conv weights prunable (coupled groups) | single-layer groups only |",
            "| --- | --- | --- |"]
    for name in ("resnet20", "resnet56", "wrn-28-10", "vgg16-bn"):
        model = build_model(name, input_shape=(3, 32, 32), num_classes=10)
        coupled = build_groups(model, (3, 32, 32))
        single = build_groups(model, (3, 32, 32), coupled=False)
        rows.append(f"| {name} | {coupled.prunable_share():.1%} ({len(coupled.groups)} groups) "
                    f"| {single.prunable_share():.1%} ({len(single.groups)} groups) |")
    return rows


def run(values: dict) -> dict:
    config = TrainConfig.from_dict({"method": "sdprun", "reference": "sgd", "compact": False,
                                    "analyses": [], "log_interval": 1000, **values})
    last_eval: dict = {}

    def keep(event):
        if event["type"] == "eval":
            last_eval.update(event)

    started = time.perf_counter()
    summary = train(config, keep)
    return {**summary, **{k: v for k, v in last_eval.items() if k.startswith("reference")},
            "seconds": time.perf_counter() - started, "c": config.c, "mu": config.mu}


DIGITS_CNN = {"model": "cnn-small", "epochs": 30}
VGG = {"model": "vgg16-bn", "epochs": 4, **CIFAR}
# (label, job values): the rows of the README's table, in order. The c values pair the two
# weightings at about equal FLOPs (batchnorm needs a far larger c: λ·√2 against ‖(γ, β)‖ ≈ 1
# where elements compares λ·√|G| with a norm of about the same size), found with the forecast.
CASES = [
    ("cnn-small / digits", {**DIGITS_CNN, "group_weighting": "elements", "c": 0.015}),
    ("cnn-small / digits", {**DIGITS_CNN, "group_weighting": "batchnorm", "c": 0.015}),
    ("cnn-small / digits", {**DIGITS_CNN, "group_weighting": "elements", "c": 0.05}),
    ("cnn-small / digits", {**DIGITS_CNN, "group_weighting": "batchnorm", "c": 0.05}),
    ("cnn-small / digits", {**DIGITS_CNN, "group_weighting": "batchnorm", "c": 0.4}),
    ("cnn-small / digits", {**DIGITS_CNN, "group_weighting": "batchnorm", "c": 0.8}),
    ("vgg16-bn / synthetic 3×32×32", {**VGG, "group_weighting": "elements"}),
    ("vgg16-bn / synthetic 3×32×32", {**VGG, "group_weighting": "elements", "c": 0.03,
                                      "mu": 0.6}),
    ("vgg16-bn / synthetic 3×32×32", {**VGG, "group_weighting": "batchnorm", "c": 0.5,
                                      "mu": 0.6}),
]


def weighting_rows(quick: bool) -> list[str]:
    rows = ["| model / data | c, μ | weighting | accuracy | running-stats accuracy | "
            "remaining FLOPs | SGD twin | time |", "| --- | --- | --- | --- | --- | --- | --- | "
            "--- |"]
    for label, values in CASES:
        if quick and values["model"] != "cnn-small":
            continue
        result = run(values)
        raw = result.get("running_stats_test_accuracy")
        rows.append(
            f"| {label} | {result['c']}, {result['mu']} | {values['group_weighting']} | "
            f"{result['test_accuracy']:.2%} | {'–' if raw is None else format(raw, '.2%')} | "
            f"{result['remaining_flops']:.1%} | {result['reference_test_accuracy']:.2%} | "
            f"{result['seconds']:.0f} s |")
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="digits rows only")
    args = parser.parse_args()
    print("\n".join(prunable_shares()), end="\n\n", flush=True)
    print("\n".join(weighting_rows(args.quick)), flush=True)


if __name__ == "__main__":
    main()
