"""The CUDA path: runs only where a GPU is present (never in CI here)."""

import pytest
import torch

from pruning import TrainConfig, train
from pruning.groups import build_groups
from pruning.models import build_model
from pruning.optim import SDprun

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_training_with_bf16_autocast_on_cuda_prunes_and_stays_finite():
    events = []
    config = TrainConfig(model="cnn-small", device="cuda", amp=True, epochs=20)
    summary = train(config, events.append)
    assert events[0]["device"].startswith("cuda")
    assert summary["test_accuracy"] > 0.8
    assert all(e["train_loss"] == e["train_loss"] for e in events if e["type"] == "train")


def test_foreach_path_on_cuda_matches_the_single_tensor_path():
    results = []
    for foreach in (False, True):
        torch.manual_seed(0)
        model = build_model("resnet20", input_shape=(3, 32, 32), num_classes=10).cuda().double()
        optimizer = SDprun(build_groups(model).param_groups(), lr=0.1, c=0.05, mu=0.6,
                           foreach=foreach)
        generator = torch.Generator(device="cuda").manual_seed(1)
        for _ in range(5):
            x = torch.randn(8, 3, 32, 32, device="cuda", dtype=torch.float64, generator=generator)
            y = torch.randint(0, 10, (8,), device="cuda", generator=generator)
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        results.append(model)
    for a, b in zip(results[0].parameters(), results[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
