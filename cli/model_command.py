"""`pruneboard model push | list | show | delete`: networks of one's own on the service.

A Python model is traced here (cli.model_trace) and sent as whitelisted graph JSON plus
safetensors weights; an ONNX file is sent as it is. A worker then inspects the version; jobs may
name it once it is ready.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from pathlib import Path

from cli.client import add_connection_flags, client_from_args
from cli.errors import UsageError
from cli.jobs_commands import format_table
from pruneboard.spec.catalog import NAME_PATTERN

UNFINISHED = ("queued", "running")
POLL_S = 0.5

PUSH_HELP = """\
Push a model of your own to the service as a new name, or as the next version of your own.

  pruneboard model push net.py:build --name mynet --input-shape 3,32,32 --weights net.safetensors
  pruneboard model push net.onnx --name mynet

FILE.py:FACTORY imports your file here (your code runs only on this machine), calls FACTORY (a
function or class returning the nn.Module), traces it with torch.fx and checks that only
whitelisted layers and functions are used, rebuilds it from the JSON and checks it gives the
same outputs, then uploads the graph JSON and (optionally) the weights as safetensors.
Weights: --weights W.safetensors loads that file into the model first (every key must match);
--with-weights sends the weights the factory's model already holds (a factory that loads a
checkpoint); with neither, only the architecture is sent and jobs train it from random weights.
An .onnx file is uploaded as it is and converted on a worker.

Then it waits for a worker to inspect the version and prints what it found (--no-wait: print
the version number and return). Exit status: 0 ready, 1 the inspection failed, 2 refused."""


def register(commands) -> None:
    parser = commands.add_parser("model", help="push your own network to the service; list, "
                                               "show, delete", description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="model_action", required=True, metavar="ACTION")
    push = actions.add_parser("push", help="upload a model (a .py factory or an .onnx file)",
                              description=PUSH_HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    push.add_argument("source", metavar="FILE.py:FACTORY|FILE.onnx")
    push.add_argument("--name", required=True, help="the model's name (lower-case letters, "
                                                    "digits, '.', '_', '-'); jobs use it")
    push.add_argument("--input-shape", metavar="C,H,W",
                      help="one input sample's shape (required for a .py model)")
    push.add_argument("--num-classes", type=int, metavar="K",
                      help="outputs the model must return (checked; default: what it returns)")
    weights = push.add_mutually_exclusive_group()
    weights.add_argument("--weights", type=Path, metavar="W.safetensors",
                         help="trained weights to load into the model and send")
    weights.add_argument("--with-weights", action="store_true",
                         help="send the weights the factory's model holds")
    push.add_argument("--factory-kwargs", metavar="JSON", default="{}",
                      help="keyword arguments for FACTORY, as a JSON object")
    push.add_argument("--no-wait", action="store_true",
                      help="return after the upload, without waiting for the inspection")
    push.add_argument("--timeout", type=float, default=300.0, metavar="S",
                      help="seconds to wait for the inspection (default 300)")
    add_connection_flags(push)
    push.set_defaults(run=run_push)

    listing = actions.add_parser("list", help="every pushed model with its newest version")
    listing.add_argument("--json", action="store_true", help="the API's JSON, for scripts")
    add_connection_flags(listing)
    listing.set_defaults(run=run_list)

    show = actions.add_parser("show", help="a model's versions and what their inspection found")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--version", type=int, metavar="V",
                      help="the version to detail (default: the newest)")
    show.add_argument("--json", action="store_true", help="the API's JSON, for scripts")
    add_connection_flags(show)
    show.set_defaults(run=run_show)

    delete = actions.add_parser("delete", help="delete a model and all its versions (owner "
                                               "or admin; refused while a job uses it)")
    delete.add_argument("name", metavar="NAME")
    add_connection_flags(delete)
    delete.set_defaults(run=run_delete)


def run_push(args: argparse.Namespace) -> int:
    _check_name(args.name, "--name")
    shape = _input_shape(args.input_shape)
    fields = {"name": args.name}
    if shape is not None:
        fields["input_shape"] = ",".join(map(str, shape))
    if args.num_classes is not None:
        if args.num_classes < 1:
            raise UsageError(f"--num-classes must be at least 1, got {args.num_classes}")
        fields["num_classes"] = str(args.num_classes)
    if args.source.lower().endswith(".onnx"):
        files = _onnx_files(args)
    else:
        files = _traced_files(args, shape)
    for field, (_, data, _) in files.items():
        fields[f"{field}_sha256"] = hashlib.sha256(data).hexdigest()
    with client_from_args(args) as client:
        version = client.upload("/models", fields, files)
        number = version["version"]
        print(f"pushed {args.name} version {number} ({version['status']})", file=sys.stderr,
              flush=True)
        if args.no_wait:
            print(number)
            return 0
        version = _wait(client, args.name, number, args.timeout)
    if version["status"] != "ready":
        print(f"pruneboard: error: model {args.name} version {number} {version['status']}: "
              f"{version.get('error') or 'no reason given'}", file=sys.stderr)
        return 1
    print(describe_version(args.name, version))
    return 0


def _onnx_files(args: argparse.Namespace) -> dict:
    for flag, value in (("--weights", args.weights), ("--with-weights", args.with_weights),
                        ("--factory-kwargs", args.factory_kwargs != "{}")):
        if value:
            raise UsageError(f"{flag} is for a Python model; an ONNX file carries its weights")
    path = Path(args.source)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    return {"onnx": (path.name, data, "application/octet-stream")}


def _traced_files(args: argparse.Namespace, shape) -> dict:
    from cli import model_trace  # torch: only when a Python model is pushed

    path, factory = model_trace.split_source(args.source)
    if shape is None:
        raise UsageError("--input-shape C,H,W is required for a Python model: the shape of one "
                         "input sample, e.g. 3,32,32")
    try:
        kwargs = json.loads(args.factory_kwargs)
    except json.JSONDecodeError as error:
        raise UsageError(f"--factory-kwargs is not JSON: {error}") from None
    if not isinstance(kwargs, dict):
        raise UsageError("--factory-kwargs must be a JSON object, e.g. '{\"width\": 16}'")
    model = model_trace.build_model(path, factory, kwargs)
    if args.weights is not None:
        model_trace.load_weights(model, args.weights)
    sent = args.weights is not None or args.with_weights
    traced = model_trace.trace(model, shape, with_weights=sent, num_classes=args.num_classes)
    print(f"traced {path.name}:{factory}: {traced.layers} layers, {traced.params:,} parameters, "
          f"{traced.outputs} outputs; the JSON rebuilds it exactly (largest difference "
          f"{traced.difference:.2g})" + ("" if sent else "; no weights sent"), file=sys.stderr,
          flush=True)
    files = {"graph": ("graph.json", traced.graph, "application/json")}
    if traced.weights is not None:
        files["weights"] = ("weights.safetensors", traced.weights, "application/octet-stream")
    return files


def _wait(client, name: str, number: int, timeout: float) -> dict:
    from tqdm import tqdm

    deadline = time.monotonic() + timeout
    with tqdm(total=None, file=sys.stderr, dynamic_ncols=True, bar_format="{desc} [{elapsed}]",
              desc=f"inspecting {name} version {number}") as spinner:
        while True:
            version = _version(client.get(f"/models/{name}"), number)
            spinner.set_description_str(f"inspecting {name} version {number}: "
                                        f"{version['status']}", refresh=True)
            if version["status"] not in UNFINISHED:
                return version
            if time.monotonic() > deadline:
                raise UsageError(f"model {name} version {number} is still {version['status']} "
                                 f"after {timeout:g} s (is a worker running?); it goes on: "
                                 f"see `pruneboard model show {name}`")
            time.sleep(POLL_S)


def run_list(args: argparse.Namespace) -> int:
    with client_from_args(args) as client:
        models = client.get("/models")["models"]
    if args.json:
        print(json.dumps(models, indent=2))
        return 0
    if not models:
        print("no models; push one with `pruneboard model push`")
        return 0
    rows = []
    for model in models:
        latest = model["latest"]
        found = latest.get("inspection") or {}
        rows.append((model["name"], model["owner"], str(model["versions"]),
                     f"v{latest['version']} {latest['status']}", _count(found.get("params")),
                     _count(found.get("flops"))))
    print(format_table(("name", "owner", "versions", "latest", "params", "FLOPs"), rows))
    return 0


def run_show(args: argparse.Namespace) -> int:
    _check_name(args.name, "NAME")
    with client_from_args(args) as client:
        model = client.get(f"/models/{args.name}")
    if args.json:
        print(json.dumps(model, indent=2))
        return 0
    versions = model["versions"]
    chosen = versions[0] if args.version is None else _version(model, args.version)
    print(f"model {model['name']}, owner {model['owner']}, {len(versions)} version"
          f"{'' if len(versions) == 1 else 's'}")
    print(format_table(("version", "format", "status", "input", "classes", "weights",
                        "params", "FLOPs", "pushed"), [
        (str(v["version"]), v["format"], v["status"], _shape(v["input_shape"]),
         str(v["num_classes"] or "-"), "yes" if v["has_weights"] else "no",
         _count((v["inspection"] or {}).get("params")),
         _count((v["inspection"] or {}).get("flops")), v["created_at"][:16].replace("T", " "))
        for v in versions]))
    print()
    print(describe_version(model["name"], chosen, layers=True))
    return 0


def run_delete(args: argparse.Namespace) -> int:
    _check_name(args.name, "NAME")
    with client_from_args(args) as client:
        client.request("DELETE", f"/models/{args.name}")
    print(f"model {args.name} deleted, with all its versions")
    return 0


def describe_version(name: str, version: dict, *, layers: bool = False) -> str:
    """What a version is and what its inspection found, as `key | value` lines."""
    found = version.get("inspection") or {}
    weights = "pushed" if version["has_weights"] else "none (jobs train it from random weights)"
    rows = [("model", f"{name} version {version['version']} ({version['format']}): "
                      f"{version['status']}"),
            ("input", f"{_shape(version['input_shape'])}, "
                      f"{version['num_classes'] or '?'} classes"),
            ("weights", weights)]
    if version.get("error"):
        rows.append(("error", version["error"]))
    if found:
        rows += [("parameters", _count(found.get("params"))),
                 ("FLOPs", f"{_count(found.get('flops'))} per sample"),
                 ("prunable", f"{found.get('groups', 0)} groups, {found.get('units', 0):,} "
                              f"units ({found.get('prunable_share', 0):.0%} of the conv "
                              f"weights)")]
        rows += [("dense" if i == 0 else "", f"{', '.join(d['layers'])}: {d['reason']}")
                 for i, d in enumerate(found.get("dense_layers") or ())]
        if layers:
            rows += [("layers" if i == 0 else "", f"{layer['name']} ({layer['type']}, "
                                                  f"{layer['params']:,} params)")
                     for i, layer in enumerate(found.get("layers") or ())]
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key.ljust(width)} | {value}" for key, value in rows)


def _version(model: dict, number: int) -> dict:
    for version in model["versions"]:
        if version["version"] == number:
            return version
    raise UsageError(f"model {model['name']} has no version {number} (it has "
                     f"{', '.join(str(v['version']) for v in model['versions'])})")


def _check_name(name: str, flag: str) -> None:
    # Checked before the name goes into a URL path or before a long trace; the API checks it too.
    if not re.fullmatch(NAME_PATTERN, name):
        raise UsageError(f"{flag}: {name!r} is not a model name: lower-case letters, digits, "
                         f"'.', '_' and '-', starting with a letter or digit, at most 64")


def _input_shape(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    parts = text.replace(" ", "").split(",")
    if len(parts) != 3 or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise UsageError(f"--input-shape must be C,H,W: three whole numbers of at least 1 "
                         f"(e.g. 3,32,32), got {text!r}")
    return tuple(int(p) for p in parts)


def _shape(shape) -> str:
    return "x".join(map(str, shape)) if shape else "-"


def _count(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"
