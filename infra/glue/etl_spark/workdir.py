"""Where Spark writes a run's files before they are moved into place or published: a
local dir when Spark runs in this process (local mode: `make spark-run`, tests, the job
against LocalStack), an S3 prefix on a Glue cluster, whose executors do not share the
driver's disk. Paths are relative to the work dir, with `/`. No Spark here.
"""

from __future__ import annotations

import os
import shutil


class LocalWork:
    """A work dir on the driver's file system: where Spark writes when it runs in this
    process (local mode: `make spark-run`, tests, the job against LocalStack)."""

    def __init__(self, root: str):
        self.root = root

    def spark_path(self, rel: str) -> str:
        return os.path.join(self.root, *rel.split("/"))

    local_path = spark_path

    def files(self, rel: str) -> list[tuple[str, int]]:
        """(path relative to `rel` with `/`, bytes) of every file under `rel`."""
        base = self.spark_path(rel)
        out = []
        for d, _, names in os.walk(base):
            for n in names:
                path = os.path.join(d, n)
                out.append((os.path.relpath(path, base).replace(os.sep, "/"), os.path.getsize(path)))
        return sorted(out)

    def move(self, src: str, dest: str) -> None:
        os.makedirs(os.path.dirname(self.spark_path(dest)), exist_ok=True)
        shutil.move(self.spark_path(src), self.spark_path(dest))

    def remove(self, rel: str) -> None:
        path = self.spark_path(rel)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.exists(path):
            os.remove(path)

    def publish(self, s3, rel: str, bucket: str, key: str, content_type: str) -> None:
        with open(self.spark_path(rel), "rb") as f:
            s3.put_object(Bucket=bucket, Key=key, Body=f, ContentType=content_type)


class S3Work:
    """A work prefix in S3: where Spark writes on a Glue cluster, whose executors do not
    share the driver's disk. Files are then copied to their keys, server side."""

    def __init__(self, s3, bucket: str, prefix: str):
        self.s3, self.bucket, self.prefix = s3, bucket, prefix.rstrip("/") + "/"

    def spark_path(self, rel: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{rel}"

    def files(self, rel: str) -> list[tuple[str, int]]:
        base = f"{self.prefix}{rel.rstrip('/')}/"
        out = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
            out += [(o["Key"][len(base):], o["Size"]) for o in page.get("Contents", [])]
        return sorted(out)

    def move(self, src: str, dest: str) -> None:
        source = {"Bucket": self.bucket, "Key": self.prefix + src}
        self.s3.copy(source, self.bucket, self.prefix + dest)
        self.s3.delete_object(**source)

    def remove(self, rel: str) -> None:
        """The object `rel` and everything under `rel/` (deleting a missing key is fine)."""
        rel = rel.rstrip("/")
        keys = [self.prefix + rel] + [f"{self.prefix}{rel}/{k}" for k, _ in self.files(rel)]
        for i in range(0, len(keys), 1000):
            self.s3.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})

    def publish(self, s3, rel: str, bucket: str, key: str, content_type: str) -> None:
        s3.copy({"Bucket": self.bucket, "Key": self.prefix + rel}, bucket, key,
                ExtraArgs={"ContentType": content_type, "MetadataDirective": "REPLACE"})
