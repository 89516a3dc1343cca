"""`pruneboard config-spec`: print the job spec as JSON (what GET /api/v1/config-spec serves).

Without a service behind it, the document lists no worker data folders and the default limits.
"""

from __future__ import annotations

import json


def register(commands) -> None:
    parser = commands.add_parser("config-spec", help="print the job spec (JSON Schema, sections, "
                                 "limits, presets) as JSON", description=__doc__.splitlines()[0])
    parser.set_defaults(run=run)


def run(args) -> int:
    from pruneboard.spec import config_document

    print(json.dumps(config_document(), indent=2, ensure_ascii=False))
    return 0
