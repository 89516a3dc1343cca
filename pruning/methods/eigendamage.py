"""``eigendamage``: pruning in the Kronecker-factored eigenbasis (Wang, Zhang, Wang, Grosse —
"EigenDamage: Structured Pruning in the Kronecker-Factored Eigenbasis", ICML 2019).

K-FAC approximates a layer's Fisher by F ≈ A ⊗ S, with A = E[a aᵀ] over its inputs (conv: im2col
patches) and S = E[g gᵀ] over the gradients of its outputs. With A = Q_A Λ_A Q_Aᵀ and
S = Q_S Λ_S Q_Sᵀ the layer can be reparameterised as W = Q_S W' Q_Aᵀ (``kfe_reparameterise``:
three layers computing exactly the same function), and in those coordinates the Fisher is
diagonal, F' = diag(λ_S,i · λ_A,j), so removing a direction costs ½ Σ λ_S,i λ_A,j W'_ij².
Removing unit u (ΔW = −e_u W_u) moves W' by −(Q_Sᵀ e_u)(W_u Q_A), which costs

    ΔL_u = ½ · (Σ_i λ_S,i Q_S[u,i]²) · (Σ_j λ_A,j (W_u Q_A)_j²)   (= ½ S_uu · W_u A W_uᵀ).

Each decision re-estimates the factors on ``prune_samples`` training samples and keeps the units
of largest ΔL_u; the network is fine-tuned after the last one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pruning.groups import LayerGroup
from pruning.methods.common import ScheduledPruning, sample_batch


def layer_inputs(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's input vectors a, one per row (conv: every patch position)."""
    if isinstance(module, nn.Conv2d):
        patches = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
        return patches.transpose(1, 2).reshape(-1, patches.shape[1])
    return x.reshape(-1, x.shape[-1])


def output_rows(module: nn.Module, grad: torch.Tensor) -> torch.Tensor:
    """The gradients of the layer's outputs, one row per output vector: a conv's channels are
    axis 1, a Linear's features the last axis (also over a sequence of tokens)."""
    if isinstance(module, nn.Conv2d):
        return grad.movedim(1, -1).reshape(-1, grad.shape[1])
    return grad.reshape(-1, grad.shape[-1])


@torch.no_grad()
def kfe_reparameterise(module: nn.Module, q_a: torch.Tensor, q_s: torch.Tensor) -> nn.Sequential:
    """``module`` as Q_S ∘ W' ∘ Q_Aᵀ with W' = Q_Sᵀ W Q_A: the same function in the eigenbasis."""
    kinds = {"dtype": module.weight.dtype, "device": module.weight.device}
    weight = module.weight.reshape(module.weight.shape[0], -1)
    q_a, q_s = q_a.to(**kinds), q_s.to(**kinds)
    core = q_s.T @ weight @ q_a
    n_out, n_in = core.shape
    if isinstance(module, nn.Conv2d):
        rotate = nn.Conv2d(module.in_channels, n_in, module.kernel_size, module.stride,
                           module.padding, module.dilation, bias=False, **kinds)
        middle = nn.Conv2d(n_in, n_out, 1, bias=False, **kinds)
        back = nn.Conv2d(n_out, n_out, 1, **kinds)
        rotate.weight.copy_(q_a.T.reshape(n_in, *module.weight.shape[1:]))
        middle.weight.copy_(core.view(n_out, n_in, 1, 1))
        back.weight.copy_(q_s.view(n_out, n_out, 1, 1))
    else:
        rotate = nn.Linear(n_in, n_in, bias=False, **kinds)
        middle = nn.Linear(n_in, n_out, bias=False, **kinds)
        back = nn.Linear(n_out, n_out, **kinds)
        rotate.weight.copy_(q_a.T)
        middle.weight.copy_(core)
        back.weight.copy_(q_s)
    back.bias.copy_(module.bias if module.bias is not None else torch.zeros_like(back.bias))
    return nn.Sequential(rotate, middle, back)


def kfac_factors(job, groups: list[LayerGroup], step: int) -> list[tuple[torch.Tensor, ...]]:
    """(A, S) per group, averaged over ``prune_samples`` samples with their true labels."""
    inputs, targets = sample_batch(job, job.config.prune_samples, salt=step)
    sums: list[list] = [[0.0, 0.0, 0] for _ in groups]

    def hook(index):
        def forward(module, args, output):
            rows = layer_inputs(module, args[0].detach()).double()
            sums[index][0] = sums[index][0] + rows.T @ rows
            sums[index][2] += len(rows)

            def backward(grad):
                # × batch size: per-sample gradients of the summed loss, as K-FAC defines S.
                g = output_rows(module, grad).double() * len(args[0])
                sums[index][1] = sums[index][1] + g.T @ g
            output.register_hook(backward)
        return forward

    handles = [g.module.register_forward_hook(hook(i)) for i, g in enumerate(groups)]
    was_training = job.model.training
    job.model.eval()
    try:
        for start in range(0, len(targets), job.batch_size):
            batch = slice(start, start + job.batch_size)
            with torch.enable_grad():
                loss = F.cross_entropy(job.model(inputs[batch]).float(), targets[batch])
                grads = torch.autograd.grad(loss, [g.module.weight for g in groups])
            del grads
    finally:
        job.model.train(was_training)
        for handle in handles:
            handle.remove()
    return [(a / n, s / n) for a, s, n in sums]


def eigen_scores(weight: torch.Tensor, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """ΔL_u of removing each output unit, computed in the Kronecker-factored eigenbasis."""
    lam_a, q_a = torch.linalg.eigh(a)
    lam_s, q_s = torch.linalg.eigh(s)
    w = weight.reshape(weight.shape[0], -1).double()
    output_side = q_s.square() @ lam_s.clamp(min=0)
    input_side = (w @ q_a).square() @ lam_a.clamp(min=0)
    return 0.5 * output_side * input_side


class EigenDamage(ScheduledPruning):
    def scores(self, step: int) -> list[torch.Tensor]:
        groups = self.job.structure.groups
        factors = kfac_factors(self.job, groups, step)
        return [eigen_scores(g.module.weight.detach(), a, s)
                for g, (a, s) in zip(groups, factors, strict=True)]
