"""A minimal Lambda Runtime API server (2018-06-01) for one execution environment.

The bootstrap process long-polls ``/runtime/invocation/next``; the executor queues an
invocation and waits on its future, which ``/response`` or ``/error`` completes. One server
(one loopback port) per environment, because AWS_LAMBDA_RUNTIME_API is host:port only.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = logging.getLogger(__name__)

PREFIX = "/2018-06-01/runtime"


@dataclass
class PendingInvocation:
    request_id: str
    payload: bytes
    function_arn: str
    trace_id: str
    deadline_ms: int
    # (is_error, body) once the runtime posts a response or an error.
    result: Future = field(default_factory=Future)


class RuntimeApi:
    """Serves the Runtime API on 127.0.0.1:<ephemeral port> until ``close``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.polled = threading.Event()  # the runtime has asked for work at least once
        self.init_error: Future = Future()  # set if the runtime posts /init/error
        self._queue: queue.Queue[PendingInvocation | None] = queue.Queue()
        self._in_flight: dict[str, PendingInvocation] = {}
        self._lock = threading.Lock()
        api = self

        class Handler(_Handler):
            runtime_api = api

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            name=f"lambda-runtime-api-{name}",
            daemon=True,
        )
        self._thread.start()

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def submit(self, invocation: PendingInvocation) -> None:
        self._queue.put(invocation)

    def fail_in_flight(self, body: dict) -> None:
        """Complete every invocation handed out but not answered (the runtime died)."""
        with self._lock:
            pending, self._in_flight = list(self._in_flight.values()), {}
        for inv in pending:
            if not inv.result.done():
                inv.result.set_result((True, json.dumps(body).encode()))

    def drain_queue(self) -> None:
        """Drop invocations not yet picked up (a new process starts with an empty queue)."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def close(self) -> None:
        self._queue.put(None)  # wakes a blocked /next so the server thread can stop
        self._server.shutdown()
        self._server.server_close()

    # Called by the handler threads.
    def _next(self) -> PendingInvocation | None:
        self.polled.set()
        inv = self._queue.get()
        if inv is not None:
            with self._lock:
                self._in_flight[inv.request_id] = inv
        return inv

    def _complete(self, request_id: str, is_error: bool, body: bytes) -> bool:
        with self._lock:
            inv = self._in_flight.pop(request_id, None)
        if inv is None:
            return False
        if not inv.result.done():
            inv.result.set_result((is_error, body))
        return True


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive: the Rust runtime client reuses its connection.
    protocol_version = "HTTP/1.1"
    runtime_api: RuntimeApi

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        LOG.debug("runtime-api %s: " + format, self.runtime_api.name, *args)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # trailers end with an empty line
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _status_json(self, status: int, error_type: str, message: str) -> None:
        body = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
        self._send(status, body, {"Content-Type": "application/json"})

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self.path != f"{PREFIX}/invocation/next":
            self._status_json(HTTPStatus.NOT_FOUND, "NotFound", self.path)
            return
        inv = self.runtime_api._next()
        if inv is None:
            self._status_json(HTTPStatus.GONE, "Shutdown", "execution environment stopped")
            self.close_connection = True
            return
        self._send(
            HTTPStatus.OK,
            inv.payload,
            {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": inv.function_arn,
                "Lambda-Runtime-Trace-Id": inv.trace_id,
            },
        )

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        body = self._read_body()
        path = self.path
        if path == f"{PREFIX}/init/error":
            if not self.runtime_api.init_error.done():
                self.runtime_api.init_error.set_result(body)
            self._send(HTTPStatus.ACCEPTED, b'{"status":"OK"}')
            return
        prefix = f"{PREFIX}/invocation/"
        if path.startswith(prefix):
            request_id, _, action = path[len(prefix) :].partition("/")
            if action in ("response", "error"):
                if self.runtime_api._complete(request_id, action == "error", body):
                    self._send(HTTPStatus.ACCEPTED, b'{"status":"OK"}')
                else:
                    self._status_json(
                        HTTPStatus.BAD_REQUEST,
                        "InvalidRequestID",
                        f"unknown or already answered request id {request_id}",
                    )
                return
        self._status_json(HTTPStatus.NOT_FOUND, "NotFound", path)
