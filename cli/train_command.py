"""`pruneboard train`: one job in the foreground with a progress bar and a summary table.

Its flags are generated from the job spec's fields (``--batch-size`` for ``batch_size``), so
they always mirror the config that a config file, the API and the engine take; building the
parser imports only the torch-free spec.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import tempfile
from pathlib import Path

import yaml

from cli.errors import UsageError


def register(commands) -> None:
    from pruneboard.spec import JobSpec, allowed_range

    parser = commands.add_parser("train", help="run one training/pruning job here",
                                 description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="YAML or JSON file of config fields; "
                        "flags given beside it win")
    parser.add_argument("--out", type=Path, help="write every event as a JSON line to this file")
    parser.add_argument("--resume", type=Path, help="continue from this checkpoint (file or "
                        "checkpoint folder)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    for name, field in JobSpec.model_fields.items():
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=argparse.SUPPRESS,
                            help=flag_help(name, field, allowed_range(JobSpec, name)),
                            **_flag_kind(field.get_default(call_default_factory=True,
                                                           validated_data={}), name))
    parser.set_defaults(run=run)


def flag_help(name: str, field, allowed: str | None) -> str:
    """The spec's description, its range and its default: what --help shows for the flag."""
    default = field.get_default(call_default_factory=True, validated_data={})
    shown = ",".join(map(str, default)) if isinstance(default, tuple | list) else default
    return f"{field.description} ({allowed + '; ' if allowed else ''}default {shown})"


def _flag_kind(default, name: str) -> dict:
    if default is None:
        # An optional field: a number when its schema is one (model_version, image_size).
        from pruneboard.spec import JobSpec
        from pruneboard.spec.schema import property_schema

        prop = property_schema(JobSpec, name) or {}
        if prop.get("type") in ("integer", "number"):
            return {"type": _number, "metavar": name.upper()}
    if isinstance(default, bool):
        return {"action": argparse.BooleanOptionalAction}
    if isinstance(default, tuple | list):
        return {"type": _list, "metavar": name.upper()}
    if isinstance(default, int | float):
        return {"type": _number, "metavar": name.upper()}
    return {"type": _text, "metavar": name.upper()}


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from pruneboard.spec import JobSpec, describe, one_line

    values = _read_config_file(args.config) if args.config else {}
    values.update({name: getattr(args, name) for name in JobSpec.model_fields
                   if hasattr(args, name)})
    try:
        config = JobSpec.model_validate(values)
    except ValidationError as error:
        raise UsageError(f"invalid {one_line(describe(error, JobSpec)[0])}") from None
    with contextlib.ExitStack() as stack:
        if _analyses_follow(config) and not config.checkpoint_dir:
            # The analysis reads the final weights of the run and its twin from a checkpoint.
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="pruneboard-"))
            config = config.replace(checkpoint_dir=folder)
        _train(config, args)
        if _analyses_follow(config):
            _analyze(config, quiet=args.quiet)
    return 0


def _decode_image_folder(config) -> None:
    """Decode an image folder into its cache first, under a progress bar of its own: the run's
    load then only opens the cache. Nothing happens when the cache is there already."""
    if config.dataset != "imagefolder" or not config.data_dir \
            or not Path(config.data_dir).expanduser().is_dir():
        return  # the run's own load says what is wrong
    from tqdm import tqdm

    from pruning.data import DatasetError, read_imagefolder

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="image", desc="decoding images", dynamic_ncols=True,
                       file=sys.stderr)
        bar.update(done - bar.n)

    try:
        read_imagefolder(Path(config.data_dir).expanduser(), image_size=config.image_size,
                         progress=progress)
    except DatasetError as error:
        raise UsageError(f"invalid data_dir: {error}") from None
    finally:
        if bar is not None:
            bar.close()


def _analyses_follow(config) -> bool:
    return config.reference != "none" and bool(config.analyses)


def _train(config, args: argparse.Namespace) -> None:
    from cli.progress import ProgressPrinter
    from pruning.checkpoint import CheckpointError
    from pruning.config import ConfigError
    from pruning.train import TrainingError, train

    try:
        events_file = args.out.open("w") if args.out else None
    except OSError as error:
        raise UsageError(f"cannot write {args.out}: {error.strerror}") from None
    printer = ProgressPrinter(enabled=not args.quiet)
    if not args.quiet:
        _decode_image_folder(config)

    def on_event(event: dict) -> None:
        if events_file:
            events_file.write(json.dumps(event) + "\n")
            events_file.flush()
        printer(event)

    try:
        summary = train(config, on_event, resume_from=args.resume)
    except OSError as error:
        raise UsageError(f"cannot write {error.filename or 'a file'}: "
                         f"{error.strerror or error}") from None
    except ConfigError as error:
        raise UsageError(f"invalid {error.field}: {error.message}") from None
    except (CheckpointError, TrainingError) as error:
        raise UsageError(str(error)) from None
    finally:
        printer.close()
        if events_file:
            events_file.close()
    print(printer.summary_table(summary))
    if args.out:
        print(f"events written to {args.out}")


def _analyze(config, *, quiet: bool) -> None:
    """The loss-valley analysis of the run against its twin, as a worker runs it."""
    from tqdm import tqdm

    from cli.analyze_command import format_result
    from pruning.checkpoint import checkpoint_path
    from pruning.valley.analysis_run import AnalysisError, run_valley_analysis

    with tqdm(total=100, unit="%", file=sys.stderr, disable=quiet,
              desc="loss-valley analysis") as bar:
        def progress(fraction: float, message: str) -> None:
            bar.update(round(100 * fraction) - bar.n)
            bar.set_postfix_str(message, refresh=False)

        try:
            result = run_valley_analysis(config, checkpoint=checkpoint_path(config.checkpoint_dir),
                                         options={"kinds": list(config.analyses)},
                                         on_progress=progress)
        except AnalysisError as error:
            raise UsageError(str(error)) from None
    print(format_result(result))


def _number(text: str):
    # The spec checks types and ranges and names the field; here numbers just become numbers.
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _list(text: str) -> list:
    """Comma-separated values (a shape may also be written 3x32x32)."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if len(items) == 1 and "x" in items[0] and items[0].replace("x", "").isdigit():
        items = items[0].split("x")
    return [_number(item) for item in items]


def _text(text: str) -> str | None:
    return None if text.lower() in ("none", "null") else text


class _ConfigLoader(yaml.SafeLoader):
    """YAML 1.1 reads 5e-3 (no dot) as a string; people write learning rates that way, so
    numbers in exponent form are floats here, as in YAML 1.2 and JSON."""


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789."))


def _read_config_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read config file {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise UsageError(f"config file {path} is not UTF-8 text (byte {error.start})") from None
    try:
        values = json.loads(text) if path.suffix == ".json" else yaml.load(text, _ConfigLoader)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        reason = " ".join(str(error).split())  # one line: YAML's message spans several
        raise UsageError(f"config file {path} is not valid {path.suffix[1:] or 'YAML'}: "
                         f"{reason}") from None
    if not isinstance(values, dict):
        raise UsageError(f"config file {path} must hold a mapping of config fields")
    return values
