"""Paths between two networks: the ends reproduce each endpoint, the curve beats the line, and
analyze_pair returns plain JSON data."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from pruning.data import load_dataset
from pruning.evaluate import evaluate
from pruning.models import build_model
from pruning.valley import (
    ValleyOptions,
    analyze_pair,
    bezier_path,
    linear_path,
    linear_path_losses,
    mix,
    reestimate_batchnorm,
    training_subset,
)

BATCH = 256


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits")


def build(name, data, seed=0):
    torch.manual_seed(seed)
    return build_model(name, input_shape=data.input_shape, num_classes=10, mlp_widths=(32, 16))


def trained(name, data, seed, steps):
    """A few SGD steps from a seed of its own: two such runs are different minima."""
    model = build(name, data, seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        chosen = torch.randint(len(data.train_y), (64,), generator=generator)
        loss = F.cross_entropy(model(data.train_x[chosen]), data.train_y[chosen])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


@pytest.fixture(scope="module")
def mlp_pair(data):
    return trained("mlp", data, 0, 150), trained("mlp", data, 1, 150)


@pytest.fixture(scope="module")
def cnn_pair(data):
    return trained("cnn-small", data, 0, 60), trained("cnn-small", data, 1, 60)


def own_metrics(model, state, data, train_x, train_y, *, reestimate):
    """An endpoint measured on its own, the way a user would: evaluate() on each split."""
    model.load_state_dict(state)
    if reestimate:
        reestimate_batchnorm(model, train_x, batch_size=BATCH)
    test = evaluate(model, data, torch.device("cpu"), batch_size=BATCH)
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(train_x[i:i + BATCH]) for i in range(0, len(train_y), BATCH)])
    return {"train_loss": F.cross_entropy(logits.double(), train_y).item(),
            "train_accuracy": (logits.argmax(1) == train_y).double().mean().item(),
            "test_loss": test["test_loss"], "test_accuracy": test["test_accuracy"]}


def check_ends(path, expected_start, expected_end, exact_test):
    for key, value in expected_start.items():
        for got, want in ((path["endpoints"]["start"][key], value),
                          (path["endpoints"]["end"][key], expected_end[key])):
            if exact_test and key.startswith("test"):
                assert got == want, key
            else:
                assert got == pytest.approx(want, rel=1e-5, abs=1e-7), key
        assert path[key][0] == path["endpoints"]["start"][key]
        assert path[key][-1] == path["endpoints"]["end"][key]


def test_mixing_with_a_single_nonzero_coefficient_returns_that_state_exactly(cnn_pair):
    a, b = cnn_pair
    for t, expected in ((0.0, a), (1.0, b)):
        mixed = mix([a, b], [1 - t, t])
        for key, value in expected.items():
            assert torch.equal(mixed[key], value), key
    assert mixed["features.1.num_batches_tracked"].dtype == torch.int64


def test_path_ends_reproduce_each_endpoint_without_batchnorm(data, mlp_pair):
    a, b = mlp_pair
    model = build("mlp", data)
    path = linear_path(model, a, b, data, train_x=data.train_x, train_y=data.train_y,
                       points=5, batch_size=BATCH)
    assert path["t"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    ends = [own_metrics(build("mlp", data), s, data, data.train_x, data.train_y,
                        reestimate=False) for s in (a, b)]
    check_ends(path, *ends, exact_test=True)
    # Bit for bit what evaluate() says about each endpoint on the test set.
    for state, measured in ((a, path["endpoints"]["start"]), (b, path["endpoints"]["end"])):
        model.load_state_dict(state)
        own = evaluate(model, data, torch.device("cpu"), batch_size=BATCH)
        assert (measured["test_loss"], measured["test_accuracy"]) == (own["test_loss"],
                                                                      own["test_accuracy"])
    # Two independent minima: the line between them climbs.
    assert path["barrier"] > 0.05
    assert path["barrier_above_ends"] == max(path["train_loss"]) - max(path["train_loss"][0],
                                                                       path["train_loss"][-1])
    assert path["barrier"] >= path["barrier_above_ends"]
    assert 0 < path["barrier_t"] < 1


def test_path_ends_reproduce_each_endpoint_after_its_own_batchnorm_reestimation(data, cnn_pair):
    a, b = cnn_pair
    train_x, train_y = training_subset(data, 700, seed=0)
    model = build("cnn-small", data)
    path = linear_path(model, a, b, data, train_x=train_x, train_y=train_y, points=3,
                       batch_size=BATCH)
    ends = [own_metrics(build("cnn-small", data), s, data, train_x, train_y, reestimate=True)
            for s in (a, b)]
    check_ends(path, *ends, exact_test=True)
    # Without re-estimation the trained running statistics give other numbers: it did matter.
    stale = own_metrics(build("cnn-small", data), a, data, train_x, train_y, reestimate=False)
    assert stale["train_loss"] != ends[0]["train_loss"]


def test_live_monitor_helper_agrees_with_the_linear_path(data, cnn_pair):
    a, b = cnn_pair
    train_x, train_y = training_subset(data, 500, seed=1)
    path = linear_path(build("cnn-small", data), a, b, data, train_x=train_x, train_y=train_y,
                       points=4, batch_size=BATCH)
    losses = linear_path_losses(build("cnn-small", data), a, b, train_x, train_y, points=4,
                                batch_size=BATCH)
    assert losses == pytest.approx(path["train_loss"], rel=1e-9)
    assert len(training_subset(data, 500, seed=1)[1]) == 500


def test_bezier_curve_keeps_its_ends_and_lowers_the_barrier(data, mlp_pair):
    a, b = mlp_pair
    train_x, train_y = data.train_x, data.train_y
    line = linear_path(build("mlp", data), a, b, data, train_x=train_x, train_y=train_y,
                       points=9, batch_size=BATCH)
    seen = []
    curve = bezier_path(build("mlp", data), a, b, data, train_x=train_x, train_y=train_y,
                        points=9, steps=60, lr=0.05, train_batch_size=128, batch_size=BATCH,
                        seed=0, on_progress=lambda fraction, message: seen.append(fraction))
    assert curve["endpoints"] == line["endpoints"]
    assert curve["barrier"] < 0.5 * line["barrier"]
    assert curve["curve_train_loss"] is not None and curve["train_steps"] == 60
    assert seen == sorted(seen) and seen[-1] == 1.0


def test_analyze_pair_runs_every_kind_and_returns_plain_json(data, cnn_pair):
    a, b = cnn_pair
    initial = build("cnn-small", data).state_dict()
    options = ValleyOptions(kinds=("linear", "bezier", "hessian", "plane"), points=3,
                            bezier_points=3, bezier_steps=5, hessian_k=2, random_directions=2,
                            plane_grid=2, eval_samples=200, hessian_tol=1e-2)
    progress = []
    report = analyze_pair(build("cnn-small", data), reference=a, pruned=b, initial=initial,
                          data=data, options=options, device="cpu",
                          on_progress=lambda fraction, message: progress.append(fraction))
    text = json.dumps(report, allow_nan=False)
    assert "Tensor" not in text
    assert set(report["elapsed_s"]) == {"linear", "bezier", "hessian", "plane"}
    for kind in ("linear", "bezier"):
        assert set(report[kind]["endpoints"]) == {"reference", "pruned"}
        assert report[kind]["train_loss"][0] == report[kind]["endpoints"]["reference"][
            "train_loss"]
    assert report["linear"]["endpoints"] == report["bezier"]["endpoints"]
    assert len(report["plane"]["train_loss"]) == 2 and report["train_samples"] == 200
    assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0)
    assert all(0 <= f <= 1 for f in progress)

    without_init = analyze_pair(build("cnn-small", data), reference=a, pruned=b, initial=None,
                                data=data, options=ValleyOptions(kinds=("plane",)),
                                device="cpu")
    assert "plane" not in without_init and "plane" in without_init["skipped"]


def test_states_of_another_architecture_are_refused(data, mlp_pair, cnn_pair):
    with pytest.raises(ValueError, match="pruned: state dict does not fit"):
        analyze_pair(build("mlp", data), reference=mlp_pair[0], pruned=cnn_pair[0],
                     initial=None, data=data, options=ValleyOptions(), device="cpu")
