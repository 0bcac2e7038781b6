//! source-data-checker: the workflow's first task. Is there new raw data to process?
//!
//! Lists `s3://<bucket>/<prefix>` (every page) for objects modified after a cutoff (the
//! input's `since`, else now minus `lookbackHours`) whose key ends with one of the
//! accepted suffixes, and answers the seed's `{dataAvailable, fileCount, files}` plus
//! `totalBytes`, per-file details and `glueWorkers` (the Glue engine's run size for those
//! bytes, by [`etl_aws::routing`]). A list too large for a Step Functions state (256 KB)
//! is written to S3 as a JSON array of `{bucket, key, etag, size}` instead, and its
//! location is returned as `itemsLocation`, for a Distributed Map ItemReader or the Glue
//! job's `--items_location`.
//!
//! Files s3-processor already processed are skipped (counted in `skippedCount`): a file
//! whose manifest in `PROCESSED_BUCKET` names the same bucket, key and ETag with status
//! `succeeded`. The manifest prefix is listed once (a page per 1000 manifests, no more
//! than the raw listing itself costs), and only files whose manifest exists are read, a
//! few at a time. `{"reprocess": true}` in the input turns the check off.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use etl_aws::EtlError;
use etl_aws::config::{self, ConfigError, EnvSource, ProcessEnv};
use etl_aws::routing::RoutingConfig;
use futures::{StreamExt, TryStreamExt};
use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Suffixes accepted when neither the input nor `SOURCE_SUFFIXES` names any.
pub const DEFAULT_SUFFIXES: &[&str] =
    &[".csv", ".tsv", ".json", ".ndjson", ".jsonl", ".gz", ".zst"];
/// Step Functions' state payload limit.
pub const STATE_PAYLOAD_LIMIT: usize = 256 * 1024;
/// Manifests read at once when checking which files were already processed.
const MANIFEST_READ_CONCURRENCY: usize = 16;

/// Settings from the environment; the input may override bucket, prefix, lookback and
/// suffixes per execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `RAW_BUCKET`: the bucket to list (optional; then every input must name one).
    pub bucket: Option<String>,
    /// `RAW_PREFIX` (default `raw-data/`).
    pub prefix: String,
    /// `LOOKBACK_HOURS` (default 1, as the seed checked the last hour).
    pub lookback_hours: f64,
    /// `SOURCE_SUFFIXES`, comma-separated (default [`DEFAULT_SUFFIXES`]); matched without
    /// case. An empty list accepts every key.
    pub suffixes: Vec<String>,
    /// `MANIFEST_BUCKET` (default: the listed bucket) for large lists.
    pub manifest_bucket: Option<String>,
    /// `MANIFEST_PREFIX` (default `_manifests/source-data-checker/`). Keys under it are
    /// never reported as source data.
    pub manifest_prefix: String,
    /// `INLINE_LIMIT_BYTES`: the largest response returned inline (default 200000, leaving
    /// room in the 256 KB state for the rest of the workflow's data).
    pub inline_limit_bytes: usize,
    /// `LIST_PAGE_SIZE`: MaxKeys per ListObjectsV2 page (default 1000, S3's maximum).
    pub page_size: i32,
    /// `PROCESSED_BUCKET`: where s3-processor writes its run manifests. When unset, no
    /// file is skipped as already processed.
    pub processed_bucket: Option<String>,
    /// `PROCESSED_MANIFEST_PREFIX` (default `manifests/`, s3-processor's `MANIFEST_PREFIX`).
    pub processed_manifest_prefix: String,
    /// `GLUE_MIN_WORKERS`, `GLUE_MAX_WORKERS`, `GLUE_BYTES_PER_WORKER`: `glueWorkers`.
    pub routing: RoutingConfig,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    /// Reads any [`EnvSource`] (tests pass a map).
    pub fn from_source(env: &impl EnvSource) -> Result<Self, ConfigError> {
        let lookback_hours = config::parse_or(env, "LOOKBACK_HOURS", 1.0_f64)?;
        if !(lookback_hours > 0.0 && lookback_hours.is_finite()) {
            return Err(config::invalid(
                "LOOKBACK_HOURS",
                lookback_hours.to_string(),
                "must be a positive number of hours",
            ));
        }
        let inline_limit_bytes = config::parse_or(env, "INLINE_LIMIT_BYTES", 200_000_usize)?;
        if inline_limit_bytes > STATE_PAYLOAD_LIMIT {
            return Err(config::invalid(
                "INLINE_LIMIT_BYTES",
                inline_limit_bytes.to_string(),
                format!("must not exceed the Step Functions limit of {STATE_PAYLOAD_LIMIT} bytes"),
            ));
        }
        let page_size = config::parse_or(env, "LIST_PAGE_SIZE", 1000_i32)?;
        if !(1..=1000).contains(&page_size) {
            return Err(config::invalid(
                "LIST_PAGE_SIZE",
                page_size.to_string(),
                "must be between 1 and 1000",
            ));
        }
        Ok(Self {
            bucket: config::optional(env, "RAW_BUCKET"),
            prefix: config::optional(env, "RAW_PREFIX").unwrap_or_else(|| "raw-data/".into()),
            lookback_hours,
            suffixes: config::list(env, "SOURCE_SUFFIXES")
                .unwrap_or_else(|| DEFAULT_SUFFIXES.iter().map(|s| s.to_string()).collect()),
            manifest_bucket: config::optional(env, "MANIFEST_BUCKET"),
            manifest_prefix: config::optional(env, "MANIFEST_PREFIX")
                .unwrap_or_else(|| "_manifests/source-data-checker/".into()),
            inline_limit_bytes,
            page_size,
            processed_bucket: config::optional(env, "PROCESSED_BUCKET"),
            processed_manifest_prefix: config::optional(env, "PROCESSED_MANIFEST_PREFIX")
                .unwrap_or_else(|| "manifests/".into()),
            routing: RoutingConfig::from_source(env)?,
        })
    }
}

/// SDK clients, built once per cold start.
#[derive(Debug, Clone)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
}

impl Clients {
    pub fn new(conf: &aws_config::SdkConfig) -> Self {
        Self {
            s3: etl_aws::clients::s3(conf),
        }
    }
}

/// The task input; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckInput {
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub lookback_hours: Option<f64>,
    /// RFC 3339; when given, replaces the lookback (a watermark from the previous run).
    pub since: Option<String>,
    pub suffixes: Option<Vec<String>>,
    /// Process every listed file again, even those already processed with the same ETag.
    pub reprocess: Option<bool>,
}

/// One new object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileInfo {
    pub bucket: String,
    pub key: String,
    pub size: i64,
    pub last_modified: Option<String>,
    pub etag: Option<String>,
}

/// Where a large list was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemsLocation {
    pub bucket: String,
    pub key: String,
}

/// One item of a large list: what the workflow's Map selects (`bucket`, `key`, `etag`: a
/// missing field is a `States.Runtime` error there, so `etag` is always written) and what
/// the Glue job reads from `--items_location` (also `size`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub etag: Option<&'a str>,
    pub size: i64,
}

/// The task output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckOutput {
    pub data_available: bool,
    /// Files to process (listed, minus those skipped).
    pub file_count: usize,
    /// Listed files already processed with the same ETag, left out of `files`.
    pub skipped_count: usize,
    pub total_bytes: i64,
    /// Workers for a Glue run over `total_bytes` (the workflow's glue engine).
    pub glue_workers: u32,
    /// The cutoff used (exclusive), RFC 3339.
    pub since: String,
    /// Present when the list fits inline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileInfo>>,
    /// Present instead of `files` when the list was written to S3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items_location: Option<ItemsLocation>,
}

/// The effective settings of one invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub bucket: String,
    pub prefix: String,
    pub cutoff: DateTime<Utc>,
    pub suffixes: Vec<String>,
    pub reprocess: bool,
}

/// Parses the raw event: anything malformed is an `InvalidInput` error (the runtime's own
/// deserialization error would have an unstable type name).
pub fn parse_input(payload: Value) -> Result<CheckInput, EtlError> {
    if payload.is_null() {
        return Ok(CheckInput::default());
    }
    serde_json::from_value(payload)
        .map_err(|e| EtlError::invalid_input(format!("invalid source-data-checker input: {e}")))
}

/// Combines input, config and the current time.
pub fn plan(input: CheckInput, config: &Config, now: DateTime<Utc>) -> Result<Plan, EtlError> {
    let bucket = input
        .bucket
        .or_else(|| config.bucket.clone())
        .filter(|b| !b.is_empty())
        .ok_or_else(|| {
            EtlError::invalid_input("no bucket to check: set RAW_BUCKET or pass \"bucket\"")
        })?;
    let cutoff = match (input.since, input.lookback_hours) {
        (Some(since), _) => DateTime::parse_from_rfc3339(&since)
            .map_err(|e| {
                EtlError::invalid_input(format!(
                    "invalid \"since\" {since:?}: {e} (expected RFC 3339, e.g. 2024-05-01T00:00:00Z)"
                ))
            })?
            .with_timezone(&Utc),
        (None, hours) => {
            let hours = hours.unwrap_or(config.lookback_hours);
            if !(hours > 0.0 && hours <= 24.0 * 366.0) {
                return Err(EtlError::invalid_input(format!(
                    "invalid \"lookbackHours\" {hours}: must be above 0 and at most a year"
                )));
            }
            now - Duration::milliseconds((hours * 3_600_000.0) as i64)
        }
    };
    let suffixes = input
        .suffixes
        .unwrap_or_else(|| config.suffixes.clone())
        .into_iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    Ok(Plan {
        bucket,
        prefix: input.prefix.unwrap_or_else(|| config.prefix.clone()),
        cutoff,
        suffixes,
        reprocess: input.reprocess.unwrap_or(false),
    })
}

/// Whether a listed object is new source data.
pub fn accept(
    plan: &Plan,
    manifest_prefix: Option<&str>,
    key: &str,
    last_modified: Option<DateTime<Utc>>,
) -> bool {
    if key.ends_with('/') || manifest_prefix.is_some_and(|p| key.starts_with(p)) {
        return false;
    }
    if last_modified.is_none_or(|t| t <= plan.cutoff) {
        return false;
    }
    if plan.suffixes.is_empty() {
        return true;
    }
    let lower = key.to_ascii_lowercase();
    plan.suffixes.iter().any(|s| lower.ends_with(s.as_str()))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The handler.
pub async fn handler(
    event: LambdaEvent<Value>,
    clients: &Clients,
    config: &Config,
) -> Result<CheckOutput, EtlError> {
    let input = parse_input(event.payload)?;
    let plan = plan(input, config, Utc::now())?;
    let manifest_bucket = config
        .manifest_bucket
        .clone()
        .unwrap_or_else(|| plan.bucket.clone());
    // Our own manifests must never look like source data.
    let skip_prefix = (manifest_bucket == plan.bucket).then_some(config.manifest_prefix.as_str());
    let listing = etl_aws::s3::list_objects(
        &clients.s3,
        &plan.bucket,
        &plan.prefix,
        Some(config.page_size),
        |o| accept(&plan, skip_prefix, &o.key, o.last_modified),
    )
    .await?;
    let listed: Vec<FileInfo> = listing
        .objects
        .into_iter()
        .map(|o| FileInfo {
            bucket: plan.bucket.clone(),
            key: o.key,
            size: o.size,
            last_modified: o.last_modified.map(rfc3339),
            etag: o.etag,
        })
        .collect();
    let listed_count = listed.len();
    let files = match (&config.processed_bucket, plan.reprocess) {
        (Some(processed), false) if !listed.is_empty() => {
            let done = already_processed(
                clients,
                processed,
                &config.processed_manifest_prefix,
                &listed,
            )
            .await?;
            listed
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !done.contains(i))
                .map(|(_, f)| f)
                .collect()
        }
        _ => listed,
    };
    let skipped_count = listed_count - files.len();
    let total_bytes: i64 = files.iter().map(|f| f.size).sum();
    let mut output = CheckOutput {
        data_available: !files.is_empty(),
        file_count: files.len(),
        skipped_count,
        total_bytes,
        glue_workers: config
            .routing
            .glue_workers(u64::try_from(total_bytes).unwrap_or(0)),
        since: rfc3339(plan.cutoff),
        files: Some(files),
        items_location: None,
    };
    let inline_size = serde_json::to_vec(&output)
        .map_err(|e| EtlError::internal(format!("serializing the output: {e}")))?
        .len();
    if inline_size > config.inline_limit_bytes {
        let files = output.files.take().unwrap_or_default();
        let location = write_items(clients, config, &manifest_bucket, &files).await?;
        tracing::info!(
            bucket = %plan.bucket,
            prefix = %plan.prefix,
            files = output.file_count,
            inline_size,
            items_bucket = %location.bucket,
            items_key = %location.key,
            "file list too large for the state, written to S3"
        );
        output.items_location = Some(location);
    }
    tracing::info!(
        bucket = %plan.bucket,
        prefix = %plan.prefix,
        since = %output.since,
        scanned = listing.scanned,
        pages = listing.pages,
        files = output.file_count,
        skipped = output.skipped_count,
        reprocess = plan.reprocess,
        total_bytes = output.total_bytes,
        "source data checked"
    );
    Ok(output)
}

/// The manifest body: a JSON array of `{bucket, key, etag, size}`, what a Distributed Map
/// ItemReader (`InputType: JSON`) hands to s3-processor item by item, and the Glue job
/// reads whole.
pub fn items_json(files: &[FileInfo]) -> Result<Vec<u8>, EtlError> {
    let items: Vec<Item<'_>> = files
        .iter()
        .map(|f| Item {
            bucket: &f.bucket,
            key: &f.key,
            etag: f.etag.as_deref(),
            size: f.size,
        })
        .collect();
    serde_json::to_vec(&items).map_err(|e| EtlError::internal(format!("serializing items: {e}")))
}

/// The manifest key is derived from its content (keys and etags), so a retried task with
/// the same listing rewrites the same object instead of leaving another one behind.
pub fn items_key(prefix: &str, files: &[FileInfo]) -> String {
    let mut identity = String::new();
    for f in files {
        identity.push_str(&f.bucket);
        identity.push('\n');
        identity.push_str(&f.key);
        identity.push('\n');
        identity.push_str(f.etag.as_deref().unwrap_or(""));
        identity.push('\n');
    }
    format!(
        "{prefix}{}-{:016x}.json",
        files.len(),
        etl_aws::stable_hash(identity.as_bytes())
    )
}

/// The source hash in an s3-processor manifest key (`.../<stem>-<16 hex digits>.json`).
pub fn manifest_source_hash(manifest_key: &str) -> Option<u64> {
    let name = manifest_key.rsplit('/').next()?.strip_suffix(".json")?;
    let (_, hex) = name.rsplit_once('-')?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Whether a manifest records a successful run of exactly this object version. A run
/// whose quality gate failed published nothing, so it is not skipped: it runs (and fails,
/// and alerts) again until the file is replaced.
pub fn manifest_covers(manifest: &Value, file: &FileInfo) -> bool {
    let unquote = |e: &str| e.trim_matches('"').to_string();
    let Some(etag) = file.etag.as_deref().map(unquote) else {
        return false;
    };
    let source = &manifest["source"];
    source["name"].as_str() == Some(format!("s3://{}/{}", file.bucket, file.key).as_str())
        && source["etag"].as_str().map(unquote) == Some(etag)
        && manifest["status"].as_str() == Some("succeeded")
}

/// The indexes of `files` that s3-processor already processed with the same ETag.
async fn already_processed(
    clients: &Clients,
    bucket: &str,
    prefix: &str,
    files: &[FileInfo],
) -> Result<HashSet<usize>, EtlError> {
    let mut by_hash: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        by_hash
            .entry(etl_aws::source_object_hash(&f.bucket, &f.key))
            .or_default()
            .push(i);
    }
    // Only manifests of listed files are kept (and read).
    let manifests = etl_aws::s3::list_objects(&clients.s3, bucket, prefix, None, |o| {
        manifest_source_hash(&o.key).is_some_and(|h| by_hash.contains_key(&h))
    })
    .await?;
    let checks: Vec<(String, usize)> = manifests
        .objects
        .into_iter()
        .flat_map(|m| {
            let hash = manifest_source_hash(&m.key).unwrap_or_default();
            let indexes = by_hash.get(&hash).cloned().unwrap_or_default();
            indexes.into_iter().map(move |i| (m.key.clone(), i))
        })
        .collect();
    let read = checks.len();
    let done: HashSet<usize> = futures::stream::iter(checks)
        .map(|(key, i)| async move {
            let covered = read_manifest(clients, bucket, &key)
                .await?
                .is_some_and(|m| manifest_covers(&m, &files[i]));
            Ok::<_, EtlError>(covered.then_some(i))
        })
        .buffer_unordered(MANIFEST_READ_CONCURRENCY)
        .try_filter_map(|i| async move { Ok(i) })
        .try_collect()
        .await?;
    tracing::info!(
        manifests_scanned = manifests.scanned,
        manifests_read = read,
        already_processed = done.len(),
        "checked for processed files"
    );
    Ok(done)
}

/// A manifest's JSON; `None` when it vanished since the listing or does not parse (then
/// the file is processed, which rewrites it).
async fn read_manifest(
    clients: &Clients,
    bucket: &str,
    key: &str,
) -> Result<Option<Value>, EtlError> {
    let object = match etl_aws::s3::get_object(&clients.s3, bucket, key).await {
        Ok(o) => o,
        Err(e) if e.kind() == etl_aws::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // A body cut off mid-read is transient: retried by the workflow.
    let bytes = object.bytes().await?;
    Ok(serde_json::from_slice(&bytes).ok())
}

async fn write_items(
    clients: &Clients,
    config: &Config,
    bucket: &str,
    files: &[FileInfo],
) -> Result<ItemsLocation, EtlError> {
    let key = items_key(&config.manifest_prefix, files);
    let body = items_json(files)?;
    etl_aws::s3::put_object_from_reader(
        &clients.s3,
        bucket,
        &key,
        body.as_slice(),
        &etl_aws::s3::PutOptions {
            content_type: Some("application/json".into()),
            ..Default::default()
        },
    )
    .await?;
    Ok(ItemsLocation {
        bucket: bucket.to_string(),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Context;
    use serde_json::json;

    fn config() -> Config {
        Config::from_source(&[("RAW_BUCKET", "raw")]).unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn config_defaults_and_errors() {
        let c = config();
        assert_eq!(c.bucket.as_deref(), Some("raw"));
        assert_eq!(c.prefix, "raw-data/");
        assert_eq!(c.lookback_hours, 1.0);
        assert_eq!(c.inline_limit_bytes, 200_000);
        assert!(c.suffixes.contains(&".csv".to_string()));
        let err = Config::from_source(&[("LOOKBACK_HOURS", "-2")]).unwrap_err();
        assert!(err.to_string().contains("LOOKBACK_HOURS"), "{err}");
        let err = Config::from_source(&[("INLINE_LIMIT_BYTES", "300000")]).unwrap_err();
        assert!(err.to_string().contains("INLINE_LIMIT_BYTES"), "{err}");
        let c = Config::from_source(&[("SOURCE_SUFFIXES", ".CSV, .parquet")]).unwrap();
        assert_eq!(c.suffixes, [".CSV", ".parquet"]);
        // Glue sizing is read (and checked) with the rest.
        assert_eq!(c.routing, etl_aws::routing::RoutingConfig::default());
        let err = Config::from_source(&[("GLUE_MIN_WORKERS", "1")]).unwrap_err();
        assert!(err.to_string().contains("GLUE_MIN_WORKERS"), "{err}");
    }

    #[test]
    fn input_parsing() {
        let event = LambdaEvent::new(
            json!({"bucket": "b", "prefix": "p/", "lookbackHours": 2.5, "suffixes": [".CSV"]}),
            Context::default(),
        );
        let input = parse_input(event.payload).unwrap();
        assert_eq!(input.bucket.as_deref(), Some("b"));
        assert_eq!(input.lookback_hours, Some(2.5));
        let p = plan(input, &config(), now()).unwrap();
        assert_eq!(p.cutoff.to_rfc3339(), "2024-05-01T09:30:00+00:00");
        assert_eq!(p.suffixes, [".csv"]);
        assert_eq!(p.prefix, "p/");

        assert_eq!(parse_input(Value::Null).unwrap(), CheckInput::default());
        let err = parse_input(json!({"lookbackHour": 2})).unwrap_err();
        assert_eq!(err.error_type(), "InvalidInput");
        assert!(err.to_string().contains("lookbackHour"), "{err}");
        let err = parse_input(json!({"lookbackHours": "two"})).unwrap_err();
        assert_eq!(err.error_type(), "InvalidInput");
    }

    #[test]
    fn plan_defaults_since_and_errors() {
        let p = plan(CheckInput::default(), &config(), now()).unwrap();
        assert_eq!(p.bucket, "raw");
        assert_eq!(p.cutoff.to_rfc3339(), "2024-05-01T11:00:00+00:00");
        let input = CheckInput {
            since: Some("2024-04-30T00:00:00+02:00".into()),
            lookback_hours: Some(5.0),
            ..Default::default()
        };
        let p = plan(input, &config(), now()).unwrap();
        assert_eq!(p.cutoff.to_rfc3339(), "2024-04-29T22:00:00+00:00");

        let no_bucket = Config::from_source(&[("X", "y")]).unwrap();
        let err = plan(CheckInput::default(), &no_bucket, now()).unwrap_err();
        assert!(err.to_string().contains("RAW_BUCKET"), "{err}");
        let bad = CheckInput {
            since: Some("yesterday".into()),
            ..Default::default()
        };
        assert_eq!(
            plan(bad, &config(), now()).unwrap_err().error_type(),
            "InvalidInput"
        );
        let bad = CheckInput {
            lookback_hours: Some(0.0),
            ..Default::default()
        };
        assert_eq!(
            plan(bad, &config(), now()).unwrap_err().error_type(),
            "InvalidInput"
        );
    }

    #[test]
    fn acceptance() {
        let p = plan(CheckInput::default(), &config(), now()).unwrap();
        let new = Some(now());
        let old = Some(now() - Duration::hours(2));
        let m = Some("_manifests/");
        assert!(accept(&p, m, "raw-data/a.csv", new));
        assert!(accept(&p, m, "raw-data/a.JSON.GZ", new));
        assert!(!accept(&p, m, "raw-data/a.csv", old));
        assert!(
            !accept(&p, m, "raw-data/a.csv", Some(p.cutoff)),
            "cutoff is exclusive"
        );
        assert!(!accept(&p, m, "raw-data/a.csv", None));
        assert!(!accept(&p, m, "raw-data/a.txt", new));
        assert!(!accept(&p, m, "raw-data/dir/", new));
        assert!(!accept(&p, m, "_manifests/x.json", new));
        let all = Plan {
            suffixes: vec![],
            ..p
        };
        assert!(accept(&all, m, "raw-data/a.txt", new));
    }

    #[test]
    fn output_shape_and_items() {
        let files = vec![FileInfo {
            bucket: "b".into(),
            key: "raw-data/a.csv".into(),
            size: 10,
            last_modified: Some("2024-05-01T11:30:00Z".into()),
            etag: Some("e1".into()),
        }];
        let out = CheckOutput {
            data_available: true,
            file_count: 1,
            skipped_count: 2,
            total_bytes: 10,
            glue_workers: 2,
            since: "2024-05-01T11:00:00Z".into(),
            files: Some(files.clone()),
            items_location: None,
        };
        assert_eq!(
            serde_json::to_value(&out).unwrap(),
            json!({
                "dataAvailable": true, "fileCount": 1, "skippedCount": 2, "totalBytes": 10,
                "glueWorkers": 2, "since": "2024-05-01T11:00:00Z",
                "files": [{"bucket": "b", "key": "raw-data/a.csv", "size": 10,
                           "lastModified": "2024-05-01T11:30:00Z", "etag": "e1"}]
            })
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&items_json(&files).unwrap()).unwrap(),
            json!([{"bucket": "b", "key": "raw-data/a.csv", "etag": "e1", "size": 10}])
        );
        // Without an ETag the field is still there, as the Map's ItemSelector needs.
        let mut no_etag = files.clone();
        no_etag[0].etag = None;
        assert_eq!(
            serde_json::from_slice::<Value>(&items_json(&no_etag).unwrap()).unwrap(),
            json!([{"bucket": "b", "key": "raw-data/a.csv", "etag": null, "size": 10}])
        );
        let k1 = items_key("m/", &files);
        assert!(k1.starts_with("m/1-") && k1.ends_with(".json"), "{k1}");
        assert_eq!(k1, items_key("m/", &files));
        let mut changed = files.clone();
        changed[0].etag = Some("e2".into());
        assert_ne!(k1, items_key("m/", &changed));
    }

    #[test]
    fn manifest_keys_carry_the_source_hash() {
        let h = etl_aws::source_object_hash("raw", "raw-data/customers/a.csv");
        let key = format!("manifests/customers/a.csv-{h:016x}.json");
        assert_eq!(manifest_source_hash(&key), Some(h));
        // Stems may hold dashes themselves; the hash is the last one.
        let key = format!("manifests/customers/a-b-c.csv-{h:016x}.json");
        assert_eq!(manifest_source_hash(&key), Some(h));
        for other in [
            format!("manifests/customers/a.csv-{h:016x}.intent.json"),
            format!(
                "manifests/customers/a.csv-{}.json",
                &format!("{h:016x}")[1..]
            ),
            "manifests/customers/a.csv-zzzzzzzzzzzzzzzz.json".to_string(),
            "manifests/customers/a.json".to_string(),
            format!("manifests/customers/a.csv-{h:016x}.parquet"),
        ] {
            assert_eq!(manifest_source_hash(&other), None, "{other}");
        }
    }

    #[test]
    fn a_manifest_covers_only_the_same_version_processed_successfully() {
        let file = FileInfo {
            bucket: "raw".into(),
            key: "raw-data/customers/a.csv".into(),
            size: 1,
            last_modified: None,
            etag: Some("abc".into()),
        };
        let manifest = |name: &str, etag: Value, status: &str| json!({"source": {"name": name, "etag": etag}, "status": status});
        let name = "s3://raw/raw-data/customers/a.csv";
        assert!(manifest_covers(
            &manifest(name, json!("abc"), "succeeded"),
            &file
        ));
        // S3 quotes ETags in some APIs; the comparison does not care.
        assert!(manifest_covers(
            &manifest(name, json!("\"abc\""), "succeeded"),
            &file
        ));
        assert!(!manifest_covers(
            &manifest(name, json!("abd"), "succeeded"),
            &file
        ));
        assert!(!manifest_covers(
            &manifest(name, Value::Null, "succeeded"),
            &file
        ));
        assert!(!manifest_covers(
            &manifest(name, json!("abc"), "quality_failed"),
            &file
        ));
        assert!(!manifest_covers(
            &manifest(
                "s3://other/raw-data/customers/a.csv",
                json!("abc"),
                "succeeded"
            ),
            &file
        ));
        assert!(!manifest_covers(&json!({"outputs": []}), &file));
        let unknown = FileInfo { etag: None, ..file };
        assert!(!manifest_covers(
            &manifest(name, json!("abc"), "succeeded"),
            &unknown
        ));
    }

    #[test]
    fn reprocess_is_read_from_the_input() {
        let input = parse_input(json!({"reprocess": true})).unwrap();
        assert!(plan(input, &config(), now()).unwrap().reprocess);
        assert!(
            !plan(CheckInput::default(), &config(), now())
                .unwrap()
                .reprocess
        );
        let c = Config::from_source(&[("PROCESSED_BUCKET", "lake")]).unwrap();
        assert_eq!(c.processed_bucket.as_deref(), Some("lake"));
        assert_eq!(c.processed_manifest_prefix, "manifests/");
        assert_eq!(config().processed_bucket, None);
    }
}
