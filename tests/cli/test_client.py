"""The CLI's HTTP client against real servers: the Pruneboard API served from a thread, and a
bare SSE server that drops its connections (the network faults the reconnect logic is for)."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest
import uvicorn

from cli.client import ApiClient, parse_sse
from cli.errors import UsageError


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def api(tmp_path, sqlite_url):
    """The real API on SQLite, no worker: jobs stay queued, which is all these tests need."""
    from backend.auth import create_token
    from backend.db import session_scope
    from backend.main import create_app
    from backend.settings import Settings

    settings = Settings(data_dir=tmp_path, database_url=sqlite_url)
    with session_scope(sqlite_url) as session:
        tokens = {scope: create_token(session, name=f"{scope}-user", scope=scope)
                  for scope in ("read", "submit", "admin")}
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", tokens
    server.should_exit = True
    thread.join(10)


def message(call) -> str:
    with pytest.raises(UsageError) as caught:
        call()
    return str(caught.value)


def test_api_errors_become_one_line_messages(api):
    url, tokens = api
    with ApiClient(url) as anonymous:
        assert message(lambda: anonymous.get("/jobs")).startswith(
            "not authenticated: missing token")
    with ApiClient(url, tokens["read"]) as reader:
        assert message(lambda: reader.post("/jobs", {"epochs": 3})) == (
            "permission denied: this needs a submit token; yours is read")
    with ApiClient(url, tokens["submit"]) as client:
        assert message(lambda: client.get("/jobs/999")) == "job 999 not found"
        invalid = message(lambda: client.post("/jobs", {"epochs": 0, "lr": 0.1}))
        assert invalid.startswith("invalid request: epochs: ")
        assert invalid.endswith("epochs: must be in [1, 10000], got 0")
        job = client.post("/jobs", {"model": "mlp", "epochs": 3, "tags": ["t"]})
        assert client.post(f"/jobs/{job['id']}/cancel")["status"] == "cancelled"
        assert message(lambda: client.post(f"/jobs/{job['id']}/cancel")) == (
            f"job {job['id']} is already cancelled")
        too_large = message(lambda: client.post("/jobs", {"name": "x" * 2_000_000}))
        assert too_large.startswith("request too large: request body over")


def test_url_and_token_come_from_the_environment(api, monkeypatch):
    url, tokens = api
    monkeypatch.setenv("PRUNEBOARD_URL", url + "/")
    monkeypatch.setenv("PRUNEBOARD_TOKEN", tokens["read"])
    with ApiClient() as client:
        assert client.url == url
        assert client.get("/jobs", status="queued") == {"items": [], "total": 0, "limit": 50,
                                                        "offset": 0}


def test_an_unreachable_api_names_the_url_and_the_fix():
    url = f"http://127.0.0.1:{free_port()}"
    expected = f"cannot reach the Pruneboard API at {url}: is `pruneboard up` running?"
    with ApiClient(url, "pb_a_b") as client:
        assert message(lambda: client.get("/jobs")) == expected
        assert message(lambda: list(client.events("/events"))) == expected
    assert message(lambda: ApiClient("localhost:8000")) == (
        "invalid API URL 'localhost:8000': give it as http://HOST:PORT")


def test_parse_sse_keeps_whole_events_only():
    wire = ["retry: 250", "", ": keep-alive", "", "id: 7", "event: log", "data: {\"a\": 1}",
            "data: more", "", "data: plain", "", "id: 8", "event: metrics", "data: {\"cut"]
    retries = []
    events = list(parse_sse(iter(wire), on_retry=retries.append))
    assert [(e.id, e.event, e.data) for e in events] == [
        ("7", "log", "{\"a\": 1}\nmore"), ("7", "message", "plain")]
    assert retries == [250]


class _FlakySSE(http.server.BaseHTTPRequestHandler):
    """First connection: two events, then the connection breaks inside a chunk. Second: the
    third event, then a clean close without "end". Third: "end"."""

    def do_GET(self):
        self.server.last_event_ids.append(self.headers.get("Last-Event-ID"))
        attempt = len(self.server.last_event_ids)
        self.close_connection = True
        if attempt == 1:
            self.protocol_version = "HTTP/1.1"
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            body = (b"retry: 10\n\nid: 1\nevent: metrics\ndata: {\"step\": 1}\n\n"
                    b"id: 2\nevent: metrics\ndata: {\"step\": 2}\n\nid: 3\nevent: metr")
            self.wfile.write(b"%x\r\n%s" % (len(body) + 50, body))  # promises more than it sends
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        if attempt == 2:
            self.wfile.write(b"retry: 10\n\nid: 3\nevent: metrics\ndata: {\"step\": 3}\n\n")
        else:
            self.wfile.write(b"id: 4\nevent: end\ndata: {}\n\n")

    def log_message(self, *args):
        pass


def test_events_reconnect_with_last_event_id_and_lose_nothing():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FlakySSE)
    server.last_event_ids = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with ApiClient(f"http://127.0.0.1:{server.server_address[1]}", "pb_a_b") as client:
            events = list(client.events("/jobs/1/events", until="end"))
    finally:
        server.shutdown()
        server.server_close()
    assert [(e.id, e.event) for e in events] == [
        ("1", "metrics"), ("2", "metrics"), ("3", "metrics"), ("4", "end")]
    assert server.last_event_ids == [None, "2", "3"]


class AnswerDroppingProxy:
    """A TCP proxy in front of the API that forwards the first ``drop`` requests but closes the
    connection instead of returning their answers: the server did the work, the client never
    heard (the fault a client's retry must survive without doing the work twice)."""

    def __init__(self, upstream_port: int, drop: int = 1):
        self.upstream_port, self.drop, self.forwarded = upstream_port, drop, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        with client:
            while (request := _read_http_message(client)) is not None:
                with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                    upstream.sendall(request)
                    answer = _read_http_message(upstream)
                self.forwarded += 1
                if self.forwarded <= self.drop or answer is None:
                    return  # the answer is lost with the connection
                client.sendall(answer)

    def close(self) -> None:
        self.listener.close()


def _read_http_message(connection: socket.socket) -> bytes | None:
    """One HTTP/1.1 message with a Content-Length body (all the API and httpx send here)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        body += connection.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_submit_whose_answer_is_lost_is_retried_and_creates_one_job(api):
    url, tokens = api
    proxy = AnswerDroppingProxy(int(url.rsplit(":", 1)[1]), drop=1)
    try:
        with ApiClient(url=f"http://127.0.0.1:{proxy.port}", token=tokens["submit"]) as client:
            job = client.create("/jobs", {"model": "mlp", "name": "once"})
        assert proxy.forwarded == 2  # the first answer was dropped, the retry answered
        with ApiClient(url=url, token=tokens["read"]) as reader:
            named = reader.get("/jobs", q="once")
        assert [item["id"] for item in named["items"]] == [job["id"]]
    finally:
        proxy.close()
