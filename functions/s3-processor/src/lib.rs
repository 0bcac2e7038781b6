//! s3-processor: an object landed under a dataset's prefix becomes partitioned Parquet in
//! the processed bucket, its rejected rows a quarantine file, its run a manifest; the Glue
//! table is created or evolved and the new partitions registered, so Athena sees the data
//! without a crawler.
//!
//! Output keys derive from the source bucket and key, so a redelivered event (or a new
//! version of the same key) rewrites the same objects; files an earlier version wrote in
//! partitions the new one no longer has are deleted, using the earlier manifest. How a
//! publish stays whole across timeouts and crashes is in the `publish` module.
//!
//! The object read is the version the event names (S3 notifications and EventBridge
//! events carry it in versioned buckets), and the manifest records the ETag and version
//! of what was read, not what the event claimed.
//!
//! An object larger than `GLUE_ROUTE_BYTES` is not read at all: it is handed to the
//! workflow's Glue engine (see the `route` module) and reported as `routed`.

mod event;
mod publish;
mod route;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use etl_aws::EtlError;
use etl_aws::config::{self, ConfigError, EnvSource, ProcessEnv};
use etl_aws::glue::{self, ColumnSpec, TableSpec};
use etl_aws::metrics::{Metrics, Unit};
use etl_aws::routing::RoutingConfig;
use etl_core::{Pipeline, PipelineSpec, ReferenceLoader, RunManifest, RunOptions, RunStatus};
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde_json::Value;

pub use event::{EventError, ObjectRef, decode_key, objects};
pub use publish::{Deadline, intent_key};
pub use route::{glue_execution_name, glue_input};

include!(concat!(env!("OUT_DIR"), "/specs.rs"));

/// Time kept back from the Lambda deadline: enough for a large file's upload in flight to
/// finish and the error to be reported.
pub const DEFAULT_DEADLINE_MARGIN_SECONDS: u64 = 60;

/// Where outputs go and what is notified, from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `PROCESSED_BUCKET`: Parquet data and manifests.
    pub processed_bucket: String,
    /// `QUARANTINE_BUCKET` (default: the processed bucket).
    pub quarantine_bucket: String,
    /// `OUTPUT_PREFIX` (default `processed/`): data under `<prefix><dataset>/`.
    pub output_prefix: String,
    /// `QUARANTINE_PREFIX` (default `quarantine/`).
    pub quarantine_prefix: String,
    /// `MANIFEST_PREFIX` (default `manifests/`).
    pub manifest_prefix: String,
    /// `GLUE_DATABASE`: catalog sync is skipped when unset.
    pub glue_database: Option<String>,
    /// `ALERT_TOPIC_ARN`: quality alerts; none when unset.
    pub alert_topic_arn: Option<String>,
    /// `PIPELINES_DIR`: specs to use instead of the embedded ones.
    pub pipelines_dir: Option<PathBuf>,
    /// `WORK_DIR` (default the system temp dir): where a run stages its files.
    pub work_dir: PathBuf,
    /// `DEADLINE_MARGIN_SECONDS` (default 60): a run with less time left than this before
    /// the Lambda deadline starts no further write, and fails as `TransientError`.
    pub deadline_margin: Duration,
    /// The dataset specs, checked at cold start.
    pub specs: Vec<PipelineSpec>,
    /// `GLUE_ROUTE_BYTES` (default 0: never) and the Glue run's sizing: larger objects go
    /// to the workflow's Glue engine.
    pub routing: RoutingConfig,
    /// `STATE_MACHINE_ARN`: the workflow routed objects start; required when
    /// `GLUE_ROUTE_BYTES` is above 0.
    pub state_machine_arn: Option<String>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    pub fn from_source(env: &impl EnvSource) -> Result<Self, ConfigError> {
        let processed_bucket = config::required(env, "PROCESSED_BUCKET")?;
        let prefix = |name: &str, default: &str| {
            let mut p = config::optional(env, name).unwrap_or_else(|| default.to_string());
            if !p.is_empty() && !p.ends_with('/') {
                p.push('/');
            }
            p
        };
        let pipelines_dir = config::optional(env, "PIPELINES_DIR").map(PathBuf::from);
        let specs = match &pipelines_dir {
            Some(dir) => load_specs_dir(dir)?,
            None => EMBEDDED_SPECS
                .iter()
                .map(|(name, yaml)| {
                    PipelineSpec::from_yaml(yaml, name)
                        .map_err(|e| config::invalid("PIPELINES_DIR", "(embedded)", e.to_string()))
                })
                .collect::<Result<_, _>>()?,
        };
        let routing = RoutingConfig::from_source(env)?;
        let state_machine_arn = if routing.route_bytes > 0 {
            Some(config::required(env, "STATE_MACHINE_ARN")?)
        } else {
            config::optional(env, "STATE_MACHINE_ARN")
        };
        Ok(Self {
            quarantine_bucket: config::optional(env, "QUARANTINE_BUCKET")
                .unwrap_or_else(|| processed_bucket.clone()),
            processed_bucket,
            output_prefix: prefix("OUTPUT_PREFIX", "processed/"),
            quarantine_prefix: prefix("QUARANTINE_PREFIX", "quarantine/"),
            manifest_prefix: prefix("MANIFEST_PREFIX", "manifests/"),
            glue_database: config::optional(env, "GLUE_DATABASE"),
            alert_topic_arn: config::optional(env, "ALERT_TOPIC_ARN"),
            pipelines_dir,
            work_dir: config::optional(env, "WORK_DIR")
                .map_or_else(std::env::temp_dir, PathBuf::from),
            deadline_margin: Duration::from_secs(config::parse_or(
                env,
                "DEADLINE_MARGIN_SECONDS",
                DEFAULT_DEADLINE_MARGIN_SECONDS,
            )?),
            specs,
            routing,
            state_machine_arn,
        })
    }

    /// The spec whose source prefix is the longest prefix of `key`.
    pub fn spec_for(&self, key: &str) -> Option<&PipelineSpec> {
        self.specs
            .iter()
            .filter(|s| key.starts_with(&s.source.prefix))
            .max_by_key(|s| s.source.prefix.len())
    }

    /// Objects this function wrote itself must never be processed again.
    fn is_own_output(&self, bucket: &str, key: &str) -> bool {
        let in_processed = bucket == self.processed_bucket
            && (key.starts_with(&self.output_prefix) || key.starts_with(&self.manifest_prefix));
        let in_quarantine =
            bucket == self.quarantine_bucket && key.starts_with(&self.quarantine_prefix);
        in_processed || in_quarantine
    }

    fn data_prefix(&self, dataset: &str) -> String {
        format!("{}{dataset}/", self.output_prefix)
    }

    fn manifest_key(&self, dataset: &str, id: &str) -> String {
        format!("{}{dataset}/{id}.json", self.manifest_prefix)
    }
}

fn load_specs_dir(dir: &Path) -> Result<Vec<PipelineSpec>, ConfigError> {
    let bad = |reason: String| config::invalid("PIPELINES_DIR", dir.display().to_string(), reason);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| bad(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| PipelineSpec::from_file(p).map_err(|e| bad(e.to_string())))
        .collect()
}

/// SDK clients, built once per cold start.
#[derive(Debug, Clone)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub glue: aws_sdk_glue::Client,
    pub sns: aws_sdk_sns::Client,
    pub sfn: aws_sdk_sfn::Client,
}

impl Clients {
    pub fn new(conf: &aws_config::SdkConfig) -> Self {
        Self {
            s3: etl_aws::clients::s3(conf),
            glue: etl_aws::clients::glue(conf),
            sns: etl_aws::clients::sns(conf),
            sfn: etl_aws::clients::sfn(conf),
        }
    }
}

/// Objects are read as ranged GETs of this size, a few ahead of the engine: each is a short
/// request retried on its own, and memory stays at about size x concurrency.
const READ_PART_BYTES: u64 = 8 << 20;
const READ_CONCURRENCY: usize = 3;

/// What happened to one object.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectResult {
    pub bucket: String,
    pub key: String,
    /// `processed`, `quality_failed`, `routed` (to the Glue engine, see
    /// `execution_arn`), or `skipped` (with `reason`).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_out: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality_score: Option<f64>,
    /// The workflow execution a `routed` object was handed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_arn: Option<String>,
}

impl ObjectResult {
    fn skipped(o: &ObjectRef, reason: &str) -> Self {
        Self {
            bucket: o.bucket.clone(),
            key: o.key.clone(),
            status: "skipped".into(),
            reason: Some(reason.into()),
            dataset: None,
            manifest_key: None,
            rows_in: None,
            rows_out: None,
            quarantined: None,
            quality_score: None,
            execution_arn: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Response {
    pub objects: Vec<ObjectResult>,
}

/// Processes every object the event names, in order; the first failure fails the
/// invocation (so S3/EventBridge retry it, or the Map item's Retry/Catch sees it).
pub async fn handler(
    event: LambdaEvent<Value>,
    clients: &Clients,
    config: &Config,
) -> Result<Response, EtlError> {
    let refs = objects(&event.payload).map_err(|e| EtlError::invalid_input(e.to_string()))?;
    let deadline = Deadline::of(&event.context, config.deadline_margin);
    let mut results = Vec::with_capacity(refs.len());
    for o in &refs {
        results.push(process_object(o, clients, config, &deadline).await?);
    }
    Ok(Response { objects: results })
}

/// A file-name-safe id for the source object: readable stem plus a hash of bucket/key,
/// so two objects with the same file name in different folders never collide. At most
/// the engine's 200-byte id limit, so it names data files `<id>.parquet`
/// exactly (publishing recognises this source's files by that name).
pub fn output_id(bucket: &str, key: &str) -> String {
    // In etl-core, so `etl output-id` and the Glue job's port are checked against it.
    etl_core::object_output_id(bucket, key)
}

async fn process_object(
    o: &ObjectRef,
    clients: &Clients,
    config: &Config,
    deadline: &Deadline,
) -> Result<ObjectResult, EtlError> {
    if config.is_own_output(&o.bucket, &o.key) {
        tracing::info!(bucket = %o.bucket, key = %o.key, "own output, ignored");
        return Ok(ObjectResult::skipped(o, "own output"));
    }
    if o.key.ends_with('/') {
        return Ok(ObjectResult::skipped(o, "folder marker"));
    }
    let Some(spec) = config.spec_for(&o.key) else {
        tracing::info!(bucket = %o.bucket, key = %o.key, "no dataset spec for this prefix, ignored");
        return Ok(ObjectResult::skipped(o, "no dataset spec for this prefix"));
    };
    let dataset = spec.name.clone();
    let id = output_id(&o.bucket, &o.key);
    let source_name = format!("s3://{}/{}", o.bucket, o.key);
    tracing::info!(source = %source_name, dataset = %dataset, version = ?o.version_id, "processing");
    deadline.check(&format!("reading {source_name}"))?;

    let object = etl_aws::s3::get_object_version_ranges(
        &clients.s3,
        &o.bucket,
        &o.key,
        o.version_id.as_deref(),
        READ_PART_BYTES,
        READ_CONCURRENCY,
    )
    .await?;
    // The manifest names what was read: the event's ETag is the version it was sent for,
    // which, without a version id, may have been overwritten since.
    let etag = object.etag.clone();
    let version_id = object.version_id.clone();
    let last_modified = object.last_modified;
    let layout = publish::Layout::new(config, &dataset, &id);
    if let Some(newer) =
        publish::newer_published(&clients.s3, &layout, version_id.as_deref(), last_modified).await?
    {
        tracing::info!(source = %source_name, version = ?version_id, newer = %newer, "superseded, not processed");
        return Ok(ObjectResult::skipped(
            o,
            &format!("superseded: {newer} is already published"),
        ));
    }
    // Decided from the HEAD above: the body's ranged GETs only start when it is read.
    if config
        .routing
        .routes_to_glue(etl_aws::routing::engine_bytes(&o.key, object.size))
    {
        // Size and ETag only: the body's stream is not Sync, so no reference to it may be
        // held across an await.
        let (size, etag) = (object.size, object.etag.clone());
        drop(object);
        return route_to_glue(o, &dataset, size, etag.as_deref(), clients, config).await;
    }
    if let Some(sent) = o.etag.as_deref()
        && Some(etag_core(sent)) != etag.as_deref().map(etag_core)
    {
        tracing::info!(
            source = %source_name, event_etag = sent, read_etag = ?etag,
            "the object changed since the event; processing the version read"
        );
    }
    let work = tempfile::Builder::new()
        .prefix("s3-processor-")
        .tempdir_in(&config.work_dir)
        .map_err(|e| {
            EtlError::internal(format!(
                "creating a work dir in {}: {e}",
                config.work_dir.display()
            ))
        })?;
    let opts = RunOptions {
        source_name: source_name.clone(),
        source_id: id.clone(),
        etag,
        data_dir: work.path().join("data"),
        quarantine_path: work.path().join("quarantine.parquet"),
        batch_size: etl_core::DEFAULT_BATCH_SIZE,
        threads: None,
    };
    let loader = S3References {
        s3: clients.s3.clone(),
        base: config.pipelines_dir.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    let mut manifest = run_engine(spec.clone(), loader, object, opts).await?;
    manifest.source.version_id = version_id;
    manifest.source.last_modified =
        last_modified.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));

    publish::publish(&manifest, work.path(), &layout, clients, deadline).await?;
    if manifest.status == RunStatus::Succeeded
        && let Some(db) = &config.glue_database
    {
        sync_catalog(&manifest, db, &dataset, clients, config).await?;
    }
    emit_metrics(&manifest);
    if (manifest.quality.alert || manifest.status != RunStatus::Succeeded)
        && let Some(topic) = &config.alert_topic_arn
    {
        alert(&manifest, topic, clients).await?;
    }
    let c = &manifest.counts;
    tracing::info!(
        source = %source_name, dataset = %dataset, rows_in = c.rows_in, rows_out = c.rows_out,
        duplicates = c.duplicates, quarantined = c.quarantined, score = manifest.quality.score,
        status = ?manifest.status, "processed"
    );
    Ok(ObjectResult {
        bucket: o.bucket.clone(),
        key: o.key.clone(),
        status: match manifest.status {
            RunStatus::Succeeded => "processed".into(),
            RunStatus::QualityFailed => "quality_failed".into(),
        },
        reason: None,
        dataset: Some(dataset.clone()),
        manifest_key: Some(config.manifest_key(&dataset, &id)),
        rows_in: Some(c.rows_in),
        rows_out: Some(c.rows_out),
        quarantined: Some(c.quarantined),
        quality_score: Some(manifest.quality.score),
        execution_arn: None,
    })
}

/// Starts the workflow's Glue engine on this one object (the version HEAD answered for:
/// its ETag names the execution). An execution of that name already existing means an
/// earlier delivery routed it: success, nothing new started.
async fn route_to_glue(
    o: &ObjectRef,
    dataset: &str,
    size: u64,
    etag: Option<&str>,
    clients: &Clients,
    config: &Config,
) -> Result<ObjectResult, EtlError> {
    let machine = config.state_machine_arn.as_deref().ok_or_else(|| {
        EtlError::new(
            etl_aws::ErrorKind::Config,
            "GLUE_ROUTE_BYTES is set but STATE_MACHINE_ARN is not",
        )
    })?;
    let name = route::glue_execution_name(&o.bucket, &o.key, etag);
    let workers = config.routing.glue_workers(size);
    let input = route::glue_input(&o.bucket, &o.key, etag, size, workers);
    let outcome =
        etl_aws::sfn::start_execution(&clients.sfn, machine, &name, &input.to_string()).await?;
    tracing::info!(
        source = %format!("s3://{}/{}", o.bucket, o.key), dataset, size,
        threshold = config.routing.route_bytes, workers, execution = %outcome.execution_arn(),
        already_started = matches!(outcome, etl_aws::sfn::StartOutcome::AlreadyExists { .. }),
        "over the Lambda's size threshold: routed to the Glue engine"
    );
    Ok(ObjectResult {
        status: "routed".into(),
        reason: Some(format!(
            "{size} bytes, over GLUE_ROUTE_BYTES={}: processed by the Glue engine",
            config.routing.route_bytes
        )),
        dataset: Some(dataset.to_string()),
        execution_arn: Some(outcome.execution_arn().to_string()),
        ..ObjectResult::skipped(o, "")
    })
}

/// An ETag without quotes (events carry it bare, S3 responses quoted).
fn etag_core(etag: &str) -> &str {
    etl_aws::s3::unquote_etag(etag)
}

/// Runs `spec` over the object's body. The engine is synchronous and CPU-bound: it runs
/// off the async workers, and a bridge streams the body into it, so memory stays flat
/// whatever the object's size.
async fn run_engine(
    spec: PipelineSpec,
    loader: impl ReferenceLoader + Send + 'static,
    object: etl_aws::s3::RangedObject,
    opts: RunOptions,
) -> Result<RunManifest, EtlError> {
    let body = tokio_util::io::SyncIoBridge::new(object.into_reader());
    let source_name = opts.source_name.clone();
    tokio::task::spawn_blocking(move || {
        let pipeline = Pipeline::compile(spec, &loader, Utc::now())?;
        pipeline.run(body, &opts)
    })
    .await
    .map_err(|e| EtlError::internal(format!("engine task failed: {e}")))?
    .map_err(|e| engine_error(&source_name, e))
}

/// The class of an engine failure. The engine reports undecodable or over-limit input as
/// `Input`; an I/O error is either the S3 stream's (it carries an [`EtlError`] with the
/// class the S3 call was given, whatever `io::ErrorKind` it travels as) or the local file
/// system's (the work dir, a reference file under PIPELINES_DIR), which no retry of the
/// same function fixes: `InternalError`, for a person to look at.
fn engine_error(source: &str, e: etl_core::EtlError) -> EtlError {
    match &e {
        etl_core::EtlError::Spec(_) | etl_core::EtlError::Input(_) => {
            EtlError::invalid_input(e.to_string())
        }
        etl_core::EtlError::Io { source: io, .. } => {
            match etl_core::find_cause::<EtlError>(io) {
                Some(aws) => EtlError::new(aws.kind(), format!("{source}: {e}")),
                // Marked as the source's but not by the S3 reader: the stream broke.
                None if etl_core::find_cause::<etl_core::SourceFailure>(io).is_some() => {
                    EtlError::transient(format!("{source}: {e}"))
                }
                None => EtlError::internal(format!("{source}: local file system: {e}")),
            }
        }
        etl_core::EtlError::Engine { .. } => EtlError::internal(format!("{source}: {e}")),
    }
}

async fn sync_catalog(
    manifest: &RunManifest,
    database: &str,
    dataset: &str,
    clients: &Clients,
    config: &Config,
) -> Result<(), EtlError> {
    let spec = TableSpec {
        database: database.to_string(),
        table: dataset.to_string(),
        location: format!(
            "s3://{}/{}",
            config.processed_bucket,
            config.data_prefix(dataset)
        ),
        columns: manifest
            .schema
            .iter()
            .filter(|c| !c.partition)
            .map(|c| ColumnSpec::new(&c.name, &c.glue_type))
            .collect(),
        // Partition values live in paths as text: string keys are what Athena reads back
        // without casts, whatever the column's type in the data.
        partition_keys: manifest
            .schema
            .iter()
            .filter(|c| c.partition)
            .map(|c| ColumnSpec::new(&c.name, "string"))
            .collect(),
    };
    glue::ensure_database(&clients.glue, database).await?;
    let outcome = glue::sync_table(&clients.glue, &spec).await?;
    let partitions: BTreeSet<Vec<String>> = manifest
        .outputs
        .iter()
        .map(|f| {
            spec.partition_keys
                .iter()
                .map(|k| f.partition.get(&k.name).cloned().unwrap_or_default())
                .collect()
        })
        .collect();
    let partitions: Vec<Vec<String>> = partitions.into_iter().filter(|p| !p.is_empty()).collect();
    let added = glue::add_partitions(&clients.glue, &spec, &partitions).await?;
    tracing::info!(
        table = %format!("{database}.{dataset}"), action = ?outcome.action,
        added_columns = ?outcome.added_columns, partitions_created = added.created,
        partitions_existing = added.already_existed, "catalog synced"
    );
    Ok(())
}

fn emit_metrics(m: &RunManifest) {
    let mut metrics = Metrics::new("ServerlessEtl").dimension("Dataset", m.dataset.clone());
    let c = &m.counts;
    metrics.put("RowsIn", c.rows_in as f64, Unit::Count);
    metrics.put("RowsOut", c.rows_out as f64, Unit::Count);
    metrics.put("Duplicates", c.duplicates as f64, Unit::Count);
    metrics.put("Quarantined", c.quarantined as f64, Unit::Count);
    metrics.put("QualityScore", m.quality.score, Unit::None);
    metrics.put("DurationMs", m.duration_ms as f64, Unit::Milliseconds);
    metrics.property("source", m.source.name.clone());
    metrics.flush();
}

async fn alert(m: &RunManifest, topic: &str, clients: &Clients) -> Result<(), EtlError> {
    let failed: Vec<String> = m
        .quality
        .rules
        .iter()
        .filter(|r| !r.passed)
        .map(|r| {
            format!(
                "- {} (actual {:.4}, required {:.4}, action {:?})",
                r.rule, r.actual, r.required, r.action
            )
        })
        .collect();
    let subject = format!(
        "ETL quality alert: {} score {:.2}",
        m.dataset, m.quality.score
    );
    let message = format!(
        "Dataset {} from {}\nstatus: {:?}\nquality score {:.2} (minimum {})\nrows in {} out {} duplicates {} quarantined {}\nfailed rules:\n{}\n",
        m.dataset,
        m.source.name,
        m.status,
        m.quality.score,
        m.quality
            .min_score
            .map_or_else(|| "none".to_string(), |s| format!("{s:.2}")),
        m.counts.rows_in,
        m.counts.rows_out,
        m.counts.duplicates,
        m.counts.quarantined,
        failed.join("\n")
    );
    etl_aws::sns::publish(&clients.sns, topic, &subject, &message).await?;
    Ok(())
}

/// Reference tables for join steps: `s3://bucket/key`, or a path under PIPELINES_DIR.
struct S3References {
    s3: aws_sdk_s3::Client,
    base: Option<PathBuf>,
    runtime: tokio::runtime::Handle,
}

impl ReferenceLoader for S3References {
    fn load(&self, path: &str) -> Result<Vec<u8>, etl_core::EtlError> {
        // The S3 error rides along whole, so engine_error classifies it by its own kind.
        let io = |context: String, e: EtlError| etl_core::EtlError::Io {
            context,
            source: std::io::Error::other(e),
        };
        if let Some(rest) = path.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').ok_or_else(|| {
                io(
                    format!("reference {path}"),
                    EtlError::invalid_input("expected s3://bucket/key"),
                )
            })?;
            // Called from the blocking engine thread, so blocking on the runtime is safe.
            return self.runtime.block_on(async {
                let read = async {
                    etl_aws::s3::get_object(&self.s3, bucket, key)
                        .await?
                        .bytes()
                        .await
                };
                read.await
                    .map(|b| b.to_vec())
                    .map_err(|e| io(format!("reading reference {path}"), e))
            });
        }
        let base = self.base.clone().unwrap_or_default();
        std::fs::read(base.join(path)).map_err(|e| etl_core::EtlError::Io {
            context: format!("reading reference {path}"),
            source: e,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample's rows many times over, so a cut or a flipped byte lands mid-stream.
    fn big_csv() -> Vec<u8> {
        let sample = include_str!("../../../infra/samples/customers.csv");
        let (header, rows) = sample.split_once('\n').unwrap();
        let mut csv = format!("{header}\n");
        for _ in 0..200 {
            csv.push_str(rows);
        }
        csv.into_bytes()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// With a checksum, as the zstd command line writes by default.
    fn zstd(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.include_checksum(true).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn flipped(mut data: Vec<u8>) -> Vec<u8> {
        let mid = data.len() / 2;
        for b in &mut data[mid..mid + 16] {
            *b ^= 0x5a;
        }
        data
    }

    fn halved(mut data: Vec<u8>) -> Vec<u8> {
        data.truncate(data.len() / 2);
        data
    }

    struct NoReferences;
    impl ReferenceLoader for NoReferences {
        fn load(&self, path: &str) -> Result<Vec<u8>, etl_core::EtlError> {
            panic!("no reference expected, asked for {path}")
        }
    }

    /// Runs the customers spec over `parts` streamed as the ranged S3 reader streams them.
    async fn run_parts(
        key: &str,
        parts: Vec<Result<bytes::Bytes, EtlError>>,
    ) -> Result<RunManifest, EtlError> {
        use futures::StreamExt;
        let work = tempfile::tempdir().unwrap();
        let object = etl_aws::s3::RangedObject {
            size: 0,
            etag: None,
            version_id: None,
            last_modified: None,
            parts: futures::stream::iter(parts).boxed(),
        };
        let opts = RunOptions {
            source_name: format!("s3://raw/{key}"),
            source_id: "test".into(),
            etag: None,
            data_dir: work.path().join("data"),
            quarantine_path: work.path().join("quarantine.parquet"),
            batch_size: 1024,
            threads: Some(1),
        };
        let spec = config()
            .spec_for("raw-data/customers/x.csv")
            .unwrap()
            .clone();
        run_engine(spec, NoReferences, object, opts).await
    }

    async fn run_bytes(key: &str, data: Vec<u8>) -> Result<RunManifest, EtlError> {
        run_parts(key, vec![Ok(data.into())]).await
    }

    #[tokio::test]
    async fn broken_compressed_files_are_invalid_input() {
        let csv = big_csv();
        // The intact files read: the failures below are the damage, not the setup.
        for (key, data) in [("ok.csv.gz", gzip(&csv)), ("ok.csv.zst", zstd(&csv))] {
            let m = run_bytes(key, data).await.unwrap();
            assert!(m.counts.rows_in > 1000, "{key}: {:?}", m.counts);
        }
        let cases = [
            ("truncated.csv.gz", halved(gzip(&csv))),
            ("corrupt.csv.gz", flipped(gzip(&csv))),
            ("truncated.csv.zst", halved(zstd(&csv))),
            ("corrupt.csv.zst", flipped(zstd(&csv))),
            // Plain text under a compressed name, and one compression under the other's.
            ("plain.csv.gz", csv.clone()),
            ("plain.csv.zst", csv.clone()),
            ("zstd.csv.gz", zstd(&csv)),
        ];
        for (key, data) in cases {
            let err = run_bytes(key, data).await.unwrap_err();
            assert_eq!(err.error_type(), "InvalidInput", "{key}: {err}");
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
    }

    #[tokio::test]
    async fn a_failing_s3_stream_keeps_the_class_the_s3_reader_gave() {
        let csv = big_csv();
        for (key, data) in [
            ("a.csv", csv.clone()),
            ("a.csv.gz", gzip(&csv)),
            ("a.csv.zst", zstd(&csv)),
        ] {
            // The first part arrives, then the stream fails mid-object as the ranged
            // reader does when a part's retries run out.
            let first = bytes::Bytes::from(data[..data.len() / 2].to_vec());
            for (failure, want) in [
                (
                    EtlError::transient("reading bytes: connection reset"),
                    "TransientError",
                ),
                (EtlError::not_found("reading bytes: NoSuchKey"), "NotFound"),
                (
                    EtlError::new(
                        etl_aws::ErrorKind::AccessDenied,
                        "reading bytes: AccessDenied",
                    ),
                    "AccessDenied",
                ),
            ] {
                let err = run_parts(key, vec![Ok(first.clone()), Err(failure)])
                    .await
                    .unwrap_err();
                assert_eq!(err.error_type(), want, "{key}: {err}");
            }
        }
    }

    fn env(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn config() -> Config {
        Config::from_source(&env(&[("PROCESSED_BUCKET", "lake")])).unwrap()
    }

    #[test]
    fn config_needs_the_processed_bucket_and_embeds_the_specs() {
        let err = Config::from_source(&env(&[])).unwrap_err();
        assert!(err.to_string().contains("PROCESSED_BUCKET"));
        let c = config();
        assert!(c.specs.iter().any(|s| s.name == "customers"));
        assert_eq!(c.quarantine_bucket, "lake");
        assert_eq!(c.output_prefix, "processed/");
        assert_eq!(c.deadline_margin, Duration::from_secs(60));
        let margin = |v: &str| {
            Config::from_source(&env(&[
                ("PROCESSED_BUCKET", "lake"),
                ("DEADLINE_MARGIN_SECONDS", v),
            ]))
        };
        assert_eq!(
            margin("15").unwrap().deadline_margin,
            Duration::from_secs(15)
        );
        let err = margin("soon").unwrap_err();
        assert!(err.to_string().contains("DEADLINE_MARGIN_SECONDS"), "{err}");
    }

    #[test]
    fn routing_needs_the_state_machine_only_when_on() {
        let c = config();
        assert_eq!(c.routing.route_bytes, 0, "off unless set");
        assert_eq!(c.state_machine_arn, None);
        let err = Config::from_source(&env(&[
            ("PROCESSED_BUCKET", "lake"),
            ("GLUE_ROUTE_BYTES", "1000"),
        ]))
        .unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                name: "STATE_MACHINE_ARN".into()
            }
        );
        let c = Config::from_source(&env(&[
            ("PROCESSED_BUCKET", "lake"),
            ("GLUE_ROUTE_BYTES", "1000"),
            ("GLUE_MAX_WORKERS", "4"),
            (
                "STATE_MACHINE_ARN",
                "arn:aws:states:us-east-1:1:stateMachine:etl",
            ),
        ]))
        .unwrap();
        assert!(c.routing.routes_to_glue(1001) && !c.routing.routes_to_glue(1000));
        assert_eq!(c.routing.max_workers, 4);
        let err = Config::from_source(&env(&[
            ("PROCESSED_BUCKET", "lake"),
            ("GLUE_MAX_WORKERS", "1"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("GLUE_MAX_WORKERS"), "{err}");
    }

    #[test]
    fn routing_by_prefix_and_own_outputs() {
        let c = config();
        assert_eq!(
            c.spec_for("raw-data/customers/2024/a.csv")
                .map(|s| s.name.as_str()),
            Some("customers")
        );
        assert!(c.spec_for("raw-data/other/a.csv").is_none());
        assert!(c.is_own_output("lake", "processed/customers/x.parquet"));
        assert!(c.is_own_output("lake", "manifests/customers/x.json"));
        assert!(c.is_own_output("lake", "quarantine/customers/x.parquet"));
        assert!(!c.is_own_output("raw", "processed/customers/x.parquet"));
    }

    #[test]
    fn output_ids_are_stable_and_distinct_per_key() {
        let a = output_id("raw", "raw-data/customers/a b.csv");
        assert_eq!(a, output_id("raw", "raw-data/customers/a b.csv"));
        assert!(a.starts_with("a_b.csv-"), "{a}");
        assert_ne!(a, output_id("raw", "raw-data/customers/2024/a b.csv"));
        assert_ne!(a, output_id("other", "raw-data/customers/a b.csv"));
        // A long name keeps to the engine's id limit, so data files are `<id>.parquet`
        // exactly, and two long names sharing a start stay apart.
        let long = |tail: &str| output_id("raw", &format!("raw/{}{tail}.csv", "n".repeat(300)));
        let (x, y) = (long("x"), long("y"));
        assert!(x.len() <= 200, "{} bytes", x.len());
        assert_eq!(x, etl_core::source_id(&x), "already an id");
        assert_ne!(x, y);
        // The bucket/key hash ends every id, long or not: source-data-checker finds a
        // file's manifest by it.
        let key = format!("raw/{}x.csv", "n".repeat(300));
        let hash = etl_aws::source_object_hash("raw", &key);
        assert!(x.ends_with(&format!("-{hash:016x}")), "{x}");
        assert!(a.ends_with(&format!(
            "-{:016x}",
            etl_aws::source_object_hash("raw", "raw-data/customers/a b.csv")
        )));
    }

    #[tokio::test]
    async fn unknown_events_are_invalid_input() {
        let conf = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let clients = Clients::new(&conf);
        let event = LambdaEvent::new(
            serde_json::json!({"hello": "world"}),
            lambda_runtime::Context::default(),
        );
        let err = handler(event, &clients, &config()).await.unwrap_err();
        assert_eq!(err.error_type(), "InvalidInput");
    }
}
