"""Accepted means runnable: the spec accepts a config exactly when the engine can start it.

Configs are drawn from the spec's own JSON Schema: every field at its default or at a value of
its schema domain, with each bound and the nearest value inside an exclusive bound drawn often,
so the cross-field rules meet many combinations. The engine side builds, without training, what
a run builds (``pruning.job.check_buildable``: the data's facts from the engine's own readers,
the model on the meta device and a forward pass, groups, cost model, optimizer, a baseline's
schedule) from the unvalidated config. Two things count as "cannot start" besides an engine
error: a field set away from its default that the drawn method, dataset or model does not read
(its ``x-requires``; the engine would silently ignore it), and nothing else. Hardware is not a
config rule, so ``device`` is drawn from auto and cpu only.

Engine mode (no context) draws the built-in datasets; service mode draws data folders too,
validated with the folders a real scan of data roots reports (limits lifted), and the engine
reads the resolved folder.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from cifar_files import write_cifar10, write_cifar100
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mnist_files import mnist_arrays, write_mnist
from pydantic import ValidationError

from pruneboard.spec import DatasetFolder, JobSpec, ServiceContext, ServiceLimits
from pruneboard.spec.catalog import MIN_INPUT_SIDE
from pruneboard.spec.job import SERVER_FIELDS, field_default, field_extra
from pruneboard.spec.schema import model_schema
from pruning.data.facts import resolve_data_dir, scan_data_roots
from pruning.job import check_buildable

NAMES = list(JobSpec.model_fields)
LAYER_NAMES = ["features.0", "features.1", "classifier", "layer1.0.conv1", "conv1", "nothing"]
SIDES = sorted({s + d for s in MIN_INPUT_SIDE.values() for d in (-1, 0, 1) if s + d >= 1})
UNLIMITED = ServiceLimits(**{name: 2**62 for name in ServiceLimits.model_fields})


def number(prop: dict, integer: bool) -> st.SearchStrategy:
    """The low edge, the high edge (the nearest float inside an exclusive bound) or any value
    in between, a third of the time each."""
    low = prop.get("minimum", prop.get("exclusiveMinimum"))
    high = prop.get("maximum", prop.get("exclusiveMaximum"))
    if integer:
        inside = st.one_of(st.integers(low, high), st.integers(max(low, 1), min(high, 80)))
    else:
        low = math.nextafter(low, math.inf) if "exclusiveMinimum" in prop else low
        high = math.nextafter(high, -math.inf) if "exclusiveMaximum" in prop else high
        inside = st.floats(low, high)
    return st.sampled_from(["low", "high", "inside"]).flatmap(
        lambda where: st.just(low) if where == "low" else st.just(high) if where == "high"
        else inside)


def from_schema(prop: dict, name: str, folders: list[str]) -> st.SearchStrategy:
    if "anyOf" in prop:
        inner = next(p for p in prop["anyOf"] if p.get("type") != "null")
        return st.one_of(st.none(), from_schema(inner, name, folders))
    if "enum" in prop:
        return st.sampled_from(prop["enum"])
    kind = prop.get("type")
    if kind == "boolean":
        return st.booleans()
    if kind in ("integer", "number"):
        return number(prop, kind == "integer")
    if kind == "string" and "x-builtin" in prop:
        # By name the engine runs its registry's models (a module of one's own is passed to
        # train(), and a service checks pushed names against what it stores).
        return st.sampled_from(prop["x-builtin"])
    if kind == "string":
        return st.sampled_from(folders) if name == "data_dir" else st.sampled_from(LAYER_NAMES)
    if "prefixItems" in prop:
        # Image sides around every model's smallest input (1, 2, 32) as often as anywhere.
        sides = st.one_of(st.sampled_from(SIDES), from_schema(prop["prefixItems"][1], name, []))
        return st.tuples(st.integers(1, 4), sides, sides)
    items = from_schema(prop["items"], name, folders)
    longest = prop.get("maxItems", 8)
    # Short lists mostly; the longest list the schema allows now and then.
    return st.one_of(st.lists(items, max_size=min(3, longest)),
                     st.lists(items, min_size=longest, max_size=longest)).map(tuple)


def configs(datasets: tuple[str, ...], folders: list[str], server_fields: bool):
    schema = model_schema(JobSpec)["properties"]
    strategies = {}
    for name in NAMES:
        if name in SERVER_FIELDS and not server_fields:
            continue
        if name == "dataset":
            strategies[name] = st.sampled_from(datasets)
        elif name == "device":
            strategies[name] = st.sampled_from(["auto", "cpu"])
        elif name in ("checkpoint_dir", "export_dir"):
            strategies[name] = st.sampled_from([None, "/tmp/pruneboard-property"])
        else:
            strategies[name] = from_schema(schema[name], name, folders)

    @st.composite
    def config(draw):
        values = {}
        for name, strategy in strategies.items():  # spec order: a rule's field comes first
            rule = field_extra(name).get("x-requires")
            unmet = rule is not None and values.get(rule["field"],
                                                    field_default(rule["field"])) \
                not in rule["one_of"]
            # A field the config does not read keeps its default 15 times in 16, so most draws
            # get past "ignored field" to the engine's own rules; the others half the time.
            keep = 15 if unmet else 1
            if draw(st.sampled_from([True] * keep + [False])):
                values[name] = field_default(name)
            else:
                values[name] = draw(strategy)
        return values

    return config()


def ignored_fields(values: dict) -> list[str]:
    """Fields set away from their default that the config's method, dataset or model ignores."""
    return [name for name, value in values.items()
            if (rule := field_extra(name).get("x-requires")) and value != field_default(name)
            and values[rule["field"]] not in rule["one_of"]]


def engine_starts(values: dict, roots: list[Path] | None = None) -> bool:
    values = {**{n: field_default(n) for n in NAMES}, **values}
    if ignored_fields(values):
        return False
    if roots is not None and values["data_dir"] is not None:
        try:
            values["data_dir"] = str(resolve_data_dir(values["data_dir"], roots))
        except ValueError:
            return False
    try:
        check_buildable(JobSpec.model_construct(**values))
    except (ValueError, RuntimeError):
        return False
    return True


def spec_accepts(values: dict, context: dict | None = None) -> bool:
    try:
        JobSpec.model_validate(values, context=context)
    except ValidationError:
        return False
    return True


PROPERTY = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@PROPERTY
@given(configs(("digits", "synthetic"), folders=["/tmp", "no-such-folder"], server_fields=True))
def test_engine_mode_accepts_exactly_what_the_engine_starts(values):
    assert spec_accepts(values) == engine_starts(values), values


@pytest.fixture(scope="module")
def data_roots(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("roots")
    write_cifar10(root / "c10" / "cifar-10-batches-py", per_batch=20)
    write_cifar100(root / "c100" / "cifar-100-python", train=30, test=5)
    write_mnist(root / "digits-mnist", mnist_arrays(train=40, test=5), gz=False)
    return [root]


def test_service_mode_accepts_exactly_what_the_engine_starts(data_roots):
    folders = scan_data_roots(data_roots)
    assert {(f["dataset"], f["data_dir"]) for f in folders} == {
        ("cifar10", "c10"), ("cifar100", "c100"), ("mnist", "digits-mnist")}
    service = ServiceContext(folders=tuple(DatasetFolder(**f) for f in folders),
                             limits=UNLIMITED)
    names = [f["data_dir"] for f in folders] + ["not-reported"]
    draws = configs(("digits", "synthetic", "mnist", "cifar10", "cifar100"), names,
                    server_fields=False)

    @PROPERTY
    @given(draws)
    def check(values):
        accepted = spec_accepts(values, {"service": service})
        assert accepted == engine_starts(values, data_roots), values

    check()


@pytest.mark.parametrize("model", MIN_INPUT_SIDE)
def test_every_model_at_every_side_near_a_smallest_input(model):
    # Exhaustive where random draws are thin: each model on square and oblong inputs around
    # every model's smallest side, with one and two samples a batch.
    for height in SIDES:
        for width in (height, max(SIDES)):
            for batch_size in (1, 2):  # a BatchNorm over 1x1 maps cannot train on one sample
                values = {"model": model, "dataset": "synthetic", "batch_size": batch_size,
                          "synthetic_shape": (3, height, width)}
                assert spec_accepts(values) == engine_starts(values), values
