"""A small HTTP client of the Pruneboard API for the CLI.

Every failure becomes a one-line `UsageError` (exit status 2) that says what to do, never a
traceback: the CLI's users are people at a terminal and shell scripts reading stderr.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from cli.errors import UsageError
from pruneboard.spec.errors import one_line

DEFAULT_URL = "http://127.0.0.1:8000"
API_PREFIX = "/api/v1"
# Answers that mean "not handled, try again" (a proxy or an API restarting); ApiClient.create
# retries them, and dropped connections, with the same Idempotency-Key.
RETRIED_STATUSES = frozenset({502, 503, 504})
RETRY_DELAY_S = 0.5
# A model upload may carry hundreds of megabytes of weights that the server checks before it
# answers.
UPLOAD_READ_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event; ``data`` is the raw text (JSON for every Pruneboard stream)."""

    id: str | None
    event: str
    data: str


def add_connection_flags(parser) -> None:
    parser.add_argument("--url", help=f"API address (env PRUNEBOARD_URL; default {DEFAULT_URL})")
    parser.add_argument("--token", help="API token pb_… (env PRUNEBOARD_TOKEN)")


def client_from_args(args) -> ApiClient:
    return ApiClient(url=getattr(args, "url", None), token=getattr(args, "token", None))


class ApiClient:
    def __init__(self, url: str | None = None, token: str | None = None,
                 timeout: float = 30.0):
        self.url = _checked_url(url or os.environ.get("PRUNEBOARD_URL") or DEFAULT_URL)
        self.token = token or os.environ.get("PRUNEBOARD_TOKEN") or None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(base_url=self.url + API_PREFIX, headers=headers,
                                  timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise self._transport_error(error) from None
        if response.is_error:
            raise api_error(response)
        return response

    def get(self, path: str, **params) -> Any:
        params = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=params).json()

    def post(self, path: str, body: Any = None) -> Any:
        response = self.request("POST", path, json=body)
        return response.json() if response.content else None

    def create(self, path: str, body: Any, *, retries: int = 3) -> Any:
        """POST that creates something, with an ``Idempotency-Key``: a request whose answer
        was lost (a dropped connection, a 502/503/504 from a proxy or a restarting API) is sent
        again with the same key, and the service answers with what the first one created
        instead of creating it twice."""
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        for attempt in range(retries + 1):
            last = attempt == retries
            try:
                response = self._http.request("POST", path, json=body, headers=headers)
            except httpx.TransportError as error:
                if last:
                    raise self._transport_error(error) from None
            else:
                if response.status_code not in RETRIED_STATUSES or last:
                    if response.is_error:
                        raise api_error(response)
                    return response.json()
            time.sleep(RETRY_DELAY_S * 2 ** attempt)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def upload(self, path: str, fields: dict[str, str],
               files: dict[str, tuple[str, bytes, str]]) -> Any:
        """A multipart/form-data POST: ``fields`` as form fields, ``files`` as
        {field: (file name, bytes, content type)}. Sent once, never retried: the model
        endpoint takes no Idempotency-Key, so a resent push would become a second version. The
        answer comes only after the server has read and checked every file, hence the long
        read timeout."""
        return self.request("POST", path, data=fields, files=files,
                            timeout=httpx.Timeout(30.0, read=UPLOAD_READ_TIMEOUT_S)).json()

    def iter_text(self, path: str) -> Iterator[str]:
        """A large text response (a CSV export) in chunks, never whole in memory."""
        try:
            with self._http.stream("GET", path) as response:
                if response.is_error:
                    response.read()
                    raise api_error(response)
                yield from response.iter_text()
        except httpx.TransportError as error:
            raise self._transport_error(error) from None

    def iter_bytes(self, path: str) -> Iterator[tuple[httpx.Response, bytes]]:
        """A file download in chunks, each with the response (for its headers)."""
        try:
            with self._http.stream("GET", path) as response:
                if response.is_error:
                    response.read()
                    raise api_error(response)
                for chunk in response.iter_bytes():
                    yield response, chunk
        except httpx.TransportError as error:
            raise self._transport_error(error) from None

    def _transport_error(self, error: httpx.TransportError) -> UsageError:
        if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
            return UsageError(f"cannot reach the Pruneboard API at {self.url}: "
                              f"is `pruneboard up` running?")
        return UsageError(f"lost the connection to the Pruneboard API at {self.url}: "
                          f"{error.__class__.__name__} {error}".rstrip())

    def events(self, path: str, *, until: str | None = None, last_event_id: str | None = None,
               max_retries: int = 5) -> Iterator[Event]:
        """Yield the events of an SSE stream, reconnecting with Last-Event-ID when the
        connection drops, so a flaky network or a restarted API loses no event.

        Ends after an event named ``until`` (or when the server closes a stream that has no
        such event). ``max_retries`` consecutive reconnects without a single event give up.
        """
        failures = 0
        delay = {"s": 1.0}  # the server may change it with a `retry:` field

        def set_delay(ms: int) -> None:
            delay["s"] = ms / 1000

        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            got_any = False
            try:
                # The read timeout only has to outlast the server's keep-alive comments; a
                # silent, half-dead connection then reconnects instead of hanging forever.
                with self._http.stream("GET", path, headers=headers,
                                       timeout=httpx.Timeout(10.0, read=60.0)) as response:
                    if response.is_error:
                        response.read()
                        raise api_error(response)
                    for event in parse_sse(response.iter_lines(), on_retry=set_delay):
                        got_any = True
                        failures = 0
                        if event.id is not None:
                            last_event_id = event.id
                        yield event
                        if until is not None and event.event == until:
                            return
                if until is None:
                    return
            except httpx.TransportError as error:
                if not got_any and isinstance(error, httpx.ConnectError) and failures == 0 \
                        and last_event_id is None:
                    raise self._transport_error(error) from None
            failures = 0 if got_any else failures + 1
            if failures > max_retries:
                raise UsageError(f"the event stream {path} at {self.url} keeps dropping; "
                                 f"gave up after {max_retries} reconnects")
            time.sleep(min(delay["s"] * max(failures, 1), 10.0))


def _checked_url(url: str) -> str:
    # Caught here, or httpx reports a missing scheme as a protocol error mid-request.
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(f"invalid API URL {url!r}: give it as http://HOST:PORT")
    return str(parsed).rstrip("/")


def parse_sse(lines, on_retry=None) -> Iterator[Event]:
    """The SSE wire format (WHATWG HTML, "event stream interpretation"): fields until a blank
    line; an event cut off by a dropped connection is never yielded."""
    event_id, name, data = None, "", []
    for line in lines:
        if line == "":
            if data:
                yield Event(id=event_id, event=name or "message", data="\n".join(data))
            name, data = "", []
            continue
        if line.startswith(":"):
            continue  # a keep-alive comment
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
        elif field == "id" and "\0" not in value:
            event_id = value
        elif field == "retry" and value.isdigit() and on_retry is not None:
            on_retry(int(value))


def api_error(response: httpx.Response) -> UsageError:
    """The API's own words for an error status, in one line."""
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    status = response.status_code
    if status == 422 and isinstance(detail, list):
        return UsageError("invalid request: " + "; ".join(_field_error(d) for d in detail))
    text = detail if isinstance(detail, str) and detail else response.reason_phrase
    if status == 401:
        return UsageError(f"not authenticated: {text} (pass --token or set PRUNEBOARD_TOKEN; "
                          f"`pruneboard token create` makes one)")
    if status == 403:
        return UsageError(f"permission denied: {text}")
    if status == 413:
        return UsageError(f"request too large: {text}")
    if status >= 500:
        return UsageError(f"the API failed ({status} {response.reason_phrase}) on "
                          f"{response.request.method} {response.request.url.path}: {text}")
    return UsageError(text)


def _field_error(item: Any) -> str:
    # Pruneboard's own shape is {field, message, allowed}; FastAPI's default is {loc, msg}.
    if not isinstance(item, dict):
        return str(item)
    field = item.get("field") or ".".join(str(p) for p in item.get("loc", [])[1:]) or "body"
    message = item.get("message") or item.get("msg") or "invalid"
    return one_line({**item, "field": field, "message": message})
