"""The loss barrier of a path: above the chord between the ends (the headline) and above the
higher end, on hand-made curves and on the paths and the live check that report them."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from pruning import TrainConfig, train
from pruning.data import load_dataset
from pruning.models import build_model
from pruning.valley import linear_path
from pruning.valley.evaluation import barriers

T3 = [0.0, 0.5, 1.0]


def test_a_rise_above_the_chord_but_not_above_the_higher_end():
    # Ends 1 and 3; the chord is 2 at t = 0.5, where the loss is 2.5.
    found = barriers([1.0, 2.5, 3.0], T3)
    assert found == {"barrier": 0.5, "barrier_t": 0.5,
                     "barrier_above_ends": 0.0, "barrier_above_ends_t": 1.0}


def test_a_bump_above_both_ends():
    found = barriers([1.0, 4.0, 3.0], T3)
    assert found["barrier"] == 2.0 and found["barrier_t"] == 0.5
    assert found["barrier_above_ends"] == 1.0 and found["barrier_above_ends_t"] == 0.5


def test_a_path_below_its_chord_has_no_barrier_and_ties_go_to_the_first_t():
    found = barriers([1.0, 1.2, 3.0], T3)  # below the chord (2.0) in the middle
    assert found == {"barrier": 0.0, "barrier_t": 0.0,
                     "barrier_above_ends": 0.0, "barrier_above_ends_t": 1.0}
    flat = barriers([2.0] * 5, [0.0, 0.25, 0.5, 0.75, 1.0])
    assert flat == {"barrier": 0.0, "barrier_t": 0.0,
                    "barrier_above_ends": 0.0, "barrier_above_ends_t": 0.0}


def test_the_chord_is_evaluated_at_each_t_not_at_the_index():
    # Uneven t: the chord at t = 0.25 between ends 0 and 4 is 1.0.
    found = barriers([0.0, 1.5, 4.0], [0.0, 0.25, 1.0])
    assert found["barrier"] == 0.5 and found["barrier_t"] == 0.25


def test_both_are_non_negative_and_the_chord_barrier_is_never_smaller():
    rng = random.Random(0)
    for _ in range(500):
        points = rng.randint(2, 12)
        ts = [i / (points - 1) for i in range(points)]
        losses = [rng.uniform(0, 5) for _ in ts]
        found = barriers(losses, ts)
        assert found["barrier"] >= 0 and found["barrier_above_ends"] >= 0
        assert found["barrier"] >= found["barrier_above_ends"] - 1e-12
        assert found["barrier_above_ends"] == max(losses) - max(losses[0], losses[-1])


def test_a_missing_loss_gives_none_and_mismatched_lengths_are_refused():
    assert set(barriers([1.0, None, 2.0], T3).values()) == {None}
    assert set(barriers([], []).values()) == {None}
    with pytest.raises(ValueError, match="2 losses for 3 values of t"):
        barriers([1.0, 2.0], T3)


def test_the_linear_path_reports_both():
    data = load_dataset("digits")
    states = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = build_model("mlp", input_shape=data.input_shape, num_classes=10,
                            mlp_widths=(16,))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for start in range(0, 640, 64):
            loss = F.cross_entropy(model(data.train_x[start:start + 64]),
                                   data.train_y[start:start + 64])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    path = linear_path(model, *states, data, train_x=data.train_x, train_y=data.train_y,
                       points=5, batch_size=512)
    assert {k: path[k] for k in ("barrier", "barrier_t", "barrier_above_ends",
                                 "barrier_above_ends_t")} == barriers(path["train_loss"], path["t"])
    assert path["barrier"] >= path["barrier_above_ends"] - 1e-12


def test_the_live_valley_check_reports_both():
    events = []
    train(TrainConfig(model="mlp", dataset="digits", mlp_widths=(16,), epochs=1, batch_size=128,
                      log_interval=50, lr=0.3, compact=False, reference="sgd",
                      valley_interval=1), events.append)
    [valley] = [e for e in events if e["type"] == "valley"]
    found = barriers(valley["train_loss"], valley["t"])
    assert valley["barrier"] == found["barrier"]
    assert valley["barrier_above_ends"] == found["barrier_above_ends"]
