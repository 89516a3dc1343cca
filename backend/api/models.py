"""Pushed models: upload a version (multipart), list, read, delete. The API stores and checks
the files (backend.services.model_uploads) but never runs them: a worker inspects each version
and marks it ready or failed."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Path, Response, UploadFile
from pydantic import StringConstraints

from backend.api.deps import Reader, SessionDep, SettingsDep, Submitter
from backend.api.responses import errors
from backend.api.spec_body import BodyRefused
from backend.queue import dispatch_now
from backend.schemas import ModelListOut, ModelOut, ModelSummaryOut, ModelVersionOut, version_out
from backend.services import models as service
from backend.services.dispatch import Message
from backend.services.model_uploads import Upload, check_files, check_name
from pruneboard.spec.catalog import NAME_PATTERN

router = APIRouter(prefix="/models", tags=["models"])

ModelName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=64,
                                description="the model's name (lower-case letters, digits, "
                                            "'.', '_', '-')")]
Sha256 = Annotated[str | None, Form(pattern=r"^[0-9a-fA-F]{64}$",
                                    description="hex SHA-256 the client computed; the upload "
                                                "is refused when the file does not match")]
Shape = Annotated[str, StringConstraints(pattern=r"^\s*\d{1,5}\s*,\s*\d{1,5}\s*,\s*\d{1,5}\s*$")]


@router.post("", status_code=201, response_model=ModelVersionOut,
             responses=errors(401, 403, 409, 413, 422))
def push_model(
    session: SessionDep, settings: SettingsDep, caller: Submitter,
    name: Annotated[str, Form(pattern=NAME_PATTERN, max_length=64,
                              description="the model's name; pushing it again adds a version")],
    input_shape: Annotated[Shape | None, Form(description="C,H,W of one input sample "
                                                          "(an ONNX file may fix it itself)")]
    = None,
    num_classes: Annotated[int | None, Form(ge=1, le=1_000_000, description="outputs; "
                                            "checked against the model's forward pass")] = None,
    graph: Annotated[UploadFile | None, File(description="the graph JSON (whitelisted layers "
                                                         "and functions only)")] = None,
    weights: Annotated[UploadFile | None, File(description="trained weights (.safetensors)")]
    = None,
    onnx: Annotated[UploadFile | None, File(description="an ONNX model instead of a graph")]
    = None,
    graph_sha256: Sha256 = None, weights_sha256: Sha256 = None, onnx_sha256: Sha256 = None,
) -> Any:
    """Push a model (a new name, or a new version of your own): a graph JSON plus optional
    safetensors weights, as `pruneboard model push` makes them, or an ONNX file. It is checked
    here without running anything, then a worker inspects it (status queued → ready or
    failed); jobs may name it once it is ready."""
    problems = check_name(name)
    shape = (tuple(int(d) for d in input_shape.split(",")) if input_shape else None)
    if shape is not None and min(shape) < 1:
        problems.append(("input_shape", "every dimension must be at least 1"))
    claimed = {"graph": graph_sha256, "weights": weights_sha256, "onnx": onnx_sha256}
    files = [Upload(kind, upload.file.read(), claimed[kind])
             for kind, upload in (("graph", graph), ("weights", weights), ("onnx", onnx))
             if upload is not None]
    if not problems:
        found, shape = check_files(files, shape)
        problems += found
    if problems:
        raise BodyRefused([{"field": field, "message": message} for field, message in problems])
    model = service.find_model(session, name)
    if model is not None and model.owner != caller.name and caller.scope != "admin":
        raise HTTPException(409, f"name: a model named {name!r} already belongs to "
                                 f"{model.owner}; choose another name")
    version = service.create_version(
        session, model, name=name, owner=caller.name,
        format="onnx" if any(f.kind == "onnx" for f in files) else "graph",
        input_shape=shape, num_classes=num_classes, files=files)
    session.commit()
    dispatch_now(settings, [Message("model", version.id)])
    session.refresh(version)
    return version_out(version)


@router.get("", response_model=ModelListOut, responses=errors(401, 422))
def list_models(session: SessionDep, caller: Reader) -> Any:
    """Every pushed model with its newest version."""
    return ModelListOut(models=[
        ModelSummaryOut(name=m.name, owner=m.owner, created_at=m.created_at,
                        versions=len(m.versions), latest=version_out(m.versions[0]))
        for m in service.list_models(session) if m.versions])


@router.get("/{name}", response_model=ModelOut, responses=errors(401, 404, 422))
def read_model(name: ModelName, session: SessionDep, caller: Reader) -> Any:
    """A model with all its versions, newest first, and what each inspection found."""
    model = _found(session, name)
    return ModelOut(name=model.name, owner=model.owner, created_at=model.created_at,
                    versions=[version_out(v) for v in model.versions])


@router.delete("/{name}", status_code=204, responses=errors(401, 403, 404, 409, 422))
def delete_model(name: ModelName, session: SessionDep, caller: Submitter) -> Response:
    """Delete a model and all its versions (its owner or an admin); refused while an
    unfinished job runs it. Finished jobs keep their numbers and exported files."""
    model = _found(session, name)
    if model.owner != caller.name and caller.scope != "admin":
        raise HTTPException(403, f"model {name} belongs to {model.owner}; only its owner or an "
                                 f"admin may delete it")
    using = service.jobs_using(session, name)
    if using:
        raise HTTPException(409, f"model {name} is used by unfinished jobs "
                                 f"{', '.join(map(str, using[:10]))}; cancel them first")
    session.delete(model)
    session.commit()
    return Response(status_code=204)


def _found(session, name: str):
    model = service.find_model(session, name)
    if model is None:
        raise HTTPException(404, f"no model named {name!r}")
    return model
