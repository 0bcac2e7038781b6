//! source-data-checker: the workflow's first task. Is there new raw data to process?
//!
//! Lists `s3://<bucket>/<prefix>` (every page) for objects modified after a cutoff (the
//! input's `since`, else now minus `lookbackHours`) whose key ends with one of the
//! accepted suffixes, and answers the seed's `{dataAvailable, fileCount, files}` plus
//! `totalBytes` and per-file details. A list too large for a Step Functions state (256 KB)
//! is written to S3 as a JSON array of `{bucket, key}` instead, and its location is
//! returned as `itemsLocation` for a Distributed Map ItemReader.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use etl_aws::EtlError;
use etl_aws::config::{self, ConfigError, EnvSource, ProcessEnv};
use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Suffixes accepted when neither the input nor `SOURCE_SUFFIXES` names any.
pub const DEFAULT_SUFFIXES: &[&str] =
    &[".csv", ".tsv", ".json", ".ndjson", ".jsonl", ".gz", ".zst"];
/// Step Functions' state payload limit.
pub const STATE_PAYLOAD_LIMIT: usize = 256 * 1024;

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

/// The task output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckOutput {
    pub data_available: bool,
    pub file_count: usize,
    pub total_bytes: i64,
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
    let files: Vec<FileInfo> = listing
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
    let total_bytes = files.iter().map(|f| f.size).sum();
    let mut output = CheckOutput {
        data_available: !files.is_empty(),
        file_count: files.len(),
        total_bytes,
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
        total_bytes = output.total_bytes,
        "source data checked"
    );
    Ok(output)
}

/// The manifest body: a JSON array of `{bucket, key}`, what a Distributed Map ItemReader
/// (`InputType: JSON`) hands to s3-processor item by item.
pub fn items_json(files: &[FileInfo]) -> Result<Vec<u8>, EtlError> {
    let items: Vec<ItemsLocation> = files
        .iter()
        .map(|f| ItemsLocation {
            bucket: f.bucket.clone(),
            key: f.key.clone(),
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
            total_bytes: 10,
            since: "2024-05-01T11:00:00Z".into(),
            files: Some(files.clone()),
            items_location: None,
        };
        assert_eq!(
            serde_json::to_value(&out).unwrap(),
            json!({
                "dataAvailable": true, "fileCount": 1, "totalBytes": 10,
                "since": "2024-05-01T11:00:00Z",
                "files": [{"bucket": "b", "key": "raw-data/a.csv", "size": 10,
                           "lastModified": "2024-05-01T11:30:00Z", "etag": "e1"}]
            })
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&items_json(&files).unwrap()).unwrap(),
            json!([{"bucket": "b", "key": "raw-data/a.csv"}])
        );
        let k1 = items_key("m/", &files);
        assert!(k1.starts_with("m/1-") && k1.ends_with(".json"), "{k1}");
        assert_eq!(k1, items_key("m/", &files));
        let mut changed = files.clone();
        changed[0].etag = Some("e2".into());
        assert_ne!(k1, items_key("m/", &changed));
    }
}
