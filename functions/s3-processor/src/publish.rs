//! Publishing a run: readers never meet a half-published run for longer than the publish
//! (or its retry) takes, and an interrupted publish (a Lambda timeout, a crash, an S3
//! error) is finished by the next run of the same source with nothing orphaned.
//!
//! S3 has no transaction over several objects, and Athena reads every file under a
//! partition's location, so "all or nothing" is approached as far as S3 allows:
//!
//! - **Fixed keys.** Every file of a run is keyed by the source object alone (`<id>` from
//!   its bucket and key, see [`crate::output_id`]): data
//!   `<OUTPUT_PREFIX><dataset>/<partitions>/<id>.parquet`, quarantine
//!   `<QUARANTINE_PREFIX><dataset>/<id>.parquet`, manifest `<MANIFEST_PREFIX><dataset>/<id>.json`.
//!   A retry or a new version of the object overwrites the same keys, and one PUT replaces
//!   one object whole, so a partition never holds two versions of one source's rows, never
//!   a partial file, and a retry never duplicates.
//! - **Intent record first.** Before the first data PUT the run writes
//!   `<MANIFEST_PREFIX>_publishing/<dataset>/<id>.json`: the files it writes and the files
//!   it retires (the previous manifest's files it does not write). From then on, every file
//!   of this source that may exist is named by the manifest or by the intent record. It
//!   lives outside `<MANIFEST_PREFIX><dataset>/`, so whatever lists manifests never takes
//!   it for one.
//! - **Order.** Intent record, data files, quarantine, deletion of retired files, then the
//!   manifest, then the intent record is deleted. The manifest is the commit: it changes
//!   only once every file it lists is in place and nothing stale is left, so a manifest
//!   that names an ETag means that version is completely published (what a check "already
//!   processed?" may rely on).
//! - **Retry.** A run that finds an intent record knows an earlier attempt stopped
//!   part-way. It adds everything that record names (written or to retire) to what it
//!   retires itself, minus what it writes, and carries that into its own intent record
//!   before writing anything; so a chain of interrupted attempts, of the same version or of
//!   newer ones landing in other partitions, still ends with exactly the last run's files.
//!
//! What a reader sees during a publish: Athena, partition by partition, either the old or
//! the new version of this source's rows (each file switches at once); for a moment after
//! the uploads, files of partitions the new version dropped, until they are deleted; the
//! previous manifest until the new one is written. After an interruption that mixed state
//! stays until the retry (Lambda retries a failed S3 event twice, the workflow retries
//! `TransientError`), which completes it.
//!
//! A previous manifest or intent record that cannot be read as one is not ignored (it
//! names the files to retire; ignoring it would orphan them, guessing would delete the
//! wrong ones): the run fails with `InternalError` naming the object, before writing
//! anything, and is not retried; a person inspects it. The same holds for a record naming a
//! file that is not this source's (another bucket, another file name): the run never
//! deletes what it cannot tell is its own.
//!
//! The deadline: each step checks the time left against `DEADLINE_MARGIN_SECONDS` and
//! stops before starting a write it may not finish, leaving the intent record for the
//! retry, with `TransientError`. The engine run itself is not interrupted; a run that
//! times out there has published nothing yet.
//!
//! Not covered: two runs of the same source object at the same time (an S3 event and a
//! workflow item for the same file) share the intent record, and the one that finishes last
//! wins; files only the other one wrote may be left behind.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use etl_aws::EtlError;
use etl_core::{RunManifest, RunStatus};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Clients, Config};

/// Files uploaded at once.
const UPLOAD_CONCURRENCY: usize = 4;
/// DeleteObjects takes at most this many keys.
const DELETE_BATCH: usize = 1000;
const INTENT_VERSION: u32 = 1;

/// The time a run has, from the Lambda context, and the margin it keeps back.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Option<Instant>,
    margin: Duration,
}

impl Deadline {
    /// `context.deadline` is milliseconds since the epoch; 0 (no deadline) in tests and
    /// direct calls.
    pub fn of(context: &lambda_runtime::Context, margin: Duration) -> Self {
        let at = (context.deadline != 0).then(|| {
            let left = context
                .deadline()
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            Instant::now() + left
        });
        Self { at, margin }
    }

    /// Fails with `TransientError` once less than the margin is left.
    pub fn check(&self, before: &str) -> Result<(), EtlError> {
        let Some(at) = self.at else { return Ok(()) };
        let left = at.saturating_duration_since(Instant::now());
        if left > self.margin {
            return Ok(());
        }
        Err(EtlError::transient(format!(
            "stopped before {before}: {:.1} s left before the Lambda deadline, within the \
             {} s margin (DEADLINE_MARGIN_SECONDS); a retry finishes or undoes what this \
             run published",
            left.as_secs_f64(),
            self.margin.as_secs()
        )))
    }
}

/// An object a run writes or retires; `s3://bucket/key` in records.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub(crate) struct Target {
    bucket: String,
    key: String,
}

impl Target {
    fn new(bucket: &str, key: &str) -> Self {
        Self {
            bucket: bucket.to_string(),
            key: key.to_string(),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

impl TryFrom<String> for Target {
    type Error = String;

    fn try_from(uri: String) -> Result<Self, String> {
        uri.strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/'))
            .filter(|(bucket, key)| !bucket.is_empty() && !key.is_empty())
            .map(|(bucket, key)| Self::new(bucket, key))
            .ok_or_else(|| format!("{uri:?} is not s3://bucket/key"))
    }
}

impl From<Target> for String {
    fn from(t: Target) -> Self {
        t.to_string()
    }
}

/// What a run is about to do, written before it does it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Intent {
    intent_version: u32,
    source: String,
    source_etag: Option<String>,
    source_version_id: Option<String>,
    started_at: String,
    writes: BTreeSet<Target>,
    retires: BTreeSet<Target>,
}

/// Where one source object's files go.
pub(crate) struct Layout<'a> {
    config: &'a Config,
    dataset: &'a str,
    id: &'a str,
}

impl<'a> Layout<'a> {
    pub(crate) fn new(config: &'a Config, dataset: &'a str, id: &'a str) -> Self {
        Self {
            config,
            dataset,
            id,
        }
    }

    fn manifest(&self) -> Target {
        Target::new(
            &self.config.processed_bucket,
            &self.config.manifest_key(self.dataset, self.id),
        )
    }

    fn intent(&self) -> Target {
        Target::new(
            &self.config.processed_bucket,
            &intent_key(&self.config.manifest_prefix, self.dataset, self.id),
        )
    }

    fn quarantine(&self) -> Target {
        Target::new(
            &self.config.quarantine_bucket,
            &format!(
                "{}{}/{}.parquet",
                self.config.quarantine_prefix, self.dataset, self.id
            ),
        )
    }

    fn data(&self, rel_path: &str) -> Target {
        Target::new(
            &self.config.processed_bucket,
            &format!("{}{rel_path}", self.config.data_prefix(self.dataset)),
        )
    }

    /// Whether `t` can be a file of this source: in one of the output buckets and named
    /// `<id>.parquet` (the id carries a hash of the source's bucket and key).
    fn is_own_file(&self, t: &Target) -> bool {
        let in_bucket =
            t.bucket == self.config.processed_bucket || t.bucket == self.config.quarantine_bucket;
        let file = t.key.rsplit('/').next().unwrap_or_default();
        in_bucket && file.strip_suffix(".parquet") == Some(self.id)
    }
}

/// The intent record's key for a source id.
pub fn intent_key(manifest_prefix: &str, dataset: &str, id: &str) -> String {
    format!("{manifest_prefix}_publishing/{dataset}/{id}.json")
}

/// Uploads data (only when the quality gate passed) and quarantine, removes the files of
/// earlier runs of the same source that this run does not write, then writes the manifest
/// (see the module doc for the order and why).
pub(crate) async fn publish(
    manifest: &RunManifest,
    work: &std::path::Path,
    layout: &Layout<'_>,
    clients: &Clients,
    deadline: &Deadline,
) -> Result<(), EtlError> {
    let s3 = &clients.s3;
    let config = layout.config;
    let manifest_target = layout.manifest();
    let intent_target = layout.intent();

    let mut leftover = BTreeSet::new();
    if let Some(previous) = read_json(s3, &manifest_target).await? {
        let files =
            manifest_files(&previous).map_err(|e| corrupt(&manifest_target, "manifest", &e))?;
        leftover.extend(files);
    }
    if let Some(previous) = read_json(s3, &intent_target).await? {
        let intent: Intent = serde_json::from_value(previous)
            .map_err(|e| corrupt(&intent_target, "intent record", &e.to_string()))?;
        if intent.intent_version != INTENT_VERSION {
            return Err(corrupt(
                &intent_target,
                "intent record",
                &format!(
                    "intent_version {} is not {INTENT_VERSION}",
                    intent.intent_version
                ),
            ));
        }
        tracing::warn!(
            intent = %intent_target, started_at = %intent.started_at,
            writes = intent.writes.len(), retires = intent.retires.len(),
            "an earlier publish of this source was interrupted; this run replaces what it left"
        );
        leftover.extend(intent.writes);
        leftover.extend(intent.retires);
    }
    if let Some(stranger) = leftover.iter().find(|t| !layout.is_own_file(t)) {
        return Err(EtlError::internal(format!(
            "{stranger}, named by {manifest_target} or {intent_target}, is not a file of \
             {} (expected {}.parquet in {} or {}); nothing was published: inspect those \
             records",
            manifest.source.name, layout.id, config.processed_bucket, config.quarantine_bucket
        )));
    }

    let mut uploads: BTreeMap<Target, PathBuf> = BTreeMap::new();
    if manifest.status == RunStatus::Succeeded {
        for f in &manifest.outputs {
            uploads.insert(layout.data(&f.path), work.join("data").join(&f.path));
        }
    }
    let quarantine = layout.quarantine();
    match &manifest.quarantine {
        Some(_) => {
            uploads.insert(quarantine, work.join("quarantine.parquet"));
        }
        // A run with nothing rejected leaves no earlier quarantine behind, even one no
        // record names.
        None => {
            leftover.insert(quarantine);
        }
    }
    let writes: BTreeSet<Target> = uploads.keys().cloned().collect();
    let retires: BTreeSet<Target> = leftover.difference(&writes).cloned().collect();

    deadline.check("publishing")?;
    let intent = Intent {
        intent_version: INTENT_VERSION,
        source: manifest.source.name.clone(),
        source_etag: manifest.source.etag.clone(),
        source_version_id: manifest.source.version_id.clone(),
        started_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        writes,
        retires,
    };
    put_json(s3, &intent_target, &intent).await?;

    // Futures of a named fn, built up front: a closure here would make the handler's
    // future not provably Send.
    let jobs: Vec<_> = uploads
        .iter()
        .map(|(target, path)| upload_file(s3, target, path, deadline))
        .collect();
    futures::stream::iter(jobs)
        .buffer_unordered(UPLOAD_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;

    delete_all(s3, &intent.retires, deadline).await?;

    let mut published = manifest.clone();
    if published.status != RunStatus::Succeeded {
        published.outputs.clear();
        published.output_bytes = 0;
    }
    if let Some(q) = &mut published.quarantine {
        q.path = layout.quarantine().to_string();
    }
    for f in &mut published.outputs {
        f.path = layout.data(&f.path).to_string();
    }
    deadline.check(&format!("writing the manifest {manifest_target}"))?;
    put_json(s3, &manifest_target, &published).await?;
    // Past the commit: a failure here leaves a record whose files are all in place or
    // gone, which the next run of this source finishes in passing.
    s3.delete_object()
        .bucket(&intent_target.bucket)
        .key(&intent_target.key)
        .send()
        .await
        .map_err(|e| {
            EtlError::from_sdk(format!("deleting the intent record {intent_target}"), e)
        })?;
    Ok(())
}

/// The version the published manifest names, when it is another version of the object
/// written after `last_modified`: an event for an older version that arrives (or is
/// retried) after a newer one was published must not bring the old rows back. Versions
/// written within the same second cannot be ordered and are processed.
pub(crate) async fn newer_published(
    s3: &aws_sdk_s3::Client,
    layout: &Layout<'_>,
    version_id: Option<&str>,
    last_modified: Option<chrono::DateTime<Utc>>,
) -> Result<Option<String>, EtlError> {
    let (Some(ours), Some(read_at)) = (version_id, last_modified) else {
        return Ok(None);
    };
    let target = layout.manifest();
    let Some(previous) = read_json(s3, &target).await? else {
        return Ok(None);
    };
    let source = &previous["source"];
    let Some(theirs) = source["version_id"].as_str().filter(|v| *v != ours) else {
        return Ok(None);
    };
    let Some(written_at) = source["last_modified"].as_str() else {
        return Ok(None);
    };
    let written_at = chrono::DateTime::parse_from_rfc3339(written_at).map_err(|e| {
        corrupt(
            &target,
            "manifest",
            &format!("source.last_modified {written_at:?}: {e}"),
        )
    })?;
    Ok((written_at.timestamp() > read_at.timestamp())
        .then(|| format!("version {theirs} of {written_at}")))
}

fn corrupt(target: &Target, what: &str, reason: &str) -> EtlError {
    EtlError::internal(format!(
        "{target} is not a {what} this function can read ({reason}). It names files an \
         earlier run of this source wrote, so nothing was published rather than orphan or \
         wrongly delete them: inspect it, remove the files it names, delete it, then \
         reprocess the source"
    ))
}

/// The files a manifest lists: its outputs and its quarantine file.
fn manifest_files(manifest: &Value) -> Result<Vec<Target>, String> {
    let outputs = manifest
        .get("outputs")
        .and_then(Value::as_array)
        .ok_or("no \"outputs\" list")?;
    let mut files = Vec::with_capacity(outputs.len() + 1);
    for (i, output) in outputs.iter().enumerate() {
        let path = output
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("outputs[{i}] has no \"path\""))?;
        files.push(Target::try_from(path.to_string()).map_err(|e| format!("outputs[{i}]: {e}"))?);
    }
    match manifest.get("quarantine") {
        None | Some(Value::Null) => {}
        Some(q) => {
            let path = q
                .get("path")
                .and_then(Value::as_str)
                .ok_or("\"quarantine\" has no \"path\"")?;
            files.push(Target::try_from(path.to_string()).map_err(|e| format!("quarantine: {e}"))?);
        }
    }
    Ok(files)
}

/// The JSON object at `target`, or `None` when there is none.
async fn read_json(s3: &aws_sdk_s3::Client, target: &Target) -> Result<Option<Value>, EtlError> {
    let object = match etl_aws::s3::get_object(s3, &target.bucket, &target.key).await {
        Ok(o) => o,
        Err(e) if e.kind() == etl_aws::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bytes = object.bytes().await?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if v.is_object() => Ok(Some(v)),
        Ok(_) => Err(corrupt(target, "record", "not a JSON object")),
        Err(e) => Err(corrupt(target, "record", &format!("not JSON: {e}"))),
    }
}

async fn put_json(
    s3: &aws_sdk_s3::Client,
    target: &Target,
    value: &impl Serialize,
) -> Result<(), EtlError> {
    let body = serde_json::to_vec_pretty(value)
        .map_err(|e| EtlError::internal(format!("serialising {target}: {e}")))?;
    etl_aws::s3::put_bytes(
        s3,
        &target.bucket,
        &target.key,
        body,
        Some("application/json"),
    )
    .await?;
    Ok(())
}

/// Uploads one file, unless the deadline is too near to start it.
async fn upload_file(
    s3: &aws_sdk_s3::Client,
    target: &Target,
    path: &std::path::Path,
    deadline: &Deadline,
) -> Result<(), EtlError> {
    deadline.check(&format!("uploading {target}"))?;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| EtlError::internal(format!("opening {}: {e}", path.display())))?;
    etl_aws::s3::put_object_from_reader(
        s3,
        &target.bucket,
        &target.key,
        file,
        &etl_aws::s3::PutOptions {
            content_type: Some("application/vnd.apache.parquet".into()),
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// Deletes `targets` with DeleteObjects, a batch per bucket and thousand keys (deleting
/// a key that is already gone succeeds).
async fn delete_all(
    s3: &aws_sdk_s3::Client,
    targets: &BTreeSet<Target>,
    deadline: &Deadline,
) -> Result<(), EtlError> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let mut by_bucket: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for t in targets {
        by_bucket.entry(&t.bucket).or_default().push(&t.key);
    }
    for (bucket, keys) in by_bucket {
        for batch in keys.chunks(DELETE_BATCH) {
            deadline.check(&format!("deleting retired files in s3://{bucket}"))?;
            let objects = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(*k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    EtlError::internal(format!("building a DeleteObjects request: {e}"))
                })?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| {
                    EtlError::internal(format!("building a DeleteObjects request: {e}"))
                })?;
            let context = format!(
                "deleting {} retired files in s3://{bucket} (first {})",
                batch.len(),
                batch[0]
            );
            let out = s3
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| EtlError::from_sdk(&context, e))?;
            if let Some(failed) = out.errors.unwrap_or_default().into_iter().next() {
                let code = failed.code.as_deref();
                let kind =
                    etl_aws::error::classify_code_status(etl_aws::error::Service::S3, code, None);
                return Err(EtlError::new(
                    kind,
                    format!(
                        "deleting retired s3://{bucket}/{}: {}: {}",
                        failed.key.as_deref().unwrap_or("?"),
                        code.unwrap_or("error"),
                        failed.message.as_deref().unwrap_or("")
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip_and_refuse_what_is_not_an_s3_uri() {
        let t = Target::try_from("s3://lake/processed/a/x.parquet".to_string()).unwrap();
        assert_eq!(
            (t.bucket.as_str(), t.key.as_str()),
            ("lake", "processed/a/x.parquet")
        );
        assert_eq!(String::from(t), "s3://lake/processed/a/x.parquet");
        for bad in [
            "lake/x",
            "s3://lake",
            "s3:///x",
            "s3://lake/",
            "https://lake/x",
        ] {
            assert!(Target::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn manifest_files_are_outputs_and_quarantine_and_anything_else_is_refused() {
        let m = serde_json::json!({
            "outputs": [{"path": "s3://lake/processed/c/country=US/x.parquet"}],
            "quarantine": {"path": "s3://q/quarantine/c/x.parquet"}
        });
        let files: Vec<String> = manifest_files(&m)
            .unwrap()
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            files,
            [
                "s3://lake/processed/c/country=US/x.parquet",
                "s3://q/quarantine/c/x.parquet"
            ]
        );
        let none = serde_json::json!({"outputs": [], "quarantine": null});
        assert!(manifest_files(&none).unwrap().is_empty());
        for (bad, says) in [
            (serde_json::json!({"quarantine": null}), "outputs"),
            (serde_json::json!({"outputs": [{"rows": 1}]}), "outputs[0]"),
            (
                serde_json::json!({"outputs": [{"path": "x.parquet"}]}),
                "outputs[0]",
            ),
            (
                serde_json::json!({"outputs": [], "quarantine": {}}),
                "quarantine",
            ),
        ] {
            let err = manifest_files(&bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn own_files_are_this_sources_parquet_in_the_output_buckets() {
        let env: std::collections::HashMap<String, String> =
            [("PROCESSED_BUCKET", "lake"), ("QUARANTINE_BUCKET", "q")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let config = Config::from_source(&env).unwrap();
        let layout = Layout::new(&config, "customers", "a.csv-0123");
        let own = |uri: &str| layout.is_own_file(&Target::try_from(uri.to_string()).unwrap());
        assert!(own(
            "s3://lake/processed/customers/country=US/a.csv-0123.parquet"
        ));
        assert!(own("s3://q/quarantine/customers/a.csv-0123.parquet"));
        // Written under an earlier OUTPUT_PREFIX: still this source's.
        assert!(own("s3://lake/old/customers/a.csv-0123.parquet"));
        assert!(!own("s3://other/processed/customers/a.csv-0123.parquet"));
        assert!(!own("s3://lake/processed/customers/b.csv-0123.parquet"));
        assert!(!own("s3://lake/processed/customers/a.csv-0123.parquet.bak"));
        assert!(!own("s3://lake/manifests/customers/a.csv-0123.json"));
        assert_eq!(
            layout.intent().to_string(),
            "s3://lake/manifests/_publishing/customers/a.csv-0123.json"
        );
        assert_eq!(
            layout.quarantine().to_string(),
            "s3://q/quarantine/customers/a.csv-0123.parquet"
        );
    }

    #[test]
    fn a_deadline_fails_as_transient_within_the_margin_only() {
        let margin = Duration::from_secs(30);
        let none = Deadline::of(&lambda_runtime::Context::default(), margin);
        assert!(none.check("x").is_ok(), "no deadline in the context");
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let mut context = lambda_runtime::Context::default();
        context.deadline = now_ms + 120_000;
        assert!(Deadline::of(&context, margin).check("x").is_ok());
        context.deadline = now_ms + 20_000;
        let err = Deadline::of(&context, margin)
            .check("uploading s3://b/k")
            .unwrap_err();
        assert_eq!(err.error_type(), "TransientError");
        assert!(err.message().contains("uploading s3://b/k"), "{err}");
        assert!(err.message().contains("DEADLINE_MARGIN_SECONDS"), "{err}");
    }
}
