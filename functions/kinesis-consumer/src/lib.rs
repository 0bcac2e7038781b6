//! kinesis-consumer: the real-time path. A Kinesis event source mapping with
//! `FunctionResponseTypes: [ReportBatchItemFailures]` and `BisectBatchOnFunctionError` hands
//! us batches of click and purchase events (schema: [`record`]).
//!
//! Per invocation (one batch, one shard):
//! 1. every record is decoded and classified; a malformed one is quarantined, never fatal;
//! 2. each purchase starts the order workflow, named `order-<shard>-<sequence number>`
//!    (via [`etl_aws::sfn::start_execution`], where "already exists" is success), so no
//!    redelivery or replay starts anything twice. Starts are retried ([`orders`]); one that
//!    still fails is written down (step 3), never allowed to hold back the batch;
//! 3. *every* record of the batch is written, whatever happened to the starts, as objects
//!    keyed by the shard and the batch's **first** sequence number only:
//!    - `archive/year=/month=/day=/hour=/<shard>-<first>.ndjson.gz`: every record (valid
//!      or not), one gzip NDJSON object per batch;
//!    - `sessions/.../<shard>-<first>.ndjson`: the 5-minute session aggregates
//!      ([`aggregate`]) of the valid events;
//!    - `quarantine/kinesis/.../<shard>-<first>.ndjson`: malformed records and purchases
//!      Step Functions refused for good (`order_rejected`), with their reason;
//!    - `failed-orders/.../<shard>-<first>.ndjson`: purchases not started (state machine
//!      missing, throttled past the retries, out of time), each with its execution name
//!      and input ([`orders::FailedOrder`]), for [`orders::replay_failed_orders`].
//!
//!    The last three are deleted instead of written when the batch has nothing for them.
//!    The date is the first record's approximate arrival time, which a redelivery keeps.
//!
//! # Every record archived once, whatever the batch boundaries
//! Lambda redelivers records in three ways: a batch we report failed is retried from the
//! lowest reported sequence number; a batch whose invocation fails (a crash or a timeout)
//! is retried, bisected into halves, and the halves split again; a retried batch may also
//! grow, as newer records join it. A shard's records come in order, and the checkpoint
//! only moves past a batch's first record once an attempt starting there has succeeded (or
//! Lambda gave up on it). So:
//! - the keys depend on the batch's first record alone. Every retry of a batch starts at
//!   the same first record, so it overwrites that batch's objects, whatever its end: after
//!   a bisection of `a..z` into `a..m` and `n..z`, the object `a` holds `a..m` and the
//!   object `n` holds `n..z`, exactly once each. Keys naming the last record too (as before)
//!   left `a-z`, `a-m` and `n-z` side by side;
//! - we only ever report failures when an S3 write failed, and then every record, so Lambda
//!   retries from the first record: the same keys again. A failed order start is not a
//!   batch failure (reporting it would mean either archiving only the records before it,
//!   as before, so a persistent failure blocked the archive until the batch was discarded
//!   to the DLQ as metadata, or archiving records that the retry, starting at the failed
//!   purchase, archives again under another key);
//! - an object with nothing in it is deleted, so a shorter retry (a bisected half) leaves
//!   no stale sessions, quarantine or failed orders from the longer attempt;
//! - a start is not attempted once the invocation is within [`orders::WRITE_RESERVE`] of
//!   its deadline (those purchases are recorded instead), so a slow Step Functions ends in
//!   a complete write, not a timeout.
//!
//! What is left is a batch Lambda gives up on (`MaximumRetryAttempts`,
//! `MaximumRecordAgeInSeconds`), which S3 failing on every attempt or a crash causes: its DLQ
//! record names the shard and sequence range to replay from the stream within its retention.
//!
//! # Purchases
//! A purchase ends started once, or quarantined as `order_rejected` (the request itself is
//! refused: an input over 256 KB), or recorded in a failed-orders object. Failed orders are
//! replayed by invoking the function with `{"replayFailedOrders": {"prefix": "year=2024/"}}`
//! (prefix optional, below `FAILED_ORDERS_PREFIX`): it starts each with the configured
//! state machine and deletes what started. The `OrdersRecorded` metric counts new records.
//!
//! The summary of each batch is logged at info and emitted as EMF metrics; per-record lines
//! are logged at debug only.

pub mod aggregate;
pub mod orders;
pub mod record;

use std::io::Write as _;
use std::time::Instant;

use aws_lambda_events::event::streams::KinesisEventResponse;
use base64::Engine as _;
use chrono::{DateTime, Datelike, Timelike, Utc};
use etl_aws::config::{self, ConfigError, EnvSource, ProcessEnv};
use etl_aws::sfn::StartOutcome;
use etl_aws::{ErrorKind, EtlError};
use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregator, rfc3339_ms};
use crate::orders::{FailedOrder, OrderStart, StartResult};
use crate::record::{Event, EventType, Rejection, classify};

/// Settings from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `ARCHIVE_BUCKET`: where the archive, session and quarantine objects go.
    pub bucket: String,
    /// `ORDER_STATE_MACHINE_ARN`: the order workflow each purchase starts.
    pub order_state_machine_arn: String,
    /// `ARCHIVE_PREFIX` (default `archive/`).
    pub archive_prefix: String,
    /// `SESSIONS_PREFIX` (default `sessions/`).
    pub sessions_prefix: String,
    /// `QUARANTINE_PREFIX` (default `quarantine/kinesis/`).
    pub quarantine_prefix: String,
    /// `FAILED_ORDERS_PREFIX` (default `failed-orders/`): purchases not started.
    pub failed_orders_prefix: String,
    /// `START_ATTEMPTS`: attempts per purchase for retryable failures (default 3, 1-10),
    /// each retried by the SDK too; then the purchase is recorded.
    pub start_attempts: u32,
    /// `START_CONCURRENCY`: StartExecution calls in flight (default 10, 1-100). Step
    /// Functions throttles StartExecution per account (a bucket of 1300, refilling 300/s
    /// in large regions); throttled calls are retried (`START_ATTEMPTS`), then recorded.
    pub start_concurrency: usize,
}

fn prefix(env: &impl EnvSource, name: &str, default: &str) -> String {
    let mut p = config::optional(env, name).unwrap_or_else(|| default.to_string());
    if !p.ends_with('/') {
        p.push('/');
    }
    p
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    /// Reads any [`EnvSource`] (tests pass a map).
    pub fn from_source(env: &impl EnvSource) -> Result<Self, ConfigError> {
        let order_state_machine_arn = config::required(env, "ORDER_STATE_MACHINE_ARN")?;
        if !order_state_machine_arn.starts_with("arn:") {
            return Err(config::invalid(
                "ORDER_STATE_MACHINE_ARN",
                order_state_machine_arn,
                "must be a state machine ARN (arn:aws:states:<region>:<account>:stateMachine:<name>)",
            ));
        }
        let start_concurrency = config::parse_or(env, "START_CONCURRENCY", 10_usize)?;
        if !(1..=100).contains(&start_concurrency) {
            return Err(config::invalid(
                "START_CONCURRENCY",
                start_concurrency.to_string(),
                "must be between 1 and 100",
            ));
        }
        let start_attempts = config::parse_or(env, "START_ATTEMPTS", 3_u32)?;
        if !(1..=10).contains(&start_attempts) {
            return Err(config::invalid(
                "START_ATTEMPTS",
                start_attempts.to_string(),
                "must be between 1 and 10",
            ));
        }
        Ok(Self {
            bucket: config::required(env, "ARCHIVE_BUCKET")?,
            order_state_machine_arn,
            archive_prefix: prefix(env, "ARCHIVE_PREFIX", "archive/"),
            sessions_prefix: prefix(env, "SESSIONS_PREFIX", "sessions/"),
            quarantine_prefix: prefix(env, "QUARANTINE_PREFIX", "quarantine/kinesis/"),
            failed_orders_prefix: prefix(env, "FAILED_ORDERS_PREFIX", "failed-orders/"),
            start_attempts,
            start_concurrency,
        })
    }
}

/// SDK clients, built once per cold start.
#[derive(Debug, Clone)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub sfn: aws_sdk_sfn::Client,
}

impl Clients {
    pub fn new(conf: &aws_config::SdkConfig) -> Self {
        Self {
            s3: etl_aws::clients::s3(conf),
            sfn: etl_aws::clients::sfn(conf),
        }
    }
}

/// The Kinesis event, read leniently.
///
/// `aws_lambda_events::event::kinesis::KinesisEvent` decodes `data` as `Base64Data` while
/// deserializing, so one record with bad base64 fails the whole event: the runtime reports
/// an error, Lambda retries the batch forever and the shard is blocked. Here `data` stays
/// a string and each record is decoded on its own (the unit tests show both behaviours).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct KinesisBatch {
    #[serde(rename = "Records", default)]
    pub records: Vec<BatchRecord>,
    /// Set by an operator's invocation instead of `Records`: replay the failed orders.
    #[serde(
        rename = "replayFailedOrders",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub replay_failed_orders: Option<ReplayRequest>,
}

/// `{"replayFailedOrders": {"prefix": "year=2024/month=05/"}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ReplayRequest {
    /// Below `FAILED_ORDERS_PREFIX`; empty means all.
    #[serde(default)]
    pub prefix: String,
}

/// One record of a [`KinesisBatch`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct BatchRecord {
    /// `shardId-000000000000:<sequence number>`.
    #[serde(rename = "eventID", default)]
    pub event_id: String,
    #[serde(rename = "eventSourceARN", default)]
    pub event_source_arn: String,
    pub kinesis: KinesisData,
}

/// The `kinesis` member of a record.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KinesisData {
    /// Base64 of the producer's bytes.
    #[serde(default)]
    pub data: String,
    #[serde(default)]
    pub partition_key: String,
    #[serde(default)]
    pub sequence_number: String,
    /// Seconds since the epoch, with milliseconds.
    #[serde(default)]
    pub approximate_arrival_timestamp: f64,
}

impl BatchRecord {
    /// The shard, from `eventID` (`shardId-...:<seq>`); `unknown-shard` when absent.
    pub fn shard_id(&self) -> &str {
        match self.event_id.split_once(':') {
            Some((shard, _)) if !shard.is_empty() => shard,
            _ => "unknown-shard",
        }
    }

    fn arrival_ms(&self) -> i64 {
        (self.kinesis.approximate_arrival_timestamp * 1000.0).round() as i64
    }
}

/// The execution name for the purchase at `sequence_number` on `shard_id`:
/// `order-<shard number>-<sequence number>` (`shardId-000000000007` gives `7`). Longer than
/// 80 characters (sequence numbers may have up to 129 digits) it is shortened with a hash,
/// deterministically, by [`etl_aws::sfn::execution_name`].
pub fn order_execution_name(shard_id: &str, sequence_number: &str) -> String {
    let shard = shard_id
        .strip_prefix("shardId-")
        .map(|n| n.trim_start_matches('0'))
        .map(|n| if n.is_empty() { "0" } else { n })
        .unwrap_or(shard_id);
    etl_aws::sfn::execution_name(&format!("order-{shard}-{sequence_number}"))
}

/// The keys of one batch's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchKeys {
    pub archive: String,
    pub sessions: String,
    pub quarantine: String,
    pub failed_orders: String,
}

fn key_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Keys for the batch of `shard_id` whose first record is `first`, which arrived at
/// `arrival_ms`. Nothing about the batch's end goes in: see the crate docs.
pub fn batch_keys(config: &Config, shard_id: &str, first: &str, arrival_ms: i64) -> BatchKeys {
    let t = DateTime::<Utc>::from_timestamp_millis(arrival_ms).unwrap_or_default();
    let partition = format!(
        "year={:04}/month={:02}/day={:02}/hour={:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour()
    );
    let name = format!("{}-{}", key_safe(shard_id), key_safe(first));
    BatchKeys {
        archive: format!("{}{partition}/{name}.ndjson.gz", config.archive_prefix),
        sessions: format!("{}{partition}/{name}.ndjson", config.sessions_prefix),
        quarantine: format!("{}{partition}/{name}.ndjson", config.quarantine_prefix),
        failed_orders: format!("{}{partition}/{name}.ndjson", config.failed_orders_prefix),
    }
}

/// What happened to one batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BatchSummary {
    pub shard_id: String,
    pub records: usize,
    pub page_views: usize,
    pub purchases: usize,
    pub quarantined: usize,
    pub sessions: usize,
    /// Records in the archive object written (all of them, or 0 when S3 failed).
    pub written: usize,
    pub orders_started: usize,
    pub orders_already_started: usize,
    /// Refused for good, quarantined as `order_rejected`.
    pub orders_rejected: usize,
    /// Not started, written to the failed-orders object.
    pub orders_recorded: usize,
    /// Records reported in `batchItemFailures` (0, or all when an S3 write failed).
    pub failed_records: usize,
    pub archive_key: Option<String>,
    pub sessions_key: Option<String>,
    pub quarantine_key: Option<String>,
    pub failed_orders_key: Option<String>,
}

/// The response Lambda reads plus the summary (which the handler only logs: the response
/// stays exactly the documented `{"batchItemFailures": [...]}`).
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    pub response: KinesisEventResponse,
    pub summary: BatchSummary,
}

impl BatchReport {
    /// The reported sequence numbers.
    pub fn failed_sequence_numbers(&self) -> Vec<&str> {
        self.response
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.as_deref())
            .collect()
    }
}

/// The decoded payloads of a batch in one buffer (one allocation, grown amortized).
struct Decoded {
    arena: Vec<u8>,
    /// Per record: the byte range in `arena`, or `None` for bad base64.
    spans: Vec<Option<(usize, usize)>>,
}

fn decode_all(records: &[BatchRecord]) -> Decoded {
    let engine = &base64::engine::general_purpose::STANDARD;
    let estimate: usize = records.iter().map(|r| r.kinesis.data.len() / 4 * 3).sum();
    let mut arena = Vec::with_capacity(estimate);
    let mut spans = Vec::with_capacity(records.len());
    for r in records {
        let start = arena.len();
        match engine.decode_vec(r.kinesis.data.as_bytes(), &mut arena) {
            Ok(()) => spans.push(Some((start, arena.len()))),
            Err(_) => {
                arena.truncate(start);
                spans.push(None);
            }
        }
    }
    Decoded { arena, spans }
}

/// The CPU-bound hot path on its own: decode, classify and aggregate `records`, returning
/// the session windows and the number of malformed records. `process` does the same work
/// interleaved with the archive; this exists for the throughput example
/// (`cargo run --release -p kinesis-consumer --example throughput`).
pub fn decode_and_aggregate(records: &[BatchRecord]) -> (Vec<aggregate::SessionWindow>, usize) {
    let decoded = decode_all(records);
    let mut aggregator = Aggregator::new();
    let mut malformed = 0;
    for span in &decoded.spans {
        match span.map(|(s, e)| classify(&decoded.arena[s..e])) {
            Some(Ok(event)) => aggregator.add(&event),
            _ => malformed += 1,
        }
    }
    (aggregator.into_windows(), malformed)
}

/// Writes `s` as a JSON string.
fn json_str(out: &mut impl std::io::Write, s: &str) -> std::io::Result<()> {
    serde_json::to_writer(out, s).map_err(std::io::Error::other)
}

/// One archive line: `{"sequence_number","partition_key","approximate_arrival_timestamp",
/// "shard_id","data"}` where `data` is the record's JSON as sent, or `data_base64` (the
/// original) when it is not JSON.
fn write_archive_line(
    out: &mut impl std::io::Write,
    record: &BatchRecord,
    shard_id: &str,
    data: Option<&[u8]>,
    is_json: bool,
) -> std::io::Result<()> {
    out.write_all(b"{\"sequence_number\":")?;
    json_str(out, &record.kinesis.sequence_number)?;
    out.write_all(b",\"partition_key\":")?;
    json_str(out, &record.kinesis.partition_key)?;
    out.write_all(b",\"approximate_arrival_timestamp\":")?;
    json_str(out, &rfc3339_ms(record.arrival_ms()))?;
    out.write_all(b",\"shard_id\":")?;
    json_str(out, shard_id)?;
    match data {
        // Valid JSON is copied as is, unless it spans lines (pretty-printed), which would
        // break NDJSON: then it is re-serialized compactly.
        Some(data) if is_json => {
            out.write_all(b",\"data\":")?;
            if data.contains(&b'\n') || data.contains(&b'\r') {
                let value: serde_json::Value =
                    serde_json::from_slice(data).map_err(std::io::Error::other)?;
                serde_json::to_writer(&mut *out, &value).map_err(std::io::Error::other)?;
            } else {
                out.write_all(data.trim_ascii())?;
            }
        }
        _ => {
            out.write_all(b",\"data_base64\":")?;
            json_str(out, &record.kinesis.data)?;
        }
    }
    out.write_all(b"}\n")
}

/// One quarantine line.
#[derive(Serialize)]
struct QuarantineLine<'a> {
    sequence_number: &'a str,
    partition_key: &'a str,
    approximate_arrival_timestamp: String,
    shard_id: &'a str,
    reason: &'a str,
    detail: Option<&'a str>,
    /// The record's data exactly as received (base64).
    data_base64: &'a str,
}

fn io_internal(what: &str, e: std::io::Error) -> EtlError {
    EtlError::internal(format!("{what}: {e}")).with_source(e)
}

/// The order workflow's input: the purchase event as sent, plus where it came from.
fn order_input(data: &[u8], record: &BatchRecord, shard_id: &str) -> Result<String, EtlError> {
    let mut out = Vec::with_capacity(data.len() + 200);
    (|| -> std::io::Result<()> {
        out.write_all(b"{\"order\":")?;
        let value: serde_json::Value =
            serde_json::from_slice(data).map_err(std::io::Error::other)?;
        serde_json::to_writer(&mut out, &value).map_err(std::io::Error::other)?;
        out.write_all(b",\"source\":{\"shardId\":")?;
        json_str(&mut out, shard_id)?;
        out.write_all(b",\"sequenceNumber\":")?;
        json_str(&mut out, &record.kinesis.sequence_number)?;
        out.write_all(b",\"partitionKey\":")?;
        json_str(&mut out, &record.kinesis.partition_key)?;
        out.write_all(b"}}")
    })()
    .map_err(|e| io_internal("building the order input", e))?;
    String::from_utf8(out).map_err(|e| EtlError::internal(format!("order input: {e}")))
}

/// Processes one batch. Only a bug returns `Err`; everything else is in the report.
/// `deadline` is the invocation's (None: no limit); starts stop [`orders::WRITE_RESERVE`]
/// before it.
pub async fn process(
    batch: &KinesisBatch,
    clients: &Clients,
    config: &Config,
    deadline: Option<Instant>,
) -> Result<BatchReport, EtlError> {
    let records = &batch.records;
    let mut report = BatchReport::default();
    let Some(first) = records.first() else {
        return Ok(report);
    };
    let shard_id = first.shard_id();
    report.summary.shard_id = shard_id.to_string();
    report.summary.records = records.len();

    let decoded = decode_all(records);
    let classified: Vec<Result<Event<'_>, Rejection>> = decoded
        .spans
        .iter()
        .map(|span| match span {
            Some((s, e)) => classify(&decoded.arena[*s..*e]),
            None => Err(Rejection::InvalidBase64),
        })
        .collect();
    let data = |i: usize| decoded.spans[i].map(|(s, e)| &decoded.arena[s..e]);

    let mut starts = Vec::new();
    for (i, c) in classified.iter().enumerate() {
        if let Ok(e) = c
            && e.event_type == EventType::Purchase
        {
            let r = &records[i];
            starts.push(OrderStart {
                index: i,
                execution_name: order_execution_name(r.shard_id(), &r.kinesis.sequence_number),
                input: order_input(data(i).unwrap_or_default(), r, r.shard_id())?,
            });
        }
    }
    let mut order_rejections: Vec<(usize, Rejection)> = Vec::new();
    let mut failed_orders: Vec<FailedOrder> = Vec::new();
    for (start, result) in orders::start_all(clients, config, starts, deadline).await {
        let r = &records[start.index];
        match result {
            StartResult::Done(StartOutcome::Started { .. }) => report.summary.orders_started += 1,
            StartResult::Done(StartOutcome::AlreadyExists { .. }) => {
                report.summary.orders_already_started += 1;
            }
            StartResult::Rejected(e) => {
                report.summary.orders_rejected += 1;
                order_rejections.push((start.index, Rejection::OrderRejected(e.to_string())));
            }
            StartResult::Unstarted { error, attempts } => {
                tracing::debug!(sequence_number = %r.kinesis.sequence_number, error = %error, "order not started");
                let input = serde_json::from_str(&start.input)
                    .map_err(|e| EtlError::internal(format!("order input: {e}")))?;
                failed_orders.push(FailedOrder {
                    execution_name: start.execution_name,
                    state_machine_arn: config.order_state_machine_arn.clone(),
                    shard_id: r.shard_id().to_string(),
                    sequence_number: r.kinesis.sequence_number.clone(),
                    error_type: error.error_type().to_string(),
                    error: error.to_string(),
                    attempts,
                    input,
                });
            }
        }
    }
    report.summary.orders_recorded = failed_orders.len();
    if let Some(f) = failed_orders.first() {
        tracing::warn!(
            shard_id,
            not_started = failed_orders.len(),
            first_sequence_number = %f.sequence_number,
            error = %f.error,
            error_type = %f.error_type,
            "order workflow starts failed; recording them for replay"
        );
    }

    let keys = batch_keys(
        config,
        shard_id,
        &records[0].kinesis.sequence_number,
        records[0].arrival_ms(),
    );
    let written = write_objects(
        clients,
        config,
        &keys,
        records,
        &classified,
        &order_rejections,
        &failed_orders,
        &data,
        shard_id,
        &mut report.summary,
    )
    .await;
    match written {
        Ok(()) => report.summary.written = records.len(),
        Err(e) => {
            tracing::warn!(
                shard_id,
                records = records.len(),
                error = %e,
                error_type = e.error_type(),
                "writing the batch to S3 failed; reporting every record for retry"
            );
            // Every record, so the retry starts at the first one and rewrites these keys.
            report
                .response
                .set_failures(records.iter().map(|r| r.kinesis.sequence_number.clone()));
            report.summary.failed_records = records.len();
            report.summary.archive_key = None;
            report.summary.sessions_key = None;
            report.summary.quarantine_key = None;
            report.summary.failed_orders_key = None;
        }
    }
    Ok(report)
}

/// Writes `body` to `key`, or deletes `key` when `body` is empty, so a retry with less in
/// it leaves nothing stale. A delete the role may not make (the template predating it) is
/// logged and skipped: better a possible stale object than a shard blocked for good.
async fn put_or_delete(
    clients: &Clients,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<bool, EtlError> {
    if body.is_empty() {
        let deleted = clients
            .s3
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| EtlError::from_sdk(format!("deleting s3://{bucket}/{key}"), e));
        return match deleted {
            Ok(_) => Ok(false),
            Err(e) if e.kind() == ErrorKind::AccessDenied => {
                tracing::warn!(bucket, key, error = %e, "cannot delete a possibly stale object (grant s3:DeleteObject)");
                Ok(false)
            }
            Err(e) => Err(e),
        };
    }
    let options = etl_aws::s3::PutOptions {
        content_type: Some("application/x-ndjson".to_string()),
        ..Default::default()
    };
    etl_aws::s3::put_object_from_reader(&clients.s3, bucket, key, body.as_slice(), &options)
        .await
        .map(|_| true)
}

#[allow(clippy::too_many_arguments)]
async fn write_objects<'a>(
    clients: &Clients,
    config: &Config,
    keys: &BatchKeys,
    records: &[BatchRecord],
    classified: &[Result<Event<'a>, Rejection>],
    order_rejections: &[(usize, Rejection)],
    failed_orders: &[FailedOrder],
    data: &impl Fn(usize) -> Option<&'a [u8]>,
    shard_id: &str,
    summary: &mut BatchSummary,
) -> Result<(), EtlError> {
    let mut archive = flate2::write::GzEncoder::new(
        Vec::with_capacity(records.len() * 64),
        // Fast level: the archive is written once per batch on the hot path; level 1 still
        // shrinks JSON events several times over.
        flate2::Compression::fast(),
    );
    let mut quarantine = Vec::new();
    let mut aggregator = Aggregator::new();
    let mut rejected = order_rejections.iter().peekable();
    for (i, c) in classified.iter().enumerate() {
        let record = &records[i];
        let rejection = match c {
            Ok(e) => {
                match e.event_type {
                    EventType::PageView => summary.page_views += 1,
                    EventType::Purchase => summary.purchases += 1,
                }
                match rejected.peek().copied() {
                    Some((j, r)) if *j == i => {
                        rejected.next();
                        Some(r)
                    }
                    _ => {
                        aggregator.add(e);
                        None
                    }
                }
            }
            Err(r) => Some(r),
        };
        let is_json = !matches!(c, Err(Rejection::InvalidBase64 | Rejection::NotJson(_)));
        write_archive_line(&mut archive, record, shard_id, data(i), is_json)
            .map_err(|e| io_internal("compressing the archive", e))?;
        if let Some(r) = rejection {
            tracing::debug!(sequence_number = %record.kinesis.sequence_number, reason = %r, "record quarantined");
            let line = QuarantineLine {
                sequence_number: &record.kinesis.sequence_number,
                partition_key: &record.kinesis.partition_key,
                approximate_arrival_timestamp: rfc3339_ms(record.arrival_ms()),
                shard_id,
                reason: &r.reason(),
                detail: r.detail(),
                data_base64: &record.kinesis.data,
            };
            serde_json::to_writer(&mut quarantine, &line)
                .map_err(|e| EtlError::internal(format!("serializing a quarantine line: {e}")))?;
            quarantine.push(b'\n');
            summary.quarantined += 1;
        }
    }
    let archive = archive
        .finish()
        .map_err(|e| io_internal("compressing the archive", e))?;
    let windows = aggregator.into_windows();
    summary.sessions = windows.len();
    let mut sessions = Vec::with_capacity(windows.len() * 256);
    for w in &windows {
        serde_json::to_writer(&mut sessions, &w.line())
            .map_err(|e| EtlError::internal(format!("serializing a session line: {e}")))?;
        sessions.push(b'\n');
    }
    let failed = orders::failed_orders_body(failed_orders)?;

    let bucket = config.bucket.as_str();
    let (a, s, q, f) = futures::join!(
        put_or_delete(clients, bucket, &keys.archive, archive),
        put_or_delete(clients, bucket, &keys.sessions, sessions),
        put_or_delete(clients, bucket, &keys.quarantine, quarantine),
        put_or_delete(clients, bucket, &keys.failed_orders, failed),
    );
    let key = |written: bool, key: &str| written.then(|| key.to_string());
    summary.archive_key = key(a?, &keys.archive);
    summary.sessions_key = key(s?, &keys.sessions);
    summary.quarantine_key = key(q?, &keys.quarantine);
    summary.failed_orders_key = key(f?, &keys.failed_orders);
    Ok(())
}

/// What the handler answers: Lambda's `{"batchItemFailures": [...]}` for a batch, the
/// replay's summary for an operator's `replayFailedOrders` invocation.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Response {
    Batch(KinesisEventResponse),
    Replay(orders::ReplaySummary),
}

/// The invocation's deadline as an [`Instant`]; `None` when the context has none (0).
pub fn deadline_of(context: &lambda_runtime::Context) -> Option<Instant> {
    if context.deadline == 0 {
        return None;
    }
    let left = context
        .deadline()
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    Some(Instant::now() + left)
}

/// The handler: processes the batch, logs the summary, emits metrics, answers
/// `{"batchItemFailures": [...]}`; or replays failed orders when asked to.
pub async fn handler(
    event: LambdaEvent<KinesisBatch>,
    clients: &Clients,
    config: &Config,
) -> Result<Response, EtlError> {
    if let Some(replay) = &event.payload.replay_failed_orders {
        let summary = orders::replay_failed_orders(clients, config, &replay.prefix).await?;
        return Ok(Response::Replay(summary));
    }
    let started = Instant::now();
    let report = process(&event.payload, clients, config, deadline_of(&event.context)).await?;
    let s = &report.summary;
    tracing::info!(
        shard_id = %s.shard_id,
        records = s.records,
        page_views = s.page_views,
        purchases = s.purchases,
        quarantined = s.quarantined,
        sessions = s.sessions,
        written = s.written,
        orders_started = s.orders_started,
        orders_already_started = s.orders_already_started,
        orders_rejected = s.orders_rejected,
        orders_recorded = s.orders_recorded,
        failed_records = s.failed_records,
        archive_key = s.archive_key.as_deref().unwrap_or(""),
        failed_orders_key = s.failed_orders_key.as_deref().unwrap_or(""),
        "batch processed"
    );
    let mut metrics =
        etl_aws::metrics::Metrics::new("ServerlessEtl").dimension("function", "kinesis-consumer");
    use etl_aws::metrics::Unit;
    metrics.put("Records", s.records as f64, Unit::Count);
    metrics.put("Quarantined", s.quarantined as f64, Unit::Count);
    metrics.put("OrdersStarted", s.orders_started as f64, Unit::Count);
    // Purchases waiting in failed-orders/ for a replay: worth an alarm at > 0.
    metrics.put("OrdersRecorded", s.orders_recorded as f64, Unit::Count);
    metrics.put("FailedRecords", s.failed_records as f64, Unit::Count);
    metrics.put(
        "Duration",
        started.elapsed().as_secs_f64() * 1000.0,
        Unit::Milliseconds,
    );
    metrics.flush();
    Ok(Response::Batch(report.response))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_source(&[
            ("ARCHIVE_BUCKET", "events"),
            (
                "ORDER_STATE_MACHINE_ARN",
                "arn:aws:states:us-east-1:000000000000:stateMachine:orders",
            ),
        ])
        .unwrap()
    }

    fn fixture() -> &'static [u8] {
        include_bytes!("../tests/fixtures/example-kinesis-event.json")
    }

    #[test]
    fn config_defaults_and_errors() {
        let c = config();
        assert_eq!(c.archive_prefix, "archive/");
        assert_eq!(c.sessions_prefix, "sessions/");
        assert_eq!(c.quarantine_prefix, "quarantine/kinesis/");
        assert_eq!(c.start_concurrency, 10);
        assert_eq!(c.failed_orders_prefix, "failed-orders/");
        assert_eq!(c.start_attempts, 3);
        let err = Config::from_source(&[("ORDER_STATE_MACHINE_ARN", "arn:x")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing required environment variable ARCHIVE_BUCKET"
        );
        let err = Config::from_source(&[("ARCHIVE_BUCKET", "b")]).unwrap_err();
        assert!(err.to_string().contains("ORDER_STATE_MACHINE_ARN"), "{err}");
        let err = Config::from_source(&[
            ("ARCHIVE_BUCKET", "b"),
            ("ORDER_STATE_MACHINE_ARN", "orders"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("state machine ARN"), "{err}");
        let c = Config::from_source(&[
            ("ARCHIVE_BUCKET", "b"),
            ("ORDER_STATE_MACHINE_ARN", "arn:x"),
            ("ARCHIVE_PREFIX", "raw/events"),
            ("START_CONCURRENCY", "3"),
        ])
        .unwrap();
        assert_eq!(c.archive_prefix, "raw/events/");
        assert_eq!(c.start_concurrency, 3);
        let err = Config::from_source(&[
            ("ARCHIVE_BUCKET", "b"),
            ("ORDER_STATE_MACHINE_ARN", "arn:x"),
            ("START_CONCURRENCY", "0"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("START_CONCURRENCY"), "{err}");
        let err = Config::from_source(&[
            ("ARCHIVE_BUCKET", "b"),
            ("ORDER_STATE_MACHINE_ARN", "arn:x"),
            ("START_ATTEMPTS", "11"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("START_ATTEMPTS"), "{err}");
    }

    #[test]
    fn replay_requests_and_deadlines() {
        let e: KinesisBatch =
            serde_json::from_str(r#"{"replayFailedOrders": {"prefix": "year=2024/"}}"#).unwrap();
        assert!(e.records.is_empty());
        assert_eq!(e.replay_failed_orders.unwrap().prefix, "year=2024/");
        let e: KinesisBatch = serde_json::from_str(r#"{"replayFailedOrders": {}}"#).unwrap();
        assert_eq!(e.replay_failed_orders.unwrap().prefix, "");
        let e: KinesisBatch = serde_json::from_slice(fixture()).unwrap();
        assert_eq!(e.replay_failed_orders, None);

        let mut context = lambda_runtime::Context::default();
        assert_eq!(deadline_of(&context), None, "no deadline in the context");
        let in_a_minute = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        context.deadline = in_a_minute
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let left = deadline_of(&context).unwrap() - Instant::now();
        assert!(
            left > std::time::Duration::from_secs(55) && left <= std::time::Duration::from_secs(60),
            "{left:?}"
        );
    }

    #[test]
    fn parses_the_aws_sample_event() {
        let ours: KinesisBatch = serde_json::from_slice(fixture()).unwrap();
        let theirs: aws_lambda_events::event::kinesis::KinesisEvent =
            serde_json::from_slice(fixture()).unwrap();
        assert_eq!(ours.records.len(), 2);
        assert_eq!(theirs.records.len(), 2);
        for (a, b) in ours.records.iter().zip(&theirs.records) {
            assert_eq!(a.kinesis.sequence_number, b.kinesis.sequence_number);
            assert_eq!(a.kinesis.partition_key, b.kinesis.partition_key);
            assert_eq!(Some(a.event_id.as_str()), b.event_id.as_deref());
        }
        let r = &ours.records[0];
        assert_eq!(r.shard_id(), "shardId-000000000000");
        assert_eq!(r.arrival_ms(), 1_480_641_523_477);
        assert_eq!(
            r.kinesis.sequence_number,
            "49568167373333333333333333333333333333333333333333333333"
        );
        // The sample's data is "Hello World": decoded fine, then not JSON.
        let decoded = decode_all(&ours.records);
        let (s, e) = decoded.spans[0].unwrap();
        assert_eq!(&decoded.arena[s..e], b"Hello World");
        assert_eq!(theirs.records[0].kinesis.data.0, b"Hello World");
        assert_eq!(
            classify(&decoded.arena[s..e]).unwrap_err().reason(),
            "not_json"
        );
    }

    #[test]
    fn bad_base64_fails_the_stock_type_but_not_ours() {
        let mut event: serde_json::Value = serde_json::from_slice(fixture()).unwrap();
        event["Records"][1]["kinesis"]["data"] = "not base64!".into();
        let stock = serde_json::from_value::<aws_lambda_events::event::kinesis::KinesisEvent>(
            event.clone(),
        );
        assert!(stock.is_err(), "one bad record fails the whole stock event");
        let ours: KinesisBatch = serde_json::from_value(event).unwrap();
        let decoded = decode_all(&ours.records);
        assert!(decoded.spans[0].is_some());
        assert_eq!(decoded.spans[1], None);
        assert_eq!(decoded.arena, b"Hello World", "no garbage left behind");
    }

    #[test]
    fn execution_names() {
        let seq = "49568167373333333333333333333333333333333333333333333333";
        let n = order_execution_name("shardId-000000000000", seq);
        assert_eq!(n, format!("order-0-{seq}"));
        assert_eq!(
            order_execution_name("shardId-000000000012", "7"),
            "order-12-7"
        );
        assert_ne!(
            order_execution_name("shardId-000000000001", seq),
            n,
            "shards differ"
        );
        let long = "1".repeat(129);
        let a = order_execution_name("shardId-000000000000", &long);
        assert!(etl_aws::sfn::is_valid_name(&a) && a.len() == 80, "{a}");
        assert_eq!(a, order_execution_name("shardId-000000000000", &long));
        let b = order_execution_name("shardId-000000000000", &format!("{}2", "1".repeat(128)));
        assert_ne!(a, b);
    }

    #[test]
    fn keys() {
        let k = batch_keys(&config(), "shardId-000000000000", "495", 1_480_641_523_477);
        assert_eq!(
            k.archive,
            "archive/year=2016/month=12/day=02/hour=01/shardId-000000000000-495.ndjson.gz"
        );
        assert_eq!(
            k.sessions,
            "sessions/year=2016/month=12/day=02/hour=01/shardId-000000000000-495.ndjson"
        );
        assert_eq!(
            k.quarantine,
            "quarantine/kinesis/year=2016/month=12/day=02/hour=01/shardId-000000000000-495.ndjson"
        );
        assert_eq!(
            k.failed_orders,
            "failed-orders/year=2016/month=12/day=02/hour=01/shardId-000000000000-495.ndjson"
        );
        assert_eq!(key_safe("a/b:c"), "a_b_c");
    }

    #[test]
    fn archive_lines() {
        let record = BatchRecord {
            event_id: "shardId-000000000000:1".into(),
            kinesis: KinesisData {
                data: "eyJhIjoxfQ==".into(),
                partition_key: "p\"k".into(),
                sequence_number: "1".into(),
                approximate_arrival_timestamp: 1_714_564_800.5,
            },
            ..Default::default()
        };
        let mut out = Vec::new();
        write_archive_line(
            &mut out,
            &record,
            "shardId-000000000000",
            Some(b" {\"a\":1}\n"),
            true,
        )
        .unwrap();
        write_archive_line(&mut out, &record, "s", Some(b"{\"a\":\n 1}"), true).unwrap();
        write_archive_line(&mut out, &record, "s", Some(b"Hello"), false).unwrap();
        write_archive_line(&mut out, &record, "s", None, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(
            lines[0],
            serde_json::json!({
                "sequence_number": "1", "partition_key": "p\"k",
                "approximate_arrival_timestamp": "2024-05-01T12:00:00.500Z",
                "shard_id": "shardId-000000000000", "data": {"a": 1}
            })
        );
        assert_eq!(lines[1]["data"], serde_json::json!({"a": 1}));
        assert_eq!(lines[2]["data_base64"], "eyJhIjoxfQ==");
        assert_eq!(lines[3]["data_base64"], "eyJhIjoxfQ==");
    }

    #[test]
    fn order_inputs() {
        let record = BatchRecord {
            kinesis: KinesisData {
                sequence_number: "42".into(),
                partition_key: "c1".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let input = order_input(
            b"{\"event_type\":\"purchase\",\n\"amount\":5}",
            &record,
            "shardId-1",
        )
        .unwrap();
        let value: serde_json::Value = serde_json::from_str(&input).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "order": {"event_type": "purchase", "amount": 5},
                "source": {"shardId": "shardId-1", "sequenceNumber": "42", "partitionKey": "c1"}
            })
        );
    }

    /// Decoding, classifying and aggregating a 10,000-record batch, the work done per
    /// record on the hot path. A sanity check that it stays allocation-light and fast
    /// enough; the throughput figure itself belongs to the benchmarks, not a timed test.
    #[test]
    fn large_batch_decodes_and_aggregates() {
        let engine = &base64::engine::general_purpose::STANDARD;
        let records: Vec<BatchRecord> = (0..10_000)
            .map(|i| {
                let json = if i % 10 == 0 {
                    format!(
                        r#"{{"event_type":"purchase","customer_id":"c{}","session_id":"s{}","amount":{}.5,"timestamp":"2024-05-01T12:{:02}:00Z"}}"#,
                        i % 500,
                        i % 1000,
                        i % 100,
                        i % 60
                    )
                } else {
                    format!(
                        r#"{{"event_type":"page_view","customer_id":"c{}","session_id":"s{}","page_url":"/p/{i}","timestamp":{}}}"#,
                        i % 500,
                        i % 1000,
                        1_714_564_800 + i
                    )
                };
                BatchRecord {
                    kinesis: KinesisData {
                        data: engine.encode(json),
                        sequence_number: i.to_string(),
                        ..Default::default()
                    },
                    ..Default::default()
                }
            })
            .collect();
        let decoded = decode_all(&records);
        let mut agg = Aggregator::new();
        let mut events = 0;
        for span in &decoded.spans {
            let (s, e) = span.unwrap();
            agg.add(&classify(&decoded.arena[s..e]).unwrap());
            events += 1;
        }
        assert_eq!(events, 10_000);
        let windows = agg.into_windows();
        assert_eq!(windows.iter().map(|w| w.events).sum::<u64>(), 10_000);
        assert_eq!(windows.iter().map(|w| w.purchases).sum::<u64>(), 1_000);
        let cents: i64 = windows.iter().map(|w| w.total_amount_cents).sum();
        let want: i64 = (0..10_000)
            .filter(|i| i % 10 == 0)
            .map(|i| (i % 100) * 100 + 50)
            .sum();
        assert_eq!(cents, want);
    }
}
