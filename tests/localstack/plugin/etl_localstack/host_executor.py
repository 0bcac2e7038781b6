"""Runs provided.al2023 / provided.al2 Lambda functions as host processes (no Docker).

LocalStack's Lambda service creates one executor per execution environment and reuses a
started one for later invokes (warm start) until its keep-alive passes; this class only has
to start the function's ``bootstrap``, hand it invocations through the Runtime API, enforce
the timeout and return the output, formatted like Lambda's, as the invocation's logs (which
LocalStack then writes to CloudWatch Logs).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import signal
import subprocess
import threading
import time
import weakref
from collections import deque
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from pathlib import Path

from localstack import config
from localstack.services.lambda_.invocation.executor_endpoint import StatusErrorException
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)

from .runtime_api import PendingInvocation, RuntimeApi

LOG = logging.getLogger(__name__)

SUPPORTED_RUNTIMES = ("provided.al2023", "provided.al2", "provided")
# Output kept per environment for LocalStack's diagnostics (get_logs), in lines.
LOG_HISTORY_LINES = 2000
# How long a stopping bootstrap gets after SIGTERM before SIGKILL.
STOP_GRACE_SECONDS = 2.0

# Every live executor, so that a LocalStack exit never leaves bootstraps behind.
_LIVE: weakref.WeakSet[HostRuntimeExecutor] = weakref.WeakSet()


@atexit.register
def _kill_all() -> None:
    for executor in list(_LIVE):
        executor._kill()


def _readable(fd: int, timeout_s: float) -> bool:
    # poll, not select: LocalStack may hold more than FD_SETSIZE descriptors.
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(timeout_s * 1000))


def _error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class HostRuntimeExecutor(RuntimeExecutor):
    """One execution environment: one bootstrap process and its Runtime API server."""

    def __init__(self, id: str, function_version: FunctionVersion) -> None:  # noqa: A002
        super().__init__(id=id, function_version=function_version)
        self._env: dict[str, str] = {}
        self._proc: subprocess.Popen | None = None
        self._api: RuntimeApi | None = None
        self._stopped = threading.Event()
        self._exit_status: int | None = None
        # Output handling: read only under _out_lock so invoke() can drain the pipe fully.
        self._out_lock = threading.Lock()
        self._partial = b""
        self._history: deque[str] = deque(maxlen=LOG_HISTORY_LINES)
        self._pending_lines: list[str] = []  # since the last invocation's logs were taken
        self._init_duration_ms: float | None = None
        _LIVE.add(self)

    # --- version lifecycle (class level) ---------------------------------------------------

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        runtime = function_version.config.runtime
        if runtime not in SUPPORTED_RUNTIMES:
            raise LambdaRuntimeException(
                f"Runtime '{runtime or 'container image'}' is not supported by the host "
                f"executor (LAMBDA_RUNTIME_EXECUTOR=host): it runs only "
                f"{', '.join(SUPPORTED_RUNTIMES[:2])} functions whose zip has a 'bootstrap' "
                f"executable. Use LocalStack with Docker for other runtimes."
            )
        code = function_version.config.code
        if code is None:
            raise LambdaRuntimeException("Function has no code (image functions are unsupported)")
        code.prepare_for_execution()  # unpacks the zip (LocalStack does not do it for us)
        bootstrap = Path(code.get_unzipped_code_location()) / "bootstrap"
        if not bootstrap.is_file():
            raise LambdaRuntimeException(
                f"No 'bootstrap' file at the root of the function's code ({bootstrap.parent})"
            )
        if not os.access(bootstrap, os.X_OK):
            # Python's zipfile fallback drops the mode bits that the zip carries.
            bootstrap.chmod(bootstrap.stat().st_mode | 0o755)

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        pass

    @classmethod
    def validate_environment(cls) -> bool:
        return True

    # --- addresses --------------------------------------------------------------------------

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        # The function runs on this host: LocalStack is at 127.0.0.1, so LocalStack sets
        # AWS_ENDPOINT_URL=http://127.0.0.1:<gateway port> for it.
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        return f"http://127.0.0.1:{config.GATEWAY_LISTEN[0].port}/_localstack_lambda/{self.id}"

    # --- environment lifecycle --------------------------------------------------------------

    def _code_dir(self) -> Path:
        return Path(self.function_version.config.code.get_unzipped_code_location())

    def _process_env(self, api: RuntimeApi) -> dict[str, str]:
        code_dir = str(self._code_dir())
        tmp_dir = Path(config.dirs.tmp) / "lambda-host" / self.id
        tmp_dir.mkdir(parents=True, exist_ok=True)
        env = {key: str(value) for key, value in self._env.items() if value is not None}
        env.update(
            {
                "AWS_LAMBDA_RUNTIME_API": api.address,
                # /var/task does not exist on the host: point at the unpacked code instead.
                "LAMBDA_TASK_ROOT": code_dir,
                "LAMBDA_RUNTIME_DIR": code_dir,
                "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
                "LANG": os.environ.get("LANG", "C.UTF-8"),
                "HOME": str(tmp_dir),
                "TMPDIR": str(tmp_dir),
            }
        )
        # The function's own variables win, as in AWS (LocalStack already merged them last,
        # re-apply them over our host-specific values).
        for key, value in (self.function_version.config.environment or {}).items():
            env[key] = str(value)
        return env

    def _spawn(self) -> None:
        """Start the bootstrap and block until it polls for its first invocation."""
        if self._stopped.is_set():
            raise LambdaRuntimeException(f"Execution environment {self.id} was stopped")
        if self._api is not None:
            self._api.close()
        # A fresh server per process: a killed process may leave a /next handler blocked.
        self._api = api = RuntimeApi(f"{self.function_version.id.function_name}-{self.id[:8]}")
        bootstrap = self._code_dir() / "bootstrap"
        started = time.perf_counter()
        self._exit_status = None
        self._proc = proc = subprocess.Popen(
            [str(bootstrap)],
            cwd=str(self._code_dir()),
            env=self._process_env(api),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            close_fds=True,
        )
        LOG.debug(
            "Started bootstrap pid %s for %s (runtime api %s)",
            proc.pid,
            self.function_version.qualified_arn,
            api.address,
        )
        threading.Thread(
            target=self._pump_output, args=(proc,), name=f"lambda-out-{proc.pid}", daemon=True
        ).start()
        threading.Thread(
            target=self._watch, args=(proc, api), name=f"lambda-wait-{proc.pid}", daemon=True
        ).start()

        # Ready when the runtime asks for work; fail fast on init error, exit or stop.
        while not api.polled.wait(0.01):
            if api.init_error.done():
                body = api.init_error.result()
                self._kill()
                self._log_failure("init error", body)
                raise StatusErrorException("Runtime init error", payload=body)
            if proc.poll() is not None or self._stopped.is_set():
                self._drain_output()
                if self._stopped.is_set():
                    raise LambdaRuntimeException(f"Execution environment {self.id} was stopped")
                body = _error_body(
                    "Runtime.ExitError",
                    f"RequestId: {self.id} Error: Runtime exited with error: "
                    f"exit status {proc.returncode}",
                )
                self._log_failure("exit during init", body)
                raise StatusErrorException("Runtime exited during init", payload=body)
        self._init_duration_ms = (time.perf_counter() - started) * 1000

    def start(self, env_vars: dict[str, str]) -> None:
        self._env = dict(env_vars)
        self._spawn()

    def stop(self) -> None:
        self._stopped.set()
        self._kill()
        if self._api is not None:
            self._api.close()
        _LIVE.discard(self)

    def _kill(self, grace_s: float = STOP_GRACE_SECONDS) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            if grace_s > 0:
                proc.send_signal(signal.SIGTERM)
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        except ProcessLookupError:
            pass

    def _watch(self, proc: subprocess.Popen, api: RuntimeApi) -> None:
        """Answer invocations in flight if the process dies under them."""
        code = proc.wait()
        self._exit_status = code
        api.fail_in_flight(
            {
                "errorType": "Runtime.ExitError",
                "errorMessage": f"Runtime exited with error: exit status {code}",
            }
        )

    # --- output -----------------------------------------------------------------------------

    def _pump_output(self, proc: subprocess.Popen) -> None:
        fd = proc.stdout.fileno()
        while True:
            if not _readable(fd, 0.1):
                if proc.poll() is not None and not self._drain_output(fd):
                    break
                continue
            if not self._drain_output(fd):
                break
        try:
            proc.stdout.close()
        except OSError:
            pass

    def _drain_output(self, fd: int | None = None) -> bool:
        """Read whatever the pipe holds now; False at end of file."""
        if fd is None:
            if self._proc is None or self._proc.stdout.closed:
                return False
            fd = self._proc.stdout.fileno()
        with self._out_lock:
            got_any = True
            try:
                while _readable(fd, 0):
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        got_any = False
                        break
                    self._add_output(chunk)
            except (OSError, ValueError):
                return False
            return got_any

    def _add_output(self, chunk: bytes) -> None:
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip("\r")
            self._history.append(line)
            self._pending_lines.append(line)
            LOG.debug("[%s %s] %s", self.function_version.id.function_name, self.id[:8], line)

    def _take_lines(self) -> list[str]:
        with self._out_lock:
            if self._partial:
                self._add_output(b"\n")
            lines, self._pending_lines = self._pending_lines, []
            return lines

    def _log_failure(self, what: str, body: bytes) -> None:
        self._drain_output()
        tail = "\n".join(list(self._history)[-20:])
        LOG.warning(
            "Lambda %s %s: %s\n%s",
            self.function_version.qualified_arn,
            what,
            body.decode("utf-8", "replace"),
            tail,
        )

    def get_logs(self) -> str:
        self._drain_output()
        return "\n".join(self._history)

    # --- invocations ------------------------------------------------------------------------

    def _memory_used_mb(self) -> int:
        try:
            status = Path(f"/proc/{self._proc.pid}/status").read_text()
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    return max(1, int(line.split()[1]) // 1024)
        except (OSError, AttributeError, ValueError):
            pass
        return 0

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        request_id = payload["invoke-id"]
        timeout_s = float(self.function_version.config.timeout or 3)
        init_lines: list[str] = []
        init_ms = None

        if self._proc is None or self._proc.poll() is not None:
            # The last process timed out or crashed: start a new one (a cold start, as in AWS).
            try:
                self._spawn()
            except StatusErrorException as e:
                return InvocationResult(request_id, e.payload, is_error=True, logs="")
        if self._init_duration_ms is not None:
            init_ms, self._init_duration_ms = self._init_duration_ms, None
            init_lines = self._take_lines()

        started = time.perf_counter()
        invocation = PendingInvocation(
            request_id=request_id,
            payload=(payload.get("payload") or "").encode(),
            function_arn=payload["invoked-function-arn"],
            trace_id=payload.get("trace-id") or "",
            deadline_ms=int(time.time() * 1000 + timeout_s * 1000),
        )
        self._api.submit(invocation)
        extra: list[str] = []
        try:
            is_error, body = invocation.result.result(timeout=timeout_s)
        except FutureTimeout:
            # Lambda kills the sandbox on timeout; the next invoke starts a fresh process.
            self._kill(grace_s=0)
            is_error = True
            message = f"Task timed out after {timeout_s:.2f} seconds"
            body = _error_body("Sandbox.Timedout", f"RequestId: {request_id} Error: {message}")
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            extra.append(f"{now} {request_id} {message}")
        duration_ms = (time.perf_counter() - started) * 1000
        self._drain_output()
        if self._proc.poll() is not None and self._exit_status is not None and is_error:
            extra.append(
                f"RequestId: {request_id} Error: Runtime exited with error: "
                f"exit status {self._exit_status}"
            )

        version = self.function_version.id.qualifier
        memory = self.function_version.config.memory_size
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {int(duration_ms) + 1} ms\tMemory Size: {memory} MB\t"
            f"Max Memory Used: {self._memory_used_mb()} MB"
        )
        if init_ms is not None:
            report += f"\tInit Duration: {init_ms:.2f} ms"
        lines = [
            *init_lines,
            f"START RequestId: {request_id} Version: {version}",
            *self._take_lines(),
            *extra,
            f"END RequestId: {request_id}",
            report,
        ]
        return InvocationResult(request_id, body, is_error=is_error, logs="\n".join(lines) + "\n")
