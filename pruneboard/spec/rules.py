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
from pruneboard.spec.service import ServiceContext, StoredModel, service_of
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
    stored, model_problems = _model_of(spec, service)
    problems += model_problems
    if service is not None:
        problems += _service_fields(spec, service)
    facts = None if problems else dataset_facts(spec, service)
    if service is not None and not problems and facts is None:
        problems += _folder_shape(spec, service)
    if facts is not None:
        problems += _fits_data(spec, facts, stored)
        if not problems and spec.model in catalog.MODELS:
            count = count_model(spec.model, facts.input_shape, facts.num_classes,
                                spec.mlp_widths)
            problems += _trains(spec, facts, count)
            if service is not None and not problems:
                problems += _limits(spec, facts, count.params, count.flops,
                                    count.activation_bytes(spec.batch_size), service)
        elif not problems and stored is not None and service is not None:
            problems += _limits(spec, facts, stored.params, stored.flops,
                                3 * 4 * spec.batch_size * stored.outputs, service)
    refuse(problems)


def _model_of(spec: JobSpec, service: ServiceContext | None
              ) -> tuple[StoredModel | None, Problems]:
    """The pushed model the job names (None for a built-in or a plugin's), and what is wrong
    with the model fields. Without a service a name that is not built in is left to the engine:
    a notebook passes its own module, a plugin registers one on this machine."""
    builtin = spec.model in catalog.MODELS
    problems: Problems = []
    if builtin and spec.model_version is not None:
        problems.append(("model_version", f"{spec.model} is built in and has no versions; "
                                          f"leave model_version out"))
    if builtin and spec.init == "pretrained":
        problems.append(("init", f"{spec.model} is built in and has no trained weights; leave "
                                 f"init out (random)"))
    if builtin or service is None:
        return None, problems
    stored = service.stored_model(spec.model, spec.model_version)
    if stored is None and spec.model in service.plugin_models:
        # A plugin builds its network fresh on the worker, like a built-in.
        if spec.model_version is not None:
            problems.append(("model_version", f"{spec.model} comes from a worker plugin and has "
                                              f"no versions; leave model_version out"))
        if spec.init == "pretrained":
            problems.append(("init", f"{spec.model} comes from a worker plugin, which builds it "
                                     f"with fresh weights; leave init out (random)"))
        return None, problems
    if stored is None:
        versions = sorted(m.version for m in service.models if m.name == spec.model)
        if versions:
            problems.append(("model_version", f"{spec.model} has no ready version "
                                              f"{spec.model_version}; ready: "
                                              f"{', '.join(map(str, versions))}"))
        else:
            pushed = sorted({m.name for m in service.models} | set(service.plugin_models))
            problems.append(("model", f"no model named {spec.model!r}: built in are "
                                      f"{', '.join(catalog.MODELS)}"
                                      + (f"; pushed or from plugins: {', '.join(pushed)}"
                                         if pushed else "")
                                      + " (a pushed model is usable once it is ready)"))
        return None, problems
    if spec.init == "pretrained" and not stored.has_weights:
        problems.append(("init", f"{stored.name} version {stored.version} was pushed without "
                                 f"weights; use init random (or push weights)"))
    return stored, problems


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
            if folder.mixed_sizes and spec.image_size is None:
                return None  # _folder_shape says why
            return folder.facts(spec.image_size)
    return None


def _folder_shape(spec: JobSpec, service: ServiceContext) -> Problems:
    for folder in service.folders_of(spec.dataset):
        if folder.data_dir == spec.data_dir and folder.mixed_sizes:
            return [("image_size", f"the images in {spec.data_dir} differ in size; set "
                                   f"image_size to resize them to one side")]
    return []


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


def _fits_data(spec: JobSpec, facts: catalog.DatasetFacts, stored: StoredModel | None
               ) -> Problems:
    problems = []
    _, height, width = facts.input_shape
    side = catalog.MIN_INPUT_SIDE.get(spec.model, 1)
    if height < side or width < side:
        where = "synthetic_shape" if spec.dataset == "synthetic" else "model"
        problems.append((where, f"{spec.model} needs inputs of at least {side}x{side}; "
                                f"{spec.dataset} has {height}x{width}"))
    if stored is not None and tuple(stored.input_shape) != tuple(facts.input_shape):
        problems.append(("model", f"{stored.name} version {stored.version} takes inputs of "
                                  f"{_shape(stored.input_shape)}; {spec.dataset} has "
                                  f"{_shape(facts.input_shape)}"))
    if stored is not None and stored.num_classes != facts.num_classes:
        problems.append(("model", f"{stored.name} version {stored.version} has "
                                  f"{stored.num_classes} outputs; {spec.dataset} has "
                                  f"{facts.num_classes} classes"))
    if spec.dataset == "synthetic" and spec.synthetic_size < spec.synthetic_classes:
        problems.append(("synthetic_size", f"must be at least synthetic_classes "
                                           f"({spec.synthetic_classes}), got "
                                           f"{spec.synthetic_size}"))
    if spec.batch_size > facts.train_size:
        problems.append(("batch_size", f"must be at most the {facts.train_size} training "
                                       f"samples of {spec.dataset}, got {spec.batch_size}"))
    return problems


def _shape(shape) -> str:
    return "x".join(map(str, shape))


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
    if spec.dataset not in catalog.DATASETS and spec.dataset not in service.plugin_datasets:
        plugins = (f"; from live workers' plugins: {', '.join(service.plugin_datasets)}"
                   if service.plugin_datasets else "")
        problems.append(("dataset", f"no dataset named {spec.dataset!r}: built in are "
                                    f"{', '.join(catalog.DATASETS)}{plugins}"))
    return problems


def _limits(spec: JobSpec, facts: catalog.DatasetFacts, params: int, flops: int, memory: int,
            service: ServiceContext) -> Problems:
    limits = service.limits
    problems = []
    where = "mlp_widths" if spec.model == "mlp" else "model"
    if params > limits.max_model_params:
        problems.append((where, f"{spec.model} on this data has {params:,} parameters; this "
                                f"service allows at most {limits.max_model_params:,} "
                                f"(max_model_params)"))
    if flops > limits.max_model_flops:
        problems.append((where, f"{spec.model} on this data takes {flops:,} FLOPs per sample; "
                                f"this service allows at most {limits.max_model_flops:,} "
                                f"(max_model_flops)"))
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
