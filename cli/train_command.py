"""`pruneboard train`: one job in the foreground with a progress bar and a summary table.

Its flags are generated from ``TrainConfig``'s fields (``--batch-size`` for ``batch_size``), so
they always mirror the config that a config file, the API and the engine take.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import yaml

from cli.errors import UsageError


def register(commands) -> None:
    # The flags come from the config spec (JSON, kept equal to TrainConfig by a test), so
    # building the parser for any command does not import torch.
    from backend.job_spec import allowed_range, load_spec

    parser = commands.add_parser("train", help="run one training/pruning job here",
                                 description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="YAML or JSON file of config fields; "
                        "flags given beside it win")
    parser.add_argument("--out", type=Path, help="write every event as a JSON line to this file")
    parser.add_argument("--resume", type=Path, help="continue from this checkpoint (file or "
                        "checkpoint folder)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    for field in load_spec():
        name, default = field["name"], field["default"]
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        allowed = allowed_range(field)
        help_text = f"{field['help']} ({allowed + '; ' if allowed else ''}default {shown})"
        if field["type"] == "bool":
            parser.add_argument("--" + name.replace("_", "-"), dest=name,
                                action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument("--" + name.replace("_", "-"), dest=name,
                                type=_number if field["type"] in ("int", "float") else _text,
                                default=argparse.SUPPRESS, metavar=name.upper(),
                                help=help_text)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pruning.config import ConfigError, TrainConfig

    values = _read_config_file(args.config) if args.config else {}
    values.update({f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                   if hasattr(args, f.name)})
    try:
        config = TrainConfig.from_dict(values)
    except ConfigError as error:
        raise UsageError(f"invalid {error.field}: {error.message}") from None
    with contextlib.ExitStack() as stack:
        if _analyses_follow(config) and not config.checkpoint_dir:
            # The analysis reads the final weights of the run and its twin from a checkpoint.
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="pruneboard-"))
            config = dataclasses.replace(config, checkpoint_dir=folder)
        _train(config, args)
        if _analyses_follow(config):
            _analyze(config, quiet=args.quiet)
    return 0


def _analyses_follow(config) -> bool:
    return config.reference != "none" and bool(config.analyses)


def _train(config, args: argparse.Namespace) -> None:
    from cli.progress import ProgressPrinter
    from pruning.checkpoint import CheckpointError
    from pruning.config import ConfigError
    from pruning.train import TrainingError, train

    events_file = args.out.open("w") if args.out else None
    printer = ProgressPrinter(enabled=not args.quiet)

    def on_event(event: dict) -> None:
        if events_file:
            events_file.write(json.dumps(event) + "\n")
            events_file.flush()
        printer(event)

    try:
        summary = train(config, on_event, resume_from=args.resume)
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
    from pruning.analysis_run import AnalysisError, run_valley_analysis
    from pruning.checkpoint import checkpoint_path

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
    # The config checks types and ranges and names the field; here numbers just become numbers.
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _text(text: str) -> str | None:
    return None if text.lower() in ("none", "null") else text


def _read_config_file(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as error:
        raise UsageError(f"cannot read config file {path}: {error.strerror}") from None
    try:
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise UsageError(f"config file {path} is not valid {path.suffix[1:] or 'YAML'}: "
                         f"{error}") from None
    if not isinstance(values, dict):
        raise UsageError(f"config file {path} must hold a mapping of config fields")
    return values
