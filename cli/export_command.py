"""`pruneboard export ID --format safetensors|torchscript|onnx -o DIR`: download a job's
exported small model, checking every file against the SHA-256 the server recorded."""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

from cli.client import API_PREFIX, add_connection_flags, client_from_args
from cli.errors import UsageError
from pruneboard.status import JobStatus

FORMATS = ("safetensors", "torchscript", "onnx")
# The safetensors weights are useless without their JSON architecture: they travel together.
_FILES_OF = {"safetensors": ("safetensors", "json"), "torchscript": ("torchscript",),
             "onnx": ("onnx",)}


def register(commands) -> None:
    parser = commands.add_parser(
        "export", help="download a finished job's small (compacted) model",
        description="Download the physically pruned network a job exported: safetensors "
        "weights with a JSON architecture (load with pruning.load_compact(DIR), no pickle), "
        "TorchScript, or ONNX. Every file is checked against its SHA-256.")
    parser.add_argument("job_id", type=int, metavar="ID")
    parser.add_argument("--format", choices=FORMATS, default="safetensors",
                        help="which export (default safetensors)")
    parser.add_argument("-o", "--output", type=Path, default=Path("."), metavar="DIR",
                        help="folder to write into (created if missing; default: here)")
    add_connection_flags(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with client_from_args(args) as client:
        job = client.get(f"/jobs/{args.job_id}")
        artifacts = [a for a in client.get(f"/jobs/{args.job_id}/artifacts")
                     if a["format"] in _FILES_OF[args.format]]
        if not artifacts:
            raise UsageError(_nothing_to_export(job, args.format))
        args.output.mkdir(parents=True, exist_ok=True)
        for artifact in artifacts:
            target = args.output / _file_name(artifact["name"])
            _download(client, artifact, target)
            print(f"{target}  sha256 {artifact['sha256']}  {artifact['bytes']:,} bytes")
    if args.format == "safetensors":
        print(f"load it with: pruning.load_compact({str(args.output)!r})")
    return 0


def _download(client, artifact: dict, target: Path) -> None:
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    path = artifact["url"].removeprefix(API_PREFIX)
    try:
        with partial.open("wb") as file:
            for _, chunk in client.iter_bytes(path):
                digest.update(chunk)
                file.write(chunk)
        if digest.hexdigest() != artifact["sha256"]:
            raise UsageError(f"{artifact['name']} arrived with SHA-256 {digest.hexdigest()}, "
                             f"not the recorded {artifact['sha256']}; nothing was written")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _file_name(name: str) -> str:
    # The server names the files; a name must never lead outside the chosen folder.
    if not name or Path(name).name != name or name in (".", ".."):
        raise UsageError(f"the server sent an unusable file name {name!r}; nothing was written")
    return name


def _nothing_to_export(job: dict, fmt: str) -> str:
    if job["status"] != JobStatus.SUCCEEDED:
        return f"job {job['id']} is {job['status']}; the small model is exported when it succeeds"
    if not job["config"].get("compact", True):
        return f"job {job['id']} ran with compact false, so it exported no small model"
    if fmt == "onnx":
        return (f"job {job['id']} has no onnx export: its worker lacks the onnx extra "
                f"(pip install 'pruneboard[onnx]')")
    return f"job {job['id']} has no {fmt} export"
