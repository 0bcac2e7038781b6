"""Glue for community LocalStack: job runs execute their script for real; the rest is moto.

LocalStack ships moto (moto-ext) and can call it in-process; community LocalStack just has no
provider that routes Glue there. Registered as ``glue:default``, this one makes Glue part of
the gateway, so Step Functions' glue:startJobRun(.sync) and glue:startCrawler integrations
and any SDK talk to it at the same endpoint as every other service. moto stores everything
(catalog, jobs, runs, crawlers) and validates requests.

Job runs are real. StartJobRun lets moto create the run (it merges DefaultArguments, the
run's Arguments and NonOverridableArguments, records NumberOfWorkers/WorkerType and enforces
ExecutionProperty.MaxConcurrentRuns), then a thread of ours downloads the job's
Command.ScriptLocation and every ``--extra-py-files`` entry from LocalStack's S3 into
``$ETL_GLUE_WORK_DIR/<job>/<run id>/`` and starts, as a host process,

    $ETL_GLUE_PYTHON <script> --JOB_NAME <job> --JOB_RUN_ID <run id> --key value ...

with the extra-py-files on PYTHONPATH (zips import as they are), AWS_ENDPOINT_URL pointing at
this gateway, test credentials and the request's region; stdout and stderr go to files in the
work dir. The run's state is the process's: STARTING while the files download, RUNNING, then
SUCCEEDED (exit 0), FAILED (non-zero exit; ErrorMessage is the script's exception line), TIMEOUT
(the run's or job's Timeout, in minutes) or STOPPED (BatchStopJobRun). moto's own
advance-on-read is switched off for these runs, so GetJobRun(s), the .sync integration (which
polls GetJobRun through the gateway) and job-status-checker all see the real state. A job
whose script is not an s3:// object in LocalStack fails its run with "script not found: ...".

A crawl moves on only when moto's ListCrawls reads it; here GetCrawler(s) do that too, so a
workflow polling the crawler's State sees RUNNING and then READY, as in AWS.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from datetime import datetime
from itertools import dropwhile
from pathlib import Path
from typing import Any

from localstack import config
from localstack.aws.api import CommonServiceException
from localstack.aws.skeleton import Skeleton
from localstack.aws.spec import load_service
from localstack.services.moto import call_moto
from localstack.services.plugins import Service, ServiceLifecycleHook

LOG = logging.getLogger(__name__)

# Glue's default job timeout, in minutes.
DEFAULT_TIMEOUT_MINUTES = 2880
# How long a stopped run's process gets after SIGTERM before SIGKILL.
STOP_GRACE_SECONDS = 5.0
# ErrorMessage is bounded like Glue's (which truncates long driver errors).
ERROR_MESSAGE_LIMIT = 2000
# How much of the end of stderr is searched for the error.
STDERR_TAIL_BYTES = 64 * 1024
# Spark's log4j lines (yy/MM/dd HH:mm:ss LEVEL ...) are noise around a Python traceback.
_LOG4J_LINE = re.compile(r"^\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} [A-Z]+ ")
ACTIVE_STATES = ("STARTING", "RUNNING", "STOPPING")

# Processes of runs in flight, so that a LocalStack exit never leaves them behind.
_PROCESSES: set[subprocess.Popen] = set()
_PROCESSES_LOCK = threading.Lock()


@atexit.register
def _kill_all() -> None:
    with _PROCESSES_LOCK:
        for proc in list(_PROCESSES):
            proc.kill()


def _to_moto(context, request):
    return call_moto(context)


# --- crawlers ---------------------------------------------------------------------------------


def _advance_crawls(context, names=None) -> None:
    backend = _backend(context)
    for name, crawler in list(backend.crawlers.items()):
        if (names is None or name in names) and crawler.crawls:
            last = crawler.crawls[-1]
            if last.status in ("RUNNING", "STOPPING"):
                last.advance()


def _get_crawler(context, request):
    _advance_crawls(context, {request.get("Name")})
    return call_moto(context)


def _get_crawlers(context, request):
    _advance_crawls(context)
    return call_moto(context)


# --- job runs ---------------------------------------------------------------------------------


def _backend(context):
    from moto.glue.models import glue_backends

    return glue_backends[context.account_id][context.region]


def _now() -> datetime:
    from moto.core.utils import utcnow

    return utcnow()  # naive UTC, as moto's own timestamps


class _RunFailed(Exception):
    """The run cannot start; the message becomes its ErrorMessage."""


@functools.cache
def _executed_run_class() -> type:
    from moto.glue.models import FakeJobRun

    class ExecutedJobRun(FakeJobRun):
        """A moto job run whose state is set by the process running it, never by reads."""

        def as_dict(self) -> dict[str, Any]:
            out = super().as_dict()
            end = self.completed_on if self.finished else None
            if end is None:
                out.pop("CompletedOn", None)
            out["ExecutionTime"] = int(((end or _now()) - self.started_on).total_seconds())
            out["GlueVersion"] = self.glue_version
            out.pop("LogGroupName", None)  # moto's placeholder; the logs are files here
            if self.error_message:
                out["ErrorMessage"] = self.error_message
            return out

        def set_state(self, state: str, error_message: str | None = None) -> None:
            self.status = state
            self.modified_on = _now()
            if state not in ACTIVE_STATES:
                self.completed_on = self.modified_on
                self.finished = True
            if error_message:
                self.error_message = error_message

    return ExecutedJobRun


def _start_job_run(context, request):
    # moto validates, enforces MaxConcurrentRuns, merges the arguments and stores the run.
    response = call_moto(context)
    run_id = response["JobRunId"]
    job = _backend(context).get_job(request["JobName"])
    # Not job.get_job_run(): that "advances" the run, which moto would turn into RUNNING.
    run = next(r for r in job.job_runs if r.job_run_id == run_id)
    run.__class__ = _executed_run_class()
    run._transitions = []  # moto moves it no more; only set_state does
    run._status = "STARTING"
    run.finished = False
    run.error_message = None
    run.glue_version = job.glue_version or "5.0"
    run.process = None
    run.stop_requested = False
    run.lock = threading.Lock()
    launch = {
        "job": job.name,
        "command": dict(job.command or {}),
        "arguments": dict(run.arguments or {}),
        "timeout_minutes": run.timeout or DEFAULT_TIMEOUT_MINUTES,
        "account": context.account_id,
        "region": context.region,
    }
    threading.Thread(
        target=_execute, args=(run, launch), name=f"glue-run-{run_id[:16]}", daemon=True
    ).start()
    return response


def _execute(run, launch: dict) -> None:
    """Prepare, run and watch one job run's process; record its outcome on the moto run."""
    try:
        argv, env, work_dir = _prepare(run.job_run_id, launch)
    except _RunFailed as e:
        LOG.warning("Glue run %s of %s failed to start: %s", run.job_run_id, launch["job"], e)
        run.set_state("FAILED", _bounded(str(e)))
        return
    except Exception as e:  # noqa: BLE001 - any error must end the run, not leave it STARTING
        LOG.exception("Glue run %s of %s: could not start", run.job_run_id, launch["job"])
        run.set_state("FAILED", _bounded(f"could not start the job script: {e}"))
        return

    stdout, stderr = work_dir / "stdout.log", work_dir / "stderr.log"
    with run.lock:
        if run.stop_requested:
            run.set_state("STOPPED")
            return
        try:
            with stdout.open("wb") as out, stderr.open("wb") as err:
                proc = subprocess.Popen(
                    argv, cwd=work_dir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
                )
        except OSError as e:  # e.g. ETL_GLUE_PYTHON names no executable
            run.set_state("FAILED", _bounded(f"could not start {argv[0]}: {e}"))
            return
        run.process = proc
        with _PROCESSES_LOCK:
            _PROCESSES.add(proc)
        run.set_state("RUNNING")
    LOG.info(
        "Glue run %s of %s: pid %d runs %s in %s (stdout.log, stderr.log there)",
        run.job_run_id, launch["job"], proc.pid, argv[0], work_dir,
    )  # fmt: skip

    timed_out = False
    try:
        code = proc.wait(timeout=launch["timeout_minutes"] * 60)
    except subprocess.TimeoutExpired:
        timed_out = True
        _terminate(proc)
        code = proc.wait()
    with _PROCESSES_LOCK:
        _PROCESSES.discard(proc)

    if run.stop_requested:
        run.set_state("STOPPED")
    elif timed_out:
        minutes = launch["timeout_minutes"]
        run.set_state("TIMEOUT", f"Job run timed out after {minutes} minutes")
    elif code == 0:
        run.set_state("SUCCEEDED")
    else:
        run.set_state("FAILED", _script_error(stderr, code))
    LOG.info(
        "Glue run %s of %s: %s (exit %s; stderr: %s)",
        run.job_run_id, launch["job"], run._status, code, stderr,
    )  # fmt: skip


def _prepare(run_id: str, launch: dict) -> tuple[list[str], dict[str, str], Path]:
    """Download the script and extra-py-files; return (argv, environment, work dir)."""
    root = Path(os.environ.get("ETL_GLUE_WORK_DIR") or Path(config.dirs.tmp) / "glue-runs")
    work_dir = root / launch["job"] / run_id
    (work_dir / "tmp").mkdir(parents=True, exist_ok=True)
    s3 = _s3_client(launch["account"], launch["region"])

    script = launch["command"].get("ScriptLocation") or ""
    if not script.startswith("s3://"):
        raise _RunFailed(f"script not found: {script!r} (ScriptLocation must be an s3:// object)")
    script_path = work_dir / (script.rsplit("/", 1)[-1] or "script.py")
    _download(s3, script, script_path, "script not found")

    arguments = launch["arguments"]
    python_path: list[str] = []
    extra = [p.strip() for p in arguments.get("--extra-py-files", "").split(",") if p.strip()]
    for i, location in enumerate(extra):
        if not location.startswith("s3://"):
            raise _RunFailed(f"--extra-py-files: {location!r} is not an s3:// object")
        name = location.rsplit("/", 1)[-1]
        # A .py is imported from its directory; other files (zips) are put on the path as is.
        target_dir = work_dir / "py-files" / str(i)
        _download(s3, location, target_dir / name, "--extra-py-files: not found")
        entry = str(target_dir) if name.endswith(".py") else str(target_dir / name)
        python_path.append(entry)

    python = _job_python()
    argv = [python, str(script_path), "--JOB_NAME", launch["job"], "--JOB_RUN_ID", run_id]
    for key, value in arguments.items():
        argv += [key, value]

    port = config.GATEWAY_LISTEN[0].port
    account = launch["account"]
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOME": str(work_dir),
        "TMPDIR": str(work_dir / "tmp"),
        "PYTHONPATH": os.pathsep.join(python_path),
        "PYTHONUNBUFFERED": "1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        # LocalStack maps a 12-digit access key to that account and "test" to the default.
        "AWS_ACCESS_KEY_ID": "test" if account == "000000000000" else account,
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": launch["region"],
        "AWS_DEFAULT_REGION": launch["region"],
        # Spark's Python workers must be the driver's Python; the driver binds to loopback.
        "PYSPARK_PYTHON": python,
        "PYSPARK_DRIVER_PYTHON": python,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    if os.environ.get("JAVA_HOME"):
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    return argv, env, work_dir


@functools.cache
def _job_python() -> str:
    python = os.environ.get("ETL_GLUE_PYTHON")
    if python:
        return python
    LOG.warning(
        "ETL_GLUE_PYTHON is not set: Glue job scripts run with LocalStack's own Python (%s), "
        "which has no pyspark; tests/localstack/localstack.sh sets it to the Spark venv's",
        sys.executable,
    )
    return sys.executable


def _s3_client(account: str, region: str):
    from localstack.aws.connect import connect_to

    return connect_to(aws_access_key_id=account, region_name=region).s3


def _download(s3, location: str, target: Path, what: str) -> None:
    from botocore.exceptions import ClientError

    bucket, _, key = location.removeprefix("s3://").partition("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        s3.download_file(bucket, key, str(target))
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "error")
        reason = "no such object" if code in ("404", "NoSuchKey", "NoSuchBucket") else code
        raise _RunFailed(f"{what}: {location} ({reason})") from e


def _script_error(stderr: Path, code: int) -> str:
    """The script's error from the end of its stderr: the last Python exception (type and
    message), else the last line that is not Spark's logging."""
    with stderr.open("rb") as f:
        f.seek(max(0, stderr.stat().st_size - STDERR_TAIL_BYTES))
        text = f.read().decode("utf-8", "replace")
    lines = [line.rstrip() for line in text.splitlines()]
    lines = [line for line in lines if line.strip() and not _LOG4J_LINE.match(line)]
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call")]
    if starts:
        # Frames and their source lines are indented; the exception follows them.
        message = "\n".join(dropwhile(lambda l: l.startswith(" "), lines[starts[-1] + 1 :]))
    else:
        message = lines[-1] if lines else ""
    if not message:
        message = f"the job script exited with code {code} and left no error on stderr"
    return _bounded(message)


def _bounded(message: str) -> str:
    if len(message) <= ERROR_MESSAGE_LIMIT:
        return message
    return message[: ERROR_MESSAGE_LIMIT - 1] + "…"


def _terminate(proc: subprocess.Popen) -> None:
    """SIGTERM now, SIGKILL after the grace period (in the background)."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)

    def kill_later() -> None:
        try:
            proc.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()

    threading.Thread(target=kill_later, daemon=True).start()


def _batch_stop_job_run(context, request):
    job_name = request["JobName"]
    job = _backend(context).jobs.get(job_name)
    if job is None:
        raise CommonServiceException("EntityNotFoundException", f"Job {job_name} not found")
    runs = {run.job_run_id: run for run in job.job_runs}
    stopped, errors = [], []
    for run_id in request["JobRunIds"]:
        run = runs.get(run_id)
        if run is None or not hasattr(run, "set_state"):
            errors.append(_stop_error(job_name, run_id, "EntityNotFoundException", "not found"))
            continue
        with run.lock:
            if run._status not in ACTIVE_STATES:
                errors.append(
                    _stop_error(job_name, run_id, "InvalidInputException", f"run is {run._status}")
                )
                continue
            run.stop_requested = True
            run.set_state("STOPPING")
            if run.process is not None:
                _terminate(run.process)
            # A run not yet started sees stop_requested before it starts its process.
        stopped.append({"JobName": job_name, "JobRunId": run_id})
    return {"SuccessfulSubmissions": stopped, "Errors": errors}


def _stop_error(job: str, run_id: str, code: str, message: str) -> dict:
    return {
        "JobName": job,
        "JobRunId": run_id,
        "ErrorDetail": {"ErrorCode": code, "ErrorMessage": f"Job run {run_id}: {message}"},
    }


def create_glue_service() -> Service:
    spec = load_service("glue")
    dispatch = {operation: _to_moto for operation in spec.operation_names}
    dispatch["GetCrawler"] = _get_crawler
    dispatch["GetCrawlers"] = _get_crawlers
    dispatch["StartJobRun"] = _start_job_run
    dispatch["BatchStopJobRun"] = _batch_stop_job_run
    return Service(
        name="glue",
        skeleton=Skeleton(spec, dispatch),
        lifecycle_hook=ServiceLifecycleHook(),
    )
