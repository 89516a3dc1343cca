"""`pruneboard` entry point: one sub-command per module, errors as messages, not tracebacks."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from cli import (
    analyze_command,
    config_spec_command,
    export_command,
    jobs_commands,
    model_command,
    report_command,
    token_command,
    train_command,
    up_command,
    watch_command,
    worker_command,
)
from cli.errors import UsageError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pruneboard", description="Structured directional pruning: train, prune, compare.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train_command.register(commands)
    config_spec_command.register(commands)
    up_command.register(commands)
    jobs_commands.register(commands)
    watch_command.register(commands)
    report_command.register(commands)
    analyze_command.register(commands)
    export_command.register(commands)
    model_command.register(commands)
    token_command.register(commands)
    worker_command.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except UsageError as error:
        print(f"pruneboard: error: {error}", file=sys.stderr)
        return 2
    except ValidationError as error:
        # Settings read from PRUNEBOARD_* variables (a limit of "abc", say).
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        print(f"pruneboard: error: invalid setting {where} (PRUNEBOARD_"
              f"{where.upper().replace('.', '__')}): {first['msg']}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pruneboard: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
