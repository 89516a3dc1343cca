"""gRDA as published (Chao et al. 2020): every weight is soft-thresholded, the classifier too.

The reference below is a transcription of the update in the authors' PyTorch optimizer
(accumulator started at the initial weights, moved by -lr·grad; an l1 threshold accumulated as
c·lr^(μ+½)·(n^μ − (n−1)^μ); weights = sign(a)·max(|a| − threshold, 0)), applied to every
parameter of the model, as their code does.
"""

import torch
import torch.nn.functional as F

from pruning import TrainConfig
from pruning.job import prepare


def published_grda_step(params, state, lr, c, mu):
    for p in params:
        s = state.setdefault(id(p), {"iter": 0, "acc": p.detach().clone(), "l1": 0.0})
        s["iter"] += 1
        s["acc"].add_(p.grad, alpha=-lr)
        n = s["iter"]
        s["l1"] += c * lr ** (mu + 0.5) * n**mu - c * lr ** (mu + 0.5) * (n - 1) ** mu
        with torch.no_grad():
            p.copy_(torch.sign(s["acc"]) * (s["acc"].abs() - s["l1"]).clamp(min=0))


def test_grda_matches_the_published_update_on_every_weight_and_thresholds_the_classifier():
    config = TrainConfig.from_dict({"model": "mlp", "method": "grda", "lr": 0.1, "c": 0.05,
                                    "mu": 0.6, "epochs": 1, "batch_size": 64, "seed": 3,
                                    "mlp_widths": [32]})
    job = prepare(config)
    model = job.model.double()
    reference = {n: p.detach().clone().requires_grad_() for n, p in model.named_parameters()}
    job.optimizer.state.clear()
    state: dict = {}
    x = job.data.train_x.double()
    generator = torch.Generator().manual_seed(0)
    for _ in range(40):
        batch = torch.randint(0, len(x), (64,), generator=generator)
        job.optimizer.zero_grad()
        F.cross_entropy(model(x[batch]), job.data.train_y[batch]).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        job.optimizer.step()
        for name, p in reference.items():
            p.grad = grads[name]
        published_grda_step(list(reference.values()), state, 0.1, 0.05, 0.6)
        for name, p in model.named_parameters():  # same point, so the next gradients match
            torch.testing.assert_close(p.detach(), reference[name].detach(), rtol=0,
                                       atol=1e-12)
    classifier = model.classifier.weight
    assert (classifier == 0).double().mean() > 0.05  # the output layer is thresholded too
    total = sum(p.numel() for p in model.parameters())
    zeros = sum((p == 0).sum().item() for p in model.parameters())
    assert job.optimizer.param_groups[0]["prune"] and len(job.optimizer.param_groups) == 1
    assert zeros / total > 0.05


def test_grda_leaves_only_excluded_layers_unthresholded():
    config = TrainConfig.from_dict({"model": "mlp", "method": "grda", "exclude": ["classifier"],
                                    "epochs": 1})
    job = prepare(config)
    free = job.optimizer.param_groups[1]
    assert free["prune"] is False
    assert [id(p) for p in free["params"]] == [id(p) for p in job.model.classifier.parameters()]
