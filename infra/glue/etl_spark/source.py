"""Where an input's bytes come from. A source is small and picklable, so Spark executors
can read byte ranges of the same object the driver names (a splitting reader hands each
task a range); `LocalFile` serves `make spark-run` and tests, `S3Object` the Glue job (on
Glue and against LocalStack alike: boto3 reads S3 directly, no Hadoop S3 connector).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class LocalFile:
    path: str

    @property
    def name(self) -> str:
        return self.path

    @property
    def size(self) -> int:
        return os.path.getsize(self.path)

    def read_range(self, start: int, end: int) -> bytes:
        """Bytes [start, end): fewer only at the end of the file."""
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(max(0, end - start))

    def read_all(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()


@dataclass(frozen=True)
class S3Object:
    """One version of an S3 object. `size` and `version_id` are what the job saw on
    HeadObject, so every range reads that same version even if the key is overwritten."""

    bucket: str
    key: str
    size: int
    version_id: str | None = None
    etag: str | None = None
    endpoint_url: str | None = None

    @property
    def name(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def _client(self):
        import boto3  # on executors too: boto3 is in Glue's Python and the local venv
        from botocore.config import Config

        # A custom endpoint is LocalStack's, which serves buckets path-style.
        style = {"addressing_style": "path"} if self.endpoint_url else {}
        return boto3.client("s3", endpoint_url=self.endpoint_url,
                            config=Config(retries={"max_attempts": 5, "mode": "standard"}, s3=style))

    def _get(self, **extra) -> bytes:
        args = {"Bucket": self.bucket, "Key": self.key, **extra}
        if self.version_id:
            args["VersionId"] = self.version_id
        elif self.etag:
            args["IfMatch"] = self.etag
        return self._client().get_object(**args)["Body"].read()

    def read_range(self, start: int, end: int) -> bytes:
        if end <= start or start >= self.size:
            return b""
        return self._get(Range=f"bytes={start}-{min(end, self.size) - 1}")

    def read_all(self) -> bytes:
        return self._get() if self.size else b""
