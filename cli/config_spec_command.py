"""`pruneboard config-spec`: print the job config's fields as JSON.

The API may not import the engine, so it reads this output from backend/job_config_spec.json;
regenerate that file with `pruneboard config-spec > backend/job_config_spec.json` after changing
TrainConfig (a test fails while the two differ).
"""

from __future__ import annotations

import json


def register(commands) -> None:
    parser = commands.add_parser("config-spec", help="print the job config fields as JSON",
                                 description=__doc__.splitlines()[0])
    parser.set_defaults(run=run)


def run(args) -> int:
    from pruning.config import config_spec

    print(json.dumps(config_spec(), indent=2, ensure_ascii=False))
    return 0
