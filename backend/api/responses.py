"""The error responses a route documents: ``responses=errors(401, 404, 422)``.

Every error body is one of two shapes (backend.schemas): a 422 lists the bad fields,
``{"detail": [{"field", "message", "allowed"?}]}``; any other error is ``{"detail": "..."}``.
"""

from __future__ import annotations

from typing import Any

from backend.schemas import ErrorOut, ValidationErrorOut

_WHY = {
    401: "no token or browser session, or one that is unknown, revoked or expired",
    403: "the token's scope is too small, the job is someone else's, or a cookie-signed write "
         "came from another origin",
    404: "no such job (or artifact, or token)",
    409: "the job's state does not allow this",
    410: "the file changed on disk since it was recorded",
    413: "the request body is over the service's limit",
    422: "a field of the body, query, path, header or cookie is refused",
    429: "the owner's quota of queued and running work is full (see Retry-After)",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ValidationErrorOut if code == 422 else ErrorOut,
                   "description": _WHY[code]} for code in codes}
