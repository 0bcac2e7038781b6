//! S3: streaming reads, uploads that never leave a partial object, paginated listings.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use chrono::{DateTime, Utc};
use tokio::io::{AsyncBufRead, AsyncRead, AsyncReadExt};
use tokio::task::JoinSet;

use crate::error::{ErrorKind, EtlError};

/// S3's minimum part size (all parts but the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// S3's maximum number of parts in one upload.
pub const MAX_PARTS: i32 = 10_000;

/// Converts an SDK timestamp to chrono (UTC).
pub fn to_chrono(dt: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(dt.secs(), dt.subsec_nanos())
}

/// S3 ETags come quoted (`"abc"`); callers want the bare value.
pub fn unquote_etag(etag: &str) -> &str {
    etag.trim_matches('"')
}

/// An object being read: metadata plus a body that streams (never fully buffered here).
#[derive(Debug)]
pub struct S3Object {
    pub bucket: String,
    pub key: String,
    pub size: Option<i64>,
    pub etag: Option<String>,
    pub last_modified: Option<DateTime<Utc>>,
    pub body: ByteStream,
}

impl S3Object {
    /// The body as a buffered async reader, for streaming decoders.
    pub fn into_reader(self) -> impl AsyncBufRead + Send + Unpin {
        self.body.into_async_read()
    }

    /// The whole body, for small objects (manifests, records, references). A body cut off
    /// mid-read is the network's fault: [`ErrorKind::Transient`].
    pub async fn bytes(self) -> Result<bytes::Bytes, EtlError> {
        let (bucket, key) = (self.bucket, self.key);
        self.body
            .collect()
            .await
            .map(|b| b.into_bytes())
            .map_err(|e| EtlError::transient(format!("reading s3://{bucket}/{key}: {e}")))
    }
}

/// Opens `s3://bucket/key` for streaming. A missing object is [`ErrorKind::NotFound`].
pub async fn get_object(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<S3Object, EtlError> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| EtlError::from_sdk(format!("reading s3://{bucket}/{key}"), e))?;
    Ok(S3Object {
        bucket: bucket.to_string(),
        key: key.to_string(),
        size: out.content_length,
        etag: out.e_tag.as_deref().map(|e| unquote_etag(e).to_string()),
        last_modified: out.last_modified.as_ref().and_then(to_chrono),
        body: out.body,
    })
}

/// Inclusive byte ranges covering `size` bytes in `part_size` pieces.
pub fn byte_ranges(size: u64, part_size: u64) -> Vec<(u64, u64)> {
    let part_size = part_size.max(1);
    (0..size.div_ceil(part_size))
        .map(|i| {
            let start = i * part_size;
            (start, (start + part_size).min(size) - 1)
        })
        .collect()
}

/// An object being read as ranged GETs (see [`get_object_ranges`]).
pub struct RangedObject {
    pub size: u64,
    /// The ETag of the version being read (every range is pinned to it).
    pub etag: Option<String>,
    /// The version being read, in a versioned bucket.
    pub version_id: Option<String>,
    pub last_modified: Option<DateTime<Utc>>,
    /// The object's bytes, part by part, in order.
    pub parts: futures::stream::BoxStream<'static, Result<bytes::Bytes, EtlError>>,
}

impl std::fmt::Debug for RangedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangedObject")
            .field("size", &self.size)
            .field("etag", &self.etag)
            .field("version_id", &self.version_id)
            .finish_non_exhaustive()
    }
}

impl RangedObject {
    /// The parts as one async reader, for streaming decoders.
    pub fn into_reader(self) -> impl AsyncBufRead + Send + Unpin {
        use futures::TryStreamExt;
        tokio_util::io::StreamReader::new(self.parts.map_err(std::io::Error::other))
    }
}

/// Attempts per ranged GET before a transient failure is final.
const RANGE_ATTEMPTS: u32 = 4;

/// Downloads `s3://bucket/key` as ranged GETs of `part_size` bytes, up to `concurrency` at
/// once, yielding the parts in order (memory: about `part_size * concurrency`).
///
/// Long single GETs of big objects do break mid-body (connection resets, idle timeouts
/// while the consumer is busy); here each part is a short request retried on its own, with
/// backoff, so a 5 GB object survives a dropped connection. Every range is pinned to the
/// ETag seen first (`If-Match`), so an object overwritten mid-download fails with a
/// transient error instead of mixing two versions.
pub async fn get_object_ranges(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    part_size: u64,
    concurrency: usize,
) -> Result<RangedObject, EtlError> {
    get_object_version_ranges(client, bucket, key, None, part_size, concurrency).await
}

/// [`get_object_ranges`] of one version of the object (`version_id`, in a versioned
/// bucket; `None`: the current one). A version never changes, so a later overwrite of the
/// key does not disturb the read; a version that no longer exists is
/// [`ErrorKind::NotFound`].
pub async fn get_object_version_ranges(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    part_size: u64,
    concurrency: usize,
) -> Result<RangedObject, EtlError> {
    use futures::StreamExt;
    let named = match version_id {
        Some(v) => format!("s3://{bucket}/{key} (version {v})"),
        None => format!("s3://{bucket}/{key}"),
    };
    let head = client
        .head_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version_id.map(str::to_string))
        .send()
        .await
        .map_err(|e| EtlError::from_sdk(format!("reading {named}"), e))?;
    let size = u64::try_from(head.content_length.unwrap_or(0)).unwrap_or(0);
    let etag = head.e_tag.clone();
    // The version HEAD answered for, so every range reads that one even when the event
    // named none and the key is overwritten meanwhile (unversioned buckets have none).
    let version = head
        .version_id
        .clone()
        .filter(|v| !v.is_empty() && v != "null")
        .or_else(|| version_id.map(str::to_string));
    let client = client.clone();
    let (bucket, key) = (bucket.to_string(), key.to_string());
    let pinned = version.clone();
    let parts = futures::stream::iter(byte_ranges(size, part_size))
        .map(move |(start, end)| {
            let (client, bucket, key, etag, version) = (
                client.clone(),
                bucket.clone(),
                key.clone(),
                etag.clone(),
                pinned.clone(),
            );
            async move {
                let mut attempt = 1;
                loop {
                    let pin = Pin {
                        etag: etag.as_deref(),
                        version_id: version.as_deref(),
                    };
                    match get_range(&client, &bucket, &key, pin, start, end).await {
                        Err(Fetch::Retry(e)) if attempt < RANGE_ATTEMPTS => {
                            tracing::warn!(
                                bucket = %bucket, key = %key, start, end, attempt, error = %e,
                                "ranged GET failed, retrying"
                            );
                            let backoff = 200u64 << attempt.min(6);
                            tokio::time::sleep(std::time::Duration::from_millis(backoff)).await;
                            attempt += 1;
                        }
                        Ok(data) => return Ok(data),
                        Err(Fetch::Retry(e) | Fetch::Final(e)) => return Err(e),
                    }
                }
            }
        })
        .buffered(concurrency.max(1))
        .boxed();
    Ok(RangedObject {
        size,
        etag: head.e_tag.as_deref().map(|e| unquote_etag(e).to_string()),
        version_id: version,
        last_modified: head.last_modified.as_ref().and_then(to_chrono),
        parts,
    })
}

/// A failed ranged GET: worth another attempt, or not.
enum Fetch {
    Retry(EtlError),
    Final(EtlError),
}

/// What every ranged GET of one read must match.
#[derive(Clone, Copy)]
struct Pin<'a> {
    etag: Option<&'a str>,
    version_id: Option<&'a str>,
}

/// One ranged GET, body included.
async fn get_range(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    pin: Pin<'_>,
    start: u64,
    end: u64,
) -> Result<bytes::Bytes, Fetch> {
    let context = format!("reading bytes {start}-{end} of s3://{bucket}/{key}");
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .range(format!("bytes={start}-{end}"))
        .set_version_id(pin.version_id.map(str::to_string))
        .set_if_match(pin.etag.map(str::to_string))
        .send()
        .await
        .map_err(|e| {
            let changed = e.raw_response().map(|r| r.status().as_u16()) == Some(412);
            let err = EtlError::from_sdk(&context, e);
            if changed {
                // Transient for the caller (a rerun reads the new version), pointless here.
                Fetch::Final(EtlError::transient(format!(
                    "{err} (the object changed while being read)"
                )))
            } else if err.kind() == ErrorKind::Transient {
                Fetch::Retry(err)
            } else {
                Fetch::Final(err)
            }
        })?;
    let data =
        out.body.collect().await.map_err(|e| {
            Fetch::Retry(EtlError::transient(format!("{context}: {e}")).with_source(e))
        })?;
    Ok(data.into_bytes())
}

/// Options for [`put_object_from_reader`].
#[derive(Debug, Clone)]
pub struct PutOptions {
    /// Part size for multipart uploads; bodies smaller than one part use a single PUT.
    /// Raised to [`MIN_PART_SIZE`] if lower.
    pub part_size: usize,
    /// Parts uploaded at once (memory use is about `part_size * (concurrency + 1)`).
    pub concurrency: usize,
    pub content_type: Option<String>,
}

impl Default for PutOptions {
    fn default() -> Self {
        Self {
            part_size: 8 * 1024 * 1024,
            concurrency: 4,
            content_type: None,
        }
    }
}

/// What [`put_object_from_reader`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    pub etag: Option<String>,
    pub bytes: u64,
    /// 0 for a single PUT.
    pub parts: i32,
}

fn io_error(bucket: &str, key: &str, err: std::io::Error) -> EtlError {
    use std::io::ErrorKind as Io;
    let kind = match err.kind() {
        Io::TimedOut
        | Io::ConnectionReset
        | Io::ConnectionAborted
        | Io::Interrupted
        | Io::UnexpectedEof
        | Io::BrokenPipe => ErrorKind::Transient,
        _ => ErrorKind::Internal,
    };
    EtlError::new(
        kind,
        format!("reading the body to upload to s3://{bucket}/{key}: {err}"),
    )
    .with_source(err)
}

async fn read_part<R: AsyncRead + Unpin>(reader: &mut R, size: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(size);
    reader.take(size as u64).read_to_end(&mut buf).await?;
    Ok(buf)
}

/// Uploads what `reader` yields to `s3://bucket/key`. A body shorter than one part is a
/// single PutObject; a longer one is a multipart upload whose parts go up concurrently.
/// If anything fails (reading the body, a part, completing), the multipart upload is
/// aborted, so no partial object ever becomes visible and no parts are left billed.
pub async fn put_object_from_reader<R>(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    mut reader: R,
    options: &PutOptions,
) -> Result<PutOutcome, EtlError>
where
    R: AsyncRead + Unpin,
{
    let part_size = options.part_size.max(MIN_PART_SIZE);
    let first = read_part(&mut reader, part_size)
        .await
        .map_err(|e| io_error(bucket, key, e))?;
    if first.len() < part_size {
        let bytes = first.len() as u64;
        let out = client
            .put_object()
            .bucket(bucket)
            .key(key)
            .set_content_type(options.content_type.clone())
            .body(ByteStream::from(first))
            .send()
            .await
            .map_err(|e| EtlError::from_sdk(format!("writing s3://{bucket}/{key}"), e))?;
        return Ok(PutOutcome {
            etag: out.e_tag.as_deref().map(|e| unquote_etag(e).to_string()),
            bytes,
            parts: 0,
        });
    }

    let created = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .set_content_type(options.content_type.clone())
        .send()
        .await
        .map_err(|e| {
            EtlError::from_sdk(
                format!("starting multipart upload to s3://{bucket}/{key}"),
                e,
            )
        })?;
    let upload_id = created.upload_id.ok_or_else(|| {
        EtlError::internal(format!(
            "CreateMultipartUpload for s3://{bucket}/{key} returned no upload id"
        ))
    })?;

    let mut in_flight = JoinSet::new();
    let result = upload_parts(
        client,
        bucket,
        key,
        &upload_id,
        first,
        &mut reader,
        part_size,
        options.concurrency.max(1),
        &mut in_flight,
    )
    .await;
    match result {
        Ok(outcome) => Ok(outcome),
        Err(err) => {
            // Stop parts still uploading before aborting: a part that lands after the abort
            // would otherwise keep storage allocated.
            in_flight.shutdown().await;
            match client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await
            {
                Ok(_) => tracing::warn!(bucket, key, error = %err, "multipart upload aborted"),
                Err(abort_err) => tracing::error!(
                    bucket,
                    key,
                    upload_id,
                    error = %err,
                    abort_error = %aws_smithy_types::error::display::DisplayErrorContext(&abort_err),
                    "multipart upload failed and could not be aborted; \
                     a bucket lifecycle rule (AbortIncompleteMultipartUpload) will clean it up"
                ),
            }
            Err(err)
        }
    }
}

type PartResult = Result<CompletedPart, EtlError>;

#[allow(clippy::too_many_arguments)]
async fn upload_parts<R: AsyncRead + Unpin>(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    first: Vec<u8>,
    reader: &mut R,
    part_size: usize,
    concurrency: usize,
    in_flight: &mut JoinSet<PartResult>,
) -> Result<PutOutcome, EtlError> {
    let mut done: Vec<CompletedPart> = Vec::new();
    let mut part_number: i32 = 0;
    let mut bytes: u64 = 0;
    let mut buf = first;
    while !buf.is_empty() {
        part_number += 1;
        if part_number > MAX_PARTS {
            return Err(EtlError::invalid_input(format!(
                "s3://{bucket}/{key} needs more than {MAX_PARTS} parts of {part_size} bytes"
            )));
        }
        while in_flight.len() >= concurrency {
            done.push(join_part(in_flight).await?);
        }
        bytes += buf.len() as u64;
        let request = client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .body(ByteStream::from(buf));
        let context = format!("uploading part {part_number} of s3://{bucket}/{key}");
        in_flight.spawn(async move {
            let out = request
                .send()
                .await
                .map_err(|e| EtlError::from_sdk(&context, e))?;
            Ok(CompletedPart::builder()
                .part_number(part_number)
                .set_e_tag(out.e_tag)
                .build())
        });
        buf = read_part(reader, part_size)
            .await
            .map_err(|e| io_error(bucket, key, e))?;
    }
    while !in_flight.is_empty() {
        done.push(join_part(in_flight).await?);
    }
    done.sort_by_key(|p| p.part_number);
    let out = client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .map_err(|e| {
            EtlError::from_sdk(
                format!("completing multipart upload to s3://{bucket}/{key}"),
                e,
            )
        })?;
    tracing::debug!(
        bucket,
        key,
        parts = part_number,
        bytes,
        "multipart upload complete"
    );
    Ok(PutOutcome {
        etag: out.e_tag.as_deref().map(|e| unquote_etag(e).to_string()),
        bytes,
        parts: part_number,
    })
}

async fn join_part(in_flight: &mut JoinSet<PartResult>) -> PartResult {
    match in_flight.join_next().await {
        Some(Ok(part)) => part,
        Some(Err(join)) => Err(EtlError::internal(format!(
            "part upload task failed: {join}"
        ))),
        None => Err(EtlError::internal("no part upload in flight")),
    }
}

/// Writes a small in-memory body with one PutObject.
pub async fn put_bytes(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    content_type: Option<&str>,
) -> Result<PutOutcome, EtlError> {
    let bytes = body.len() as u64;
    let out = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .set_content_type(content_type.map(String::from))
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| EtlError::from_sdk(format!("writing s3://{bucket}/{key}"), e))?;
    Ok(PutOutcome {
        etag: out.e_tag.as_deref().map(|e| unquote_etag(e).to_string()),
        bytes,
        parts: 0,
    })
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: i64,
    pub last_modified: Option<DateTime<Utc>>,
    /// Without the quotes S3 puts around it.
    pub etag: Option<String>,
}

/// A listing and how much was scanned to get it.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The objects `keep` accepted, in key order.
    pub objects: Vec<ObjectInfo>,
    /// Objects seen in total.
    pub scanned: usize,
    pub pages: usize,
}

/// Lists every object under `s3://bucket/prefix`, following continuation tokens,
/// keeping those for which `keep` returns true (only kept objects are held in memory).
/// `page_size` is MaxKeys (S3's default and maximum is 1000).
pub async fn list_objects(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    page_size: Option<i32>,
    mut keep: impl FnMut(&ObjectInfo) -> bool,
) -> Result<Listing, EtlError> {
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .set_max_keys(page_size)
        .into_paginator()
        .send();
    let mut listing = Listing::default();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| EtlError::from_sdk(format!("listing s3://{bucket}/{prefix}"), e))?;
        listing.pages += 1;
        for object in page.contents.unwrap_or_default() {
            listing.scanned += 1;
            let info = ObjectInfo {
                key: object.key.unwrap_or_default(),
                size: object.size.unwrap_or(0),
                last_modified: object.last_modified.as_ref().and_then(to_chrono),
                etag: object.e_tag.as_deref().map(|e| unquote_etag(e).to_string()),
            };
            if keep(&info) {
                listing.objects.push(info);
            }
        }
    }
    tracing::debug!(
        bucket,
        prefix,
        pages = listing.pages,
        scanned = listing.scanned,
        kept = listing.objects.len(),
        "listing done"
    );
    Ok(listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_and_times() {
        assert_eq!(unquote_etag("\"abc\""), "abc");
        assert_eq!(unquote_etag("abc-2"), "abc-2");
        let dt = aws_smithy_types::DateTime::from_secs_and_nanos(1_700_000_000, 5);
        assert_eq!(
            to_chrono(&dt).unwrap().to_rfc3339(),
            "2023-11-14T22:13:20.000000005+00:00"
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(byte_ranges(0, 5), vec![]);
        assert_eq!(byte_ranges(5, 5), vec![(0, 4)]);
        assert_eq!(byte_ranges(11, 5), vec![(0, 4), (5, 9), (10, 10)]);
    }

    #[tokio::test]
    async fn parts_are_read_whole() {
        let data = vec![7u8; 10];
        let mut reader = data.as_slice();
        assert_eq!(read_part(&mut reader, 4).await.unwrap().len(), 4);
        assert_eq!(read_part(&mut reader, 4).await.unwrap().len(), 4);
        assert_eq!(read_part(&mut reader, 4).await.unwrap().len(), 2);
        assert!(read_part(&mut reader, 4).await.unwrap().is_empty());
    }
}
