"""How fast are SDprun and GRDA? Optimizer steps and a training step against what users would
otherwise run, and SDprun against a naive reference implementation of the same math.

    .venv/bin/python bench/optimizer_step.py [--quick] [--device cuda] [--threads N]

Every contender is measured in this one process, in interleaved rounds after a warm-up, and the
medians are compared as ratios (DESIGN.md §5): absolute times say more about the machine than
about the code. Gradients are fixed random tensors assigned once, so an optimizer-step sample is
the step alone. bench/README.md explains the ratios and keeps the latest table.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import math
import time

import torch
import torch.nn.functional as F
from _timing import (
    OtherLoad,
    Timings,
    add_hardware_arguments,
    apply_hardware,
    format_seconds,
    interleaved_medians,
)
from _timing import (
    markdown_row as row,
)
from torch import nn
from torch.optim import SGD, Optimizer

from pruning.groups import build_groups
from pruning.models import build_model
from pruning.optim import GRDA, SDprun

LR, C, MU = 0.1, 0.005, 0.51
INPUT_SHAPES = {"mlp": (1, 8, 8), "vgg16-bn": (3, 32, 32), "resnet20": (3, 32, 32)}


class ReferenceSDprun(Optimizer):
    """sDprun written the way the published gRDA reference code is written: a Python loop over
    parameters, each with its own step-counter and threshold tensors (so λ_n costs a few tiny
    tensor ops per parameter per step), and the group norms and weights done row by row.

    The math is pruning.optim.SDprun's exactly (``check_reference`` compares the weights), so the
    speedup measures the implementation, not a different algorithm.
    """

    def __init__(self, params, lr: float = LR, c: float = C, mu: float = MU):
        super().__init__(params, dict(lr=lr, c=c, mu=mu, prune=True))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, c, mu, params = group["lr"], group["c"], group["mu"], group["params"]
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=p.dtype, device=p.device)
                    state["threshold"] = torch.zeros((), dtype=p.dtype, device=p.device)
                    state["accumulator"] = p.detach().clone()
                state["step"] += 1
                k = state["step"]
                state["threshold"] += c * lr ** (mu + 0.5) * (k**mu - (k - 1) ** mu)
                state["accumulator"].add_(p.grad, alpha=-lr)
            if not group["prune"]:
                for p in params:
                    p.copy_(self.state[p]["accumulator"])
                continue
            for tied in group.get("units") or [[i] for i in range(len(params))]:
                weights = [params[i] for i in tied]
                accumulators = [self.state[p]["accumulator"] for p in weights]
                threshold = self.state[weights[0]]["threshold"]
                scale = math.sqrt(sum(v[0].numel() for v in accumulators))
                tiny = torch.finfo(accumulators[0].dtype).tiny
                for unit in range(accumulators[0].shape[0]):
                    norm = torch.sqrt(sum(v[unit].pow(2).sum() for v in accumulators))
                    factor = torch.clamp(1 - threshold * scale / torch.clamp(norm, min=tiny), min=0)
                    for p, v in zip(weights, accumulators, strict=True):
                        p[unit] = v[unit] * factor


def fixed_gradients(model: nn.Module, row_scaled: bool = False) -> dict[nn.Parameter, torch.Tensor]:
    torch.manual_seed(1)
    grads = {}
    for p in model.parameters():
        g = torch.randn_like(p) * 1e-2
        if row_scaled:
            # A different magnitude per row spreads the group norms, so a threshold can zero some
            # groups and only shrink others: both branches of the shrinkage get compared.
            g *= 100 * torch.rand(p.shape[0], *[1] * (p.dim() - 1), dtype=p.dtype, device=p.device)
        grads[p] = g
    return grads


def private_copy(groups: list[dict], grads: dict) -> list[dict]:
    """The param groups over fresh copies of the weights (each optimizer updates its own), each
    copy holding the shared fixed gradient (read-only to every optimizer here)."""
    result = []
    for group in groups:
        params = []
        for p in group["params"]:
            copy_ = nn.Parameter(p.detach().clone())
            copy_.grad = grads[p]
            params.append(copy_)
        result.append({**group, "params": params})
    return result


def flat(groups: list[dict]) -> list[nn.Parameter]:
    return [p for group in groups for p in group["params"]]


def check_reference(device: torch.device) -> str:
    """Both SDprun paths and the reference give the same weights after a few steps (float64)."""
    torch.manual_seed(0)
    model = build_model("mlp", input_shape=INPUT_SHAPES["mlp"], num_classes=10)
    model = model.to(device, torch.float64)
    groups = build_groups(model).param_groups()
    grads = fixed_gradients(model, row_scaled=True)
    c = 0.3  # large enough that some groups reach zero within the five steps
    makers = [
        lambda g: ReferenceSDprun(g, c=c),
        lambda g: SDprun(g, lr=LR, c=c, mu=MU, foreach=False),
        lambda g: SDprun(g, lr=LR, c=c, mu=MU, foreach=True),
    ]
    results = []
    for make in makers:
        own = private_copy(groups, grads)
        optimizer = make(own)
        for _ in range(5):
            optimizer.step()
        results.append(own)
    for other in results[1:]:
        torch.testing.assert_close(flat(other), flat(results[0]), rtol=1e-10, atol=1e-12)
    # A group is zero exactly when its rows are: count them on the first tensor of each unit.
    leading = [results[0][0]["params"][tied[0]] for tied in groups[0]["units"]]
    zero = sum(int(w.reshape(w.shape[0], -1).eq(0).all(1).sum()) for w in leading)
    total = sum(w.shape[0] for w in leading)
    return f"reference == SDprun (both paths) in float64 after 5 steps; {zero}/{total} groups zero"


def bench_optimizer_steps(name: str, rounds: int, warmup: int, device: torch.device) -> Timings:
    torch.manual_seed(0)
    model = build_model(name, input_shape=INPUT_SHAPES[name], num_classes=10).to(device)
    groups = build_groups(model).param_groups()
    grads = fixed_gradients(model)
    contenders = {
        "SGD momentum=0.9 foreach": lambda g: SGD(flat(g), lr=LR, momentum=0.9, foreach=True),
        "SGD plain foreach": lambda g: SGD(flat(g), lr=LR, foreach=True),
        "SDprun foreach=False": lambda g: SDprun(g, lr=LR, c=C, mu=MU, foreach=False),
        "SDprun foreach=True": lambda g: SDprun(g, lr=LR, c=C, mu=MU, foreach=True),
        "GRDA foreach=False": lambda g: GRDA(g, lr=LR, c=C, mu=MU, foreach=False),
        "GRDA foreach=True": lambda g: GRDA(g, lr=LR, c=C, mu=MU, foreach=True),
        "reference loop (sDprun)": lambda g: ReferenceSDprun(g),
    }
    steps = {label: make(private_copy(groups, grads)).step for label, make in contenders.items()}
    return interleaved_medians(steps, rounds=rounds, warmup=warmup, device=device)


def bench_training_step(name: str, batch: int, rounds: int, warmup: int,
                        device: torch.device) -> Timings:
    """Forward, cross-entropy, backward and step on one fixed random batch, each method on its own
    copy of the same initial model. Rounds alternate the methods (AB, BA, ...) so that noise, which
    on a small shared machine is larger than the difference sought, hits both alike."""
    torch.manual_seed(0)
    base = build_model(name, input_shape=INPUT_SHAPES[name], num_classes=10).to(device).train()
    x = torch.randn(batch, *INPUT_SHAPES[name], device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def trainer(make):
        model = copy.deepcopy(base)
        optimizer = make(model)

        def step():
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        return step

    steps = {
        "SGD momentum=0.9 foreach": trainer(
            lambda m: SGD(m.parameters(), lr=LR, momentum=0.9, foreach=True)),
        "SDprun (default foreach)": trainer(
            lambda m: SDprun(build_groups(m).param_groups(), lr=LR, c=C, mu=MU)),
    }
    return interleaved_medians(steps, rounds=rounds, warmup=warmup, device=device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a much shorter, noisier run")
    add_hardware_arguments(parser)
    args = parser.parse_args()
    device = apply_hardware(parser, args)
    # (rounds, warm-up rounds): the vgg16-bn reference loop takes most of a second and a resnet20
    # training step about one on a 2-core CPU, so those two bound the run time.
    step_plan = {"mlp": (25, 3), "vgg16-bn": (20, 3)}
    train_plan = {"resnet20": (16, 2), "mlp": (25, 3)}
    if args.quick:
        step_plan = {"mlp": (5, 1), "vgg16-bn": (3, 1)}
        train_plan = {"resnet20": (3, 1), "mlp": (5, 1)}

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"# Optimizer-step benchmark, {datetime.date.today()}, torch {torch.__version__}, "
          f"{where}, {torch.get_num_threads()} threads{' (quick)' if args.quick else ''}\n")
    load, wall_start, notes = OtherLoad(), time.perf_counter(), []
    print(check_reference(device), "\n")

    print("## Optimizer step alone (median per step)\n")
    print(row("model", "optimizer", "median step", "÷ SGD momentum", "÷ plain SGD"))
    print(row(*["---"] * 5))
    steps = {}
    for name, plan in step_plan.items():
        timings = bench_optimizer_steps(name, *plan, device)
        medians = steps[name] = timings.medians
        notes.append(timings.note(f"{name} optimizer steps"))
        momentum, plain = medians["SGD momentum=0.9 foreach"], medians["SGD plain foreach"]
        for label, seconds in medians.items():
            print(row(name, label, format_seconds(seconds), f"{seconds / momentum:.2f}×",
                      f"{seconds / plain:.2f}×"))

    print("\n## Training step: forward, backward, step; batch 128 (median per step)\n")
    print(row("model", "SGD momentum=0.9 foreach", "SDprun (default foreach)", "ratio"))
    print(row(*["---"] * 4))
    train = {}
    for name, plan in train_plan.items():
        timings = bench_training_step(name, 128, *plan, device)
        medians = timings.medians
        notes.append(timings.note(f"{name} training steps"))
        sgd, ours = medians["SGD momentum=0.9 foreach"], medians["SDprun (default foreach)"]
        train[name] = ours / sgd
        print(row(name, format_seconds(sgd), format_seconds(ours), f"{ours / sgd:.3f}×"))

    # SDprun's default path on this device is what users run, so the targets judge that one.
    default = "SDprun foreach=True" if device.type == "cuda" else "SDprun foreach=False"
    checks = [(f"{default} step ÷ SGD momentum, {name}",
               medians[default] / medians["SGD momentum=0.9 foreach"], "≤", 1.3)
              for name, medians in steps.items()]
    checks.append(("training step SDprun ÷ SGD momentum, resnet20", train["resnet20"], "≤", 1.1))
    checks += [(f"reference loop ÷ {default}, {name}",
                medians["reference loop (sDprun)"] / medians[default], "≥", 3.0)
               for name, medians in steps.items()]
    print("\n## Targets\n")
    print(row("check", "measured", "target", "met"))
    print(row(*["---"] * 4))
    for label, ratio, sign, limit in checks:
        met = ratio <= limit if sign == "≤" else ratio >= limit
        print(row(label, f"{ratio:.2f}×", f"{sign} {limit:g}×", "yes" if met else "**no**"))
    # Rounds disturbed by other processes were run again (see _timing.py); what remains of their
    # load is said here so that a reader can tell a clean run from a disturbed one.
    print(f"\n{time.perf_counter() - wall_start:.0f} s in all; other processes used "
          f"{load.seconds():.1f} CPU-seconds; {'; '.join(notes)}.")


if __name__ == "__main__":
    main()
