"""ValleyOptions: defaults, and a ValueError naming the field for every bad value."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pruning.valley import KINDS, ValleyOptions


def test_defaults_follow_the_issue():
    options = ValleyOptions()
    assert options.kinds == ("linear", "hessian", "plane")
    assert (options.points, options.hessian_k, options.plane_grid) == (41, 10, 21)
    assert options.random_directions == 10 and options.eval_samples == 5000
    assert KINDS == ("linear", "bezier", "hessian", "plane")
    with pytest.raises(ValidationError, match="frozen"):
        options.points = 3


def test_kinds_given_as_a_list_become_a_tuple():
    assert ValleyOptions(kinds=["bezier", "linear"]).kinds == ("bezier", "linear")


@pytest.mark.parametrize("field, value", [
    ("kinds", ("linear", "valley")),
    ("kinds", ()),
    ("kinds", ("linear", "linear")),
    ("kinds", "linear"),
    ("points", 1),
    ("points", 41.0),
    ("bezier_points", 0),
    ("bezier_steps", -1),
    ("bezier_lr", 0.0),
    ("bezier_lr", 11),
    ("bezier_batch_size", 0),
    ("hessian_k", 0),
    ("hessian_tol", -1e-3),
    ("random_directions", 0),
    ("plane_grid", 1),
    ("plane_margin", -0.1),
    ("eval_samples", 0),
    ("batch_size", True),
    ("seed", -1),
])
def test_bad_values_raise_naming_the_field(field, value):
    with pytest.raises(ValidationError) as caught:
        ValleyOptions(**{field: value})
    assert caught.value.errors()[0]["loc"][0] == field


def test_int_fields_accept_ints_and_float_fields_ints():
    options = ValleyOptions(bezier_lr=1, plane_margin=0, points=2)
    assert isinstance(options.bezier_lr, float) and options.plane_margin == 0.0
