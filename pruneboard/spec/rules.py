"""The rules between fields of a job config, run after each field passed its own range.

Every rule the engine meets while building a job is here, so a config that passes is one the
engine can start (the property test in tests/pruneboard proves it): fields a method or dataset
does not read, the order of prune_start and prune_end, a model's smallest input, batch size
against the training set, a data folder for the datasets read from files. With a service
context the service's rules follow: data folders its live workers report, server-set fields,
and the limits. (job.py imports this module inside its validator, so this one imports job.py
at the top without a cycle.)
"""

from __future__ import annotations

import json
import math
from typing import Any

from pruneboard.spec import catalog
from pruneboard.spec.errors import refuse
from pruneboard.spec.job import SERVER_FIELDS, JobSpec, field_default, field_extra
from pruneboard.spec.service import ServiceContext, service_of
from pruneboard.spec.sizes import ModelCount, count_model

Problems = list[tuple[str, str]]


def check_job(spec: JobSpec, context: Any) -> None:
    service = service_of(context)
    problems = _unread_fields(spec)
    if spec.prune_end < spec.prune_start:
        problems.append(("prune_end", f"must be at least prune_start ({spec.prune_start}), got "
                                      f"{spec.prune_end}"))
    if spec.dataset in catalog.FOLDER_DATASETS and not spec.data_dir:
        problems.append(("data_dir", f"dataset {spec.dataset} is read from a data folder; name "
                                     f"one (nothing is downloaded)"))
    if service is not None:
        problems += _service_fields(spec, service)
    facts = None if problems else dataset_facts(spec, service)
    if facts is not None:
        problems += _fits_data(spec, facts)
        if not problems:
            count = count_model(spec.model, facts.input_shape, facts.num_classes,
                                spec.mlp_widths)
            problems += _trains(spec, facts, count)
            if service is not None and not problems:
                problems += _limits(spec, facts, count, service)
    refuse(problems)


def dataset_facts(spec: JobSpec, service: ServiceContext | None) -> catalog.DatasetFacts | None:
    """Shape, classes and size of the job's data, where they are known before loading it."""
    if spec.dataset == "digits":
        return catalog.DIGITS
    if spec.dataset == "synthetic":
        return catalog.DatasetFacts(spec.synthetic_shape, spec.synthetic_classes,
                                    spec.synthetic_size)
    if service is None:
        return None  # a local folder: the engine checks it when it reads the files
    for folder in service.folders_of(spec.dataset):
        if folder.data_dir == spec.data_dir:
            return folder.facts()
    return None


def _unread_fields(spec: JobSpec) -> Problems:
    problems = []
    for name in type(spec).model_fields:
        rule = field_extra(name, type(spec)).get("x-requires")
        if rule is None or getattr(spec, name) == field_default(name):
            continue
        other = getattr(spec, rule["field"])
        if other in rule["one_of"]:
            continue
        shown = json.dumps(_plain(field_default(name)))
        if rule["field"] == "method":
            problems.append((name, f"is read only by method {', '.join(rule['one_of'])}; "
                                   f"{other} does not read it (leave it at {shown})"))
        else:
            problems.append((name, f"needs {rule['field']} {' or '.join(rule['one_of'])} "
                                   f"({rule['field']} is {other}); leave it at {shown}"))
    return problems


def _fits_data(spec: JobSpec, facts: catalog.DatasetFacts) -> Problems:
    problems = []
    _, height, width = facts.input_shape
    side = catalog.MIN_INPUT_SIDE[spec.model]
    if height < side or width < side:
        where = "synthetic_shape" if spec.dataset == "synthetic" else "model"
        problems.append((where, f"{spec.model} needs inputs of at least {side}x{side}; "
                                f"{spec.dataset} has {height}x{width}"))
    if spec.dataset == "synthetic" and spec.synthetic_size < spec.synthetic_classes:
        problems.append(("synthetic_size", f"must be at least synthetic_classes "
                                           f"({spec.synthetic_classes}), got "
                                           f"{spec.synthetic_size}"))
    if spec.batch_size > facts.train_size:
        problems.append(("batch_size", f"must be at most the {facts.train_size} training "
                                       f"samples of {spec.dataset}, got {spec.batch_size}"))
    return problems


def _trains(spec: JobSpec, facts: catalog.DatasetFacts, count: ModelCount) -> Problems:
    if count.smallest_norm_area == 1 and spec.batch_size == 1:
        _, height, width = facts.input_shape
        return [("batch_size", f"must be at least 2: {spec.model} on {height}x{width} inputs "
                               f"has a BatchNorm over 1x1 maps, which needs more than one value "
                               f"per channel to train")]
    return []


def _service_fields(spec: JobSpec, service: ServiceContext) -> Problems:
    # At its default a server field may be sent: a job's own config can be submitted again.
    problems = [(name, "is set by the worker that runs the job; leave it out")
                for name in SERVER_FIELDS
                if name in spec.model_fields_set and getattr(spec, name) != field_default(name)]
    if spec.dataset in catalog.FOLDER_DATASETS and spec.data_dir:
        names = [f.data_dir for f in service.folders_of(spec.dataset)]
        if spec.data_dir not in names:
            available = (f"available: {', '.join(sorted(names))}" if names else
                         "none is reported; put the files in a folder under a worker's data "
                         "root (PRUNEBOARD_DATA_ROOTS)")
            problems.append(("data_dir", f"no live worker has a {spec.dataset} folder named "
                                         f"{spec.data_dir!r}; {available}"))
    return problems


def _limits(spec: JobSpec, facts: catalog.DatasetFacts, count: ModelCount,
            service: ServiceContext) -> Problems:
    limits = service.limits
    problems = []
    params, flops = count.params, count.flops
    where = "mlp_widths" if spec.model == "mlp" else "model"
    if params > limits.max_model_params:
        problems.append((where, f"{spec.model} on this data has {params:,} parameters; this "
                                f"service allows at most {limits.max_model_params:,} "
                                f"(max_model_params)"))
    if flops > limits.max_model_flops:
        problems.append((where, f"{spec.model} on this data takes {flops:,} FLOPs per sample; "
                                f"this service allows at most {limits.max_model_flops:,} "
                                f"(max_model_flops)"))
    memory = count.activation_bytes(spec.batch_size)
    if memory > limits.max_activation_bytes:
        problems.append(("batch_size", f"{spec.model} at batch {spec.batch_size} on this data "
                                       f"needs about {memory:,} bytes of activations "
                                       f"({memory / 2**30:,.1f} GiB); this service allows at "
                                       f"most {limits.max_activation_bytes:,} "
                                       f"(max_activation_bytes)"))
    steps = spec.epochs * (facts.train_size // spec.batch_size)
    if steps > limits.max_total_steps:
        problems.append(("epochs", f"{spec.epochs} epochs of {facts.train_size // spec.batch_size}"
                                   f" steps are {steps:,} steps; this service allows at most "
                                   f"{limits.max_total_steps:,} (max_total_steps)"))
    if spec.dataset == "synthetic":
        values = math.prod(spec.synthetic_shape) * (spec.synthetic_size
                                                    + spec.synthetic_size // 4)
        if values > limits.max_synthetic_values:
            problems.append(("synthetic_size", f"{spec.synthetic_size:,} samples of "
                             f"{'x'.join(map(str, spec.synthetic_shape))} are {values:,} "
                             f"numbers with the test set; this service allows at most "
                             f"{limits.max_synthetic_values:,} (max_synthetic_values)"))
    return problems


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
