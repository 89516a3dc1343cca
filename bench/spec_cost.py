"""What the one job spec costs where a user waits: importing it, and validating a job body.

1. Import, each in a fresh interpreter (median of 5): `import pruneboard.spec` (the API, the
   CLI's parser and the form read this) against `import torch` (what `import pruning.config`
   cost before the spec was torch-free) and `import fastapi` as a yardstick.
2. Validation of the digits demo's body as the API does it, `JobSubmission.model_validate_json`
   with a service context (rules between fields, model size and limits included), against
   parsing the same bytes with `json.loads` alone; median of 2,000 calls, after a warm-up.

    .venv/bin/python bench/spec_cost.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

IMPORTS = {"pruneboard.spec": "import pruneboard.spec", "torch": "import torch",
           "fastapi": "import fastapi"}


def import_seconds(statement: str, repeats: int = 5) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    return statistics.median(
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout) for _ in range(repeats))


def call_seconds(function, calls: int = 2000) -> float:
    for _ in range(100):
        function()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    from pruneboard.spec import JobSubmission, ServiceContext
    from pruneboard.spec.presets import PRESETS

    imports = {name: import_seconds(statement) for name, statement in IMPORTS.items()}
    print("| import | median s | vs pruneboard.spec |\n| --- | --- | --- |")
    for name, seconds in imports.items():
        print(f"| {name} | {seconds:.3f} | {seconds / imports['pruneboard.spec']:.1f}× |")

    body = json.dumps(PRESETS[0]["values"]).encode()
    context = {"service": ServiceContext()}
    validate = call_seconds(lambda: JobSubmission.model_validate_json(body, context=context))
    parse = call_seconds(lambda: json.loads(body))
    print("\n| per request | median µs | ratio |\n| --- | --- | --- |")
    print(f"| json.loads of the digits demo body | {parse * 1e6:.1f} | 1.0× |")
    print(f"| JobSubmission.model_validate_json (service rules) | {validate * 1e6:.1f} | "
          f"{validate / parse:.1f}× |")


if __name__ == "__main__":
    main()
