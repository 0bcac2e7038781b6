"""Publishing a staged run to S3 exactly as s3-processor publishes (functions/s3-processor/
src/publish.rs has the reasoning; this is the same protocol, so either engine finishes or
replaces what the other left):

- fixed keys per source object: data `<output_prefix><dataset>/<partitions>/<id>.parquet`,
  quarantine `<quarantine_prefix><dataset>/<id>.parquet`, manifest
  `<manifest_prefix><dataset>/<id>.json`;
- an intent record `<manifest_prefix>_publishing/<dataset>/<id>.json` first, naming what
  the run writes and what it retires (files of the previous manifest or of an interrupted
  attempt that it does not rewrite);
- then data, quarantine, deletion of retired files, the manifest (the commit), and the
  intent record is deleted.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

INTENT_VERSION = 1
DELETE_BATCH = 1000


class PublishError(Exception):
    """A record that cannot be trusted: nothing was published (s3-processor's
    InternalError); a person inspects it."""


@dataclass(frozen=True)
class Settings:
    processed_bucket: str
    quarantine_bucket: str
    output_prefix: str
    quarantine_prefix: str
    manifest_prefix: str


def with_slash(prefix: str) -> str:
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def parse_uri(text: str) -> tuple[str, str]:
    if isinstance(text, str) and text.startswith("s3://"):
        bucket, _, key = text[5:].partition("/")
        if bucket and key:
            return bucket, key
    raise ValueError(f"{text!r} is not s3://bucket/key")


class Layout:
    """Where one source object's files go."""

    def __init__(self, cfg: Settings, dataset: str, ident: str):
        self.cfg, self.dataset, self.id = cfg, dataset, ident

    def manifest(self) -> tuple[str, str]:
        return self.cfg.processed_bucket, f"{self.cfg.manifest_prefix}{self.dataset}/{self.id}.json"

    def intent(self) -> tuple[str, str]:
        return (self.cfg.processed_bucket,
                f"{self.cfg.manifest_prefix}_publishing/{self.dataset}/{self.id}.json")

    def quarantine(self) -> tuple[str, str]:
        return (self.cfg.quarantine_bucket,
                f"{self.cfg.quarantine_prefix}{self.dataset}/{self.id}.parquet")

    def data(self, rel_path: str) -> tuple[str, str]:
        return self.cfg.processed_bucket, f"{self.cfg.output_prefix}{self.dataset}/{rel_path}"

    def is_own_file(self, target: tuple[str, str]) -> bool:
        bucket, key = target
        in_bucket = bucket in (self.cfg.processed_bucket, self.cfg.quarantine_bucket)
        return in_bucket and key.rsplit("/", 1)[-1] == f"{self.id}.parquet"


def _corrupt(target: tuple[str, str], what: str, reason: str) -> PublishError:
    return PublishError(
        f"{uri(*target)} is not a {what} this job can read ({reason}). It names files an "
        "earlier run of this source wrote, so nothing was published rather than orphan or "
        "wrongly delete them: inspect it, remove the files it names, delete it, then "
        "reprocess the source")


def read_json(s3, target: tuple[str, str]) -> dict | None:
    try:
        body = s3.get_object(Bucket=target[0], Key=target[1])["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    except s3.exceptions.ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    try:
        value = json.loads(body)
    except ValueError as e:
        raise _corrupt(target, "record", f"not JSON: {e}") from e
    if not isinstance(value, dict):
        raise _corrupt(target, "record", "not a JSON object")
    return value


def manifest_files(manifest: dict) -> list[tuple[str, str]]:
    """The files a manifest lists: its outputs and its quarantine file."""
    outputs = manifest.get("outputs")
    if not isinstance(outputs, list):
        raise ValueError('no "outputs" list')
    files = []
    for i, o in enumerate(outputs):
        path = o.get("path") if isinstance(o, dict) else None
        if not isinstance(path, str):
            raise ValueError(f'outputs[{i}] has no "path"')
        try:
            files.append(parse_uri(path))
        except ValueError as e:
            raise ValueError(f"outputs[{i}]: {e}") from None
    q = manifest.get("quarantine")
    if q is not None:
        path = q.get("path") if isinstance(q, dict) else None
        if not isinstance(path, str):
            raise ValueError('"quarantine" has no "path"')
        try:
            files.append(parse_uri(path))
        except ValueError as e:
            raise ValueError(f"quarantine: {e}") from None
    return files


def newer_published(s3, layout: Layout, version_id: str | None,
                    last_modified: dt.datetime | None) -> str | None:
    """The newer version the published manifest names, if another version of the object
    written after `last_modified` is already published (s3-processor skips the older one
    so its rows never come back); versions within the same second are processed."""
    if not version_id or last_modified is None:
        return None
    target = layout.manifest()
    previous = read_json(s3, target)
    if previous is None:
        return None
    source = previous.get("source") or {}
    theirs = source.get("version_id")
    written = source.get("last_modified")
    if not isinstance(theirs, str) or theirs == version_id or not isinstance(written, str):
        return None
    try:
        written_at = dt.datetime.fromisoformat(written.replace("Z", "+00:00"))
    except ValueError as e:
        raise _corrupt(target, "manifest", f"source.last_modified {written!r}: {e}") from e
    if int(written_at.timestamp()) > int(last_modified.timestamp()):
        return f"version {theirs} of {written}"
    return None


def _put_json(s3, target: tuple[str, str], value: dict) -> None:
    s3.put_object(Bucket=target[0], Key=target[1], Body=json.dumps(value, indent=2, ensure_ascii=False).encode(),
                  ContentType="application/json")


def _delete_all(s3, targets: list[tuple[str, str]]) -> None:
    by_bucket: dict[str, list[str]] = {}
    for bucket, key in targets:
        by_bucket.setdefault(bucket, []).append(key)
    for bucket, keys in sorted(by_bucket.items()):
        for i in range(0, len(keys), DELETE_BATCH):
            batch = keys[i:i + DELETE_BATCH]
            out = s3.delete_objects(Bucket=bucket, Delete={
                "Objects": [{"Key": k} for k in batch], "Quiet": True})
            errors = out.get("Errors") or []
            if errors:
                e = errors[0]
                raise RuntimeError(f"deleting retired s3://{bucket}/{e.get('Key', '?')}: "
                                   f"{e.get('Code', 'error')}: {e.get('Message', '')}")


def publish(s3, manifest: dict, work, layout: Layout, log=print) -> dict:
    """Uploads data (only when the quality gate passed) and quarantine from the staged
    `work` dir (workdir.LocalWork or S3Work), retires earlier files of the source, writes
    the manifest last; returns the published manifest."""
    manifest_target, intent_target = layout.manifest(), layout.intent()
    leftover: set[tuple[str, str]] = set()
    previous = read_json(s3, manifest_target)
    if previous is not None:
        try:
            leftover.update(manifest_files(previous))
        except ValueError as e:
            raise _corrupt(manifest_target, "manifest", str(e)) from None
    intent = read_json(s3, intent_target)
    if intent is not None:
        if intent.get("intent_version") != INTENT_VERSION:
            raise _corrupt(intent_target, "intent record",
                           f"intent_version {intent.get('intent_version')} is not {INTENT_VERSION}")
        try:
            named = [parse_uri(t) for t in [*intent["writes"], *intent["retires"]]]
        except (KeyError, TypeError, ValueError) as e:
            raise _corrupt(intent_target, "intent record", str(e)) from None
        log(f"{manifest['source']['name']}: an earlier publish started at "
            f"{intent.get('started_at')} was interrupted; this run replaces what it left")
        leftover.update(named)
    stranger = next((t for t in sorted(leftover) if not layout.is_own_file(t)), None)
    if stranger is not None:
        cfg = layout.cfg
        raise PublishError(
            f"{uri(*stranger)}, named by {uri(*manifest_target)} or {uri(*intent_target)}, is "
            f"not a file of {manifest['source']['name']} (expected {layout.id}.parquet in "
            f"{cfg.processed_bucket} or {cfg.quarantine_bucket}); nothing was published: "
            "inspect those records")

    uploads: dict[tuple[str, str], str] = {}
    succeeded = manifest["status"] == "succeeded"
    if succeeded:
        for o in manifest["outputs"]:
            uploads[layout.data(o["path"])] = f"data/{o['path']}"
    if manifest["quarantine"] is not None:
        uploads[layout.quarantine()] = manifest["quarantine"]["path"]
    else:
        # Nothing rejected: no earlier quarantine file stays, even one no record names.
        leftover.add(layout.quarantine())
    writes = sorted(uploads)
    retires = sorted(leftover - set(uploads))
    src = manifest["source"]
    _put_json(s3, intent_target, {
        "intent_version": INTENT_VERSION,
        "source": src["name"],
        "source_etag": src.get("etag"),
        "source_version_id": src.get("version_id"),
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "writes": [uri(*t) for t in writes],
        "retires": [uri(*t) for t in retires],
    })
    for (bucket, key), rel in uploads.items():
        work.publish(s3, rel, bucket, key, "application/vnd.apache.parquet")
    _delete_all(s3, retires)

    published = json.loads(json.dumps(manifest))
    if not succeeded:
        published["outputs"] = []
        published["output_bytes"] = 0
    if published["quarantine"] is not None:
        published["quarantine"]["path"] = uri(*layout.quarantine())
    for o in published["outputs"]:
        o["path"] = uri(*layout.data(o["path"]))
    _put_json(s3, manifest_target, published)
    # Past the commit: a failure here leaves a record the next run finishes in passing.
    s3.delete_object(Bucket=intent_target[0], Key=intent_target[1])
    return published
