"""A fault-injecting HTTP proxy in front of LocalStack, for tests (stdlib only).

Functions pointed at it (e.g. `AWS_ENDPOINT_URL_S3=http://127.0.0.1:<port>`) see a chosen
share of their requests to a service fail, the ways S3 fails in production:

- `slowdown`: 503 with S3's `SlowDown` XML error, the request not executed;
- `internal`: 500 with S3's `InternalError` XML error, the request not executed;
- `reset`: for a GetObject, the real response's headers and part of its body, then the
  connection is reset (the SDK has already returned the response: the body read fails).

Whether a request fails is a pure function of (seed, method, path + query, Range header,
how many times that same request was seen before), not of arrival order, so a failing run
reproduces with its seed even though requests interleave differently: the Nth retry of a
request meets the same fate each time. The service is read from the SigV4 credential scope
(`Credential=<key>/<date>/<region>/<service>/aws4_request`). Every injected fault is
recorded in `faults` (what, where, which attempt) for the test's report.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

KINDS = ("slowdown", "internal", "reset")
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
# Hop-by-hop headers (RFC 9110 7.6.1) are not forwarded; nor is Expect: this side
# already answered 100 Continue (http.server does).
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "expect"}

_ERRORS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
}


@dataclass(frozen=True)
class Fault:
    service: str
    method: str
    target: str
    attempt: int
    kind: str


@dataclass
class Plan:
    """Which requests fail: `rates` maps a service name (as in the SigV4 scope) to the
    share of its requests that fail. With `first_attempts`, every request of those services
    also fails the first time it is seen (so every call site meets a fault and its retry)."""

    seed: int
    rates: dict[str, float]
    first_attempts: bool = False
    seen: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def decide(self, service: str, method: str, target: str, byte_range: str, is_get_object: bool) -> tuple[int, str | None]:
        """(attempt number of this request, fault kind or None)."""
        identity = f"{method} {target} {byte_range}"
        with self.lock:
            self.seen[identity] += 1
            attempt = self.seen[identity]
        rate = self.rates.get(service, 0.0)
        if rate <= 0:
            return attempt, None
        digest = hashlib.sha256(f"{self.seed}|{identity}|{attempt}".encode()).digest()
        draw, pick = struct.unpack(">QQ", digest[:16])
        if draw / 2**64 >= rate and not (self.first_attempts and attempt == 1):
            return attempt, None
        # Resets only where a body is streamed back; elsewhere the two error responses.
        kinds = KINDS if is_get_object else KINDS[:2]
        return attempt, kinds[pick % len(kinds)]


def _is_get_object(method: str, path: str, query: str) -> bool:
    """A path-style GET of an object (bucket and key), not a listing or a sub-resource."""
    parts = path.lstrip("/").split("/", 1)
    sub_resources = ("uploads", "uploadId", "tagging", "acl", "versions", "list-type", "location")
    return method == "GET" and len(parts) == 2 and parts[1] != "" and not any(s in query for s in sub_resources)


class FaultProxy:
    """A threaded proxy on 127.0.0.1 (an ephemeral port) in front of `upstream`."""

    def __init__(self, upstream: str, seed: int, rates: dict[str, float] | None = None):
        up = urlsplit(upstream)
        self.upstream = (up.hostname or "127.0.0.1", up.port or 80)
        self.plan = Plan(seed, dict(rates or {}))
        self.faults: list[Fault] = []
        self.requests: Counter = Counter()
        # Requests per first path segment (the bucket, for path-style S3).
        self.by_bucket: Counter = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet: the faults list is the record
                pass

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                body = self._body()
                split = urlsplit(self.path)
                scope = _SCOPE.search(self.headers.get("Authorization", ""))
                service = scope.group(1) if scope else "unknown"
                get_object = _is_get_object(self.command, split.path, split.query)
                attempt, kind = proxy.plan.decide(
                    service, self.command, self.path, self.headers.get("Range", ""), get_object
                )
                with proxy._lock:
                    proxy.requests[service] += 1
                    proxy.by_bucket[split.path.lstrip("/").split("/", 1)[0]] += 1
                    if kind:
                        proxy.faults.append(Fault(service, self.command, self.path, attempt, kind))
                if kind in _ERRORS:
                    status, code, message = _ERRORS[kind]
                    payload = (
                        '<?xml version="1.0" encoding="UTF-8"?>\n'
                        f"<Error><Code>{code}</Code><Message>{message}</Message>"
                        f"<RequestId>fault-{attempt}</RequestId></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                status, reason, headers, data = self._forward(body)
                if kind == "reset" and len(data) > 1:
                    self._reset_after(status, reason, headers, data[: len(data) // 2], len(data))
                    return
                self.send_response(status, reason)
                for name, value in headers:
                    if name.lower() not in _HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                if self.command == "HEAD":
                    length = next((v for n, v in headers if n.lower() == "content-length"), "0")
                    self.send_header("Content-Length", length)
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=120)
                try:
                    # The body was de-chunked: its length replaces whatever framing came in
                    # (case-insensitively, or two Content-Length headers reach LocalStack).
                    headers = {
                        k: v for k, v in self.headers.items() if k.lower() not in _HOP and k.lower() != "content-length"
                    }
                    headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    return response.status, response.reason, response.getheaders(), data
                finally:
                    conn.close()

            def _reset_after(self, status, reason, headers, part: bytes, full_length: int) -> None:
                self.send_response(status, reason)
                for name, value in headers:
                    if name.lower() not in _HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(full_length))
                self.end_headers()
                self.wfile.write(part)
                self.wfile.flush()
                # SO_LINGER 0: close() sends a TCP RST, as a dropped connection does.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def set_rates(self, rates: dict[str, float], first_attempts: bool = False) -> None:
        self.plan.rates = dict(rates)
        self.plan.first_attempts = first_attempts

    def summary(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(f.kind for f in self.faults))

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
