//! api-ingester: pulls an HTTP API on an EventBridge schedule and lands what it returns.
//!
//! Each run:
//! 1. reads three SSM parameters under `API_PARAM_PREFIX` (default `/etl/api`), through
//!    etl-aws's TTL cache (warm invocations do not call SSM again until the TTL passes):
//!    `<prefix>/base_url`, `<prefix>/api_key` (a SecureString, decrypted, never logged) and
//!    `<prefix>/endpoints` (comma-separated, or a JSON list of strings). The base URL must
//!    be `https://`: plain `http://` would put the bearer key on the wire in clear, and is
//!    accepted only for a loopback host (a local test API);
//! 2. fetches every endpoint (`<base_url>/<endpoint>`), a few at once, with bearer auth,
//!    timeouts, retries and pagination (see [`http`] for the shapes and rules supported);
//! 3. streams each endpoint's records into one NDJSON object: each page is handed to
//!    etl-aws's multipart writer as soon as it arrives, so memory holds a page or two and a
//!    few 5 MB parts, not the endpoint. The object appears only when the upload completes;
//!    a page that fails after its retries aborts the upload, so no partial object is ever
//!    published (the key stays as the previous run left it). Every record an object with `_ingested_at` added (one timestamp per run; a record that
//!    is not an object is wrapped as `{"value": ..., "_ingested_at": ...}`), at
//!    `raw-api-data/<endpoint>/year=YYYY/month=MM/day=DD/<run timestamp>.ndjson`.
//!
//! The run timestamp is the scheduled event's `time` when the input has one, so a retried
//! or redelivered schedule rewrites the same keys; otherwise the invocation time.
//! An endpoint with no records writes no object.
//!
//! One failing endpoint does not stop the others. The [`IngestReport`] names each
//! endpoint's outcome; when any endpoint failed (after its retries), the invocation fails
//! with a stable `errorType` (`TransientError` when every failure was transient, otherwise
//! the first permanent failure's type, e.g. `NotFound`), after the others have landed.

pub mod http;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use etl_aws::config::{self, ConfigError, EnvSource, ProcessEnv};
use etl_aws::ssm::{ParameterCache, ParameterSource, Secret};
use etl_aws::{ErrorKind, EtlError};
use lambda_runtime::LambdaEvent;
use reqwest::Url;
use serde::Serialize;
use serde_json::Value;

use crate::http::{Pager, RetryPolicy};

/// Settings from the environment. Holds parameter *names* only; the key itself is read
/// per run into [`ApiSettings`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `RAW_BUCKET`: where the data lands.
    pub bucket: String,
    /// `RAW_API_PREFIX` (default `raw-api-data/`).
    pub prefix: String,
    /// `API_PARAM_PREFIX` (default `/etl/api`).
    pub param_prefix: String,
    /// `PARAM_TTL_SECONDS`: how long SSM values are reused (default 300).
    pub param_ttl: Duration,
    /// `HTTP_TIMEOUT_SECONDS`: per request, body included (default 10).
    pub timeout: Duration,
    /// `HTTP_CONNECT_TIMEOUT_SECONDS` (default 3).
    pub connect_timeout: Duration,
    /// `MAX_ATTEMPTS` per page (default 5), `BACKOFF_BASE_MS` (200), `BACKOFF_MAX_MS`
    /// (10000), `RETRY_AFTER_MAX_SECONDS` (60), `MAX_PAGES` per endpoint (1000).
    pub retry: RetryPolicy,
    /// `ENDPOINT_CONCURRENCY`: endpoints fetched at once (default 4).
    pub concurrency: usize,
}

fn seconds(env: &impl EnvSource, name: &str, default: f64) -> Result<Duration, ConfigError> {
    let v = config::parse_or(env, name, default)?;
    if !(v > 0.0 && v <= 900.0) {
        return Err(config::invalid(
            name,
            v.to_string(),
            "must be above 0 and at most 900 seconds (the Lambda maximum)",
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

fn positive<T>(env: &impl EnvSource, name: &str, default: T, max: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + Default + ToString + Copy,
    T::Err: std::fmt::Display,
{
    let v = config::parse_or(env, name, default)?;
    if v <= T::default() || v > max {
        return Err(config::invalid(
            name,
            v.to_string(),
            format!("must be between 1 and {}", max.to_string()),
        ));
    }
    Ok(v)
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    /// Reads any [`EnvSource`] (tests pass a map).
    pub fn from_source(env: &impl EnvSource) -> Result<Self, ConfigError> {
        let mut prefix =
            config::optional(env, "RAW_API_PREFIX").unwrap_or_else(|| "raw-api-data/".into());
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        let param_prefix = config::optional(env, "API_PARAM_PREFIX")
            .unwrap_or_else(|| "/etl/api".into())
            .trim_end_matches('/')
            .to_string();
        if !param_prefix.starts_with('/') {
            return Err(config::invalid(
                "API_PARAM_PREFIX",
                param_prefix,
                "must be an SSM path starting with /, e.g. /etl/api",
            ));
        }
        let ttl = config::parse_or(env, "PARAM_TTL_SECONDS", 300_u64)?;
        Ok(Self {
            bucket: config::required(env, "RAW_BUCKET")?,
            prefix,
            param_prefix,
            param_ttl: Duration::from_secs(ttl),
            timeout: seconds(env, "HTTP_TIMEOUT_SECONDS", 10.0)?,
            connect_timeout: seconds(env, "HTTP_CONNECT_TIMEOUT_SECONDS", 3.0)?,
            retry: RetryPolicy {
                max_attempts: positive(env, "MAX_ATTEMPTS", 5_u32, 20)?,
                base: Duration::from_millis(positive(env, "BACKOFF_BASE_MS", 200_u64, 60_000)?),
                cap: Duration::from_millis(positive(env, "BACKOFF_MAX_MS", 10_000_u64, 300_000)?),
                retry_after_cap: Duration::from_secs(positive(
                    env,
                    "RETRY_AFTER_MAX_SECONDS",
                    60_u64,
                    900,
                )?),
                max_pages: positive(env, "MAX_PAGES", 1000_usize, 1_000_000)?,
            },
            concurrency: positive(env, "ENDPOINT_CONCURRENCY", 4_usize, 64)?,
        })
    }

    /// The SSM parameter names: (base_url, api_key, endpoints).
    pub fn parameter_names(&self) -> (String, String, String) {
        let p = &self.param_prefix;
        (
            format!("{p}/base_url"),
            format!("{p}/api_key"),
            format!("{p}/endpoints"),
        )
    }
}

/// Clients, built once per cold start: S3, the SSM parameter cache and the HTTP client.
#[derive(Debug, Clone)]
pub struct Clients<S = aws_sdk_ssm::Client> {
    pub s3: aws_sdk_s3::Client,
    pub params: Arc<ParameterCache<S>>,
    pub http: reqwest::Client,
}

/// The HTTP client: rustls with the platform's roots, the aws-lc-rs provider the AWS SDK
/// already links (reqwest is built without one of its own), the configured timeouts.
pub fn http_client(config: &Config) -> Result<reqwest::Client, EtlError> {
    // Err means a provider is already installed (a warm start, or the test harness).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.connect_timeout)
        .user_agent(concat!(
            "serverless-etl-api-ingester/",
            env!("CARGO_PKG_VERSION")
        ))
        // Redirects could carry the Authorization header elsewhere; the API gets none.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| EtlError::internal(format!("building the HTTP client: {e}")))
}

impl Clients<aws_sdk_ssm::Client> {
    pub fn new(conf: &aws_config::SdkConfig, config: &Config) -> Result<Self, EtlError> {
        Ok(Self {
            s3: etl_aws::clients::s3(conf),
            params: Arc::new(ParameterCache::new(
                etl_aws::clients::ssm(conf),
                config.param_ttl,
            )),
            http: http_client(config)?,
        })
    }
}

/// What SSM says about the API. `Debug` shows the key as `Secret(<redacted>)`.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub base_url: Url,
    pub api_key: Secret,
    pub endpoints: Vec<String>,
}

/// Parses the endpoint list: a JSON list of strings, or comma-separated names. Names are
/// URL paths below the base URL (`customers`, `v2/orders`): letters, digits, `-_./`, no
/// `..`.
pub fn parse_endpoints(value: &str) -> Result<Vec<String>, EtlError> {
    let value = value.trim();
    let raw: Vec<String> = if value.starts_with('[') {
        serde_json::from_str(value).map_err(|e| {
            EtlError::invalid_input(format!(
                "the endpoint list is not a JSON list of strings: {e}"
            ))
        })?
    } else {
        value.split(',').map(String::from).collect()
    };
    let mut endpoints = Vec::new();
    for name in raw {
        let name = name.trim().trim_matches('/').to_string();
        if name.is_empty() {
            continue;
        }
        let valid = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            && !name
                .split('/')
                .any(|seg| seg == ".." || seg == "." || seg.is_empty());
        if !valid {
            return Err(EtlError::invalid_input(format!(
                "endpoint {name:?} is not a path of letters, digits and -_./"
            )));
        }
        if !endpoints.contains(&name) {
            endpoints.push(name);
        }
    }
    if endpoints.is_empty() {
        return Err(EtlError::invalid_input("the endpoint list is empty"));
    }
    Ok(endpoints)
}

/// Whether `url` may carry the API key: `https`, or plain `http` to a loopback host only
/// (a local test API); anywhere else the bearer key would cross the network in clear.
pub fn check_scheme(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(format!(
            "{} is plain http, which would send the API key in clear; use https \
             (http is accepted only for loopback hosts such as 127.0.0.1)",
            http::redact(url)
        )),
        other => Err(format!("must be an https URL, not {other}:")),
    }
}

fn is_loopback(url: &Url) -> bool {
    // IPv6 hosts come bracketed (`[::1]`).
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Reads the API settings through the cache.
pub async fn load_settings<S: ParameterSource>(
    params: &ParameterCache<S>,
    config: &Config,
) -> Result<ApiSettings, EtlError> {
    let (url_name, key_name, endpoints_name) = config.parameter_names();
    let base = params.get(&url_name).await?;
    let api_key = params.get(&key_name).await?;
    let endpoints = params.get(&endpoints_name).await?;
    let mut base_url = Url::parse(base.expose().trim()).map_err(|e| {
        EtlError::invalid_input(format!("SSM parameter {url_name} is not a URL: {e}"))
    })?;
    check_scheme(&base_url)
        .map_err(|reason| EtlError::invalid_input(format!("SSM parameter {url_name}: {reason}")))?;
    // Url::join replaces the last segment unless the path ends with '/'.
    if !base_url.path().ends_with('/') {
        let path = format!("{}/", base_url.path());
        base_url.set_path(&path);
    }
    if api_key.expose().trim().is_empty() {
        return Err(EtlError::invalid_input(format!(
            "SSM parameter {key_name} is empty"
        )));
    }
    let endpoints = parse_endpoints(endpoints.expose())
        .map_err(|e| EtlError::invalid_input(format!("SSM parameter {endpoints_name}: {e}")))?;
    Ok(ApiSettings {
        base_url,
        api_key,
        endpoints,
    })
}

/// The run's timestamp: the scheduled event's `time`, else `now`.
pub fn run_time(input: &Value, now: DateTime<Utc>) -> DateTime<Utc> {
    input
        .get("time")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(now, |t| t.with_timezone(&Utc))
}

/// `raw-api-data/<endpoint>/year=YYYY/month=MM/day=DD/<YYYYMMDDTHHMMSSZ>.ndjson`; a `/` in
/// the endpoint becomes `-`.
pub fn landing_key(config: &Config, endpoint: &str, run: DateTime<Utc>) -> String {
    format!(
        "{}{}/year={:04}/month={:02}/day={:02}/{}.ndjson",
        config.prefix,
        endpoint.replace('/', "-"),
        run.year(),
        run.month(),
        run.day(),
        run.format("%Y%m%dT%H%M%SZ")
    )
}

/// The NDJSON body: one record per line with `_ingested_at` set.
pub fn ndjson(records: Vec<Value>, ingested_at: &str) -> Result<Vec<u8>, EtlError> {
    let mut out = Vec::with_capacity(records.len() * 128);
    for record in records {
        let mut object = match record {
            Value::Object(map) => map,
            other => {
                let mut map = serde_json::Map::new();
                map.insert("value".into(), other);
                map
            }
        };
        object.insert(
            "_ingested_at".into(),
            Value::String(ingested_at.to_string()),
        );
        serde_json::to_writer(&mut out, &object)
            .map_err(|e| EtlError::internal(format!("serializing a record: {e}")))?;
        out.push(b'\n');
    }
    Ok(out)
}

/// One endpoint's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all_fields = "camelCase")]
pub enum EndpointOutcome {
    #[serde(rename = "ok")]
    Landed {
        endpoint: String,
        records: usize,
        pages: usize,
        requests: u32,
        /// `None` when there were no records (nothing is written).
        key: Option<String>,
    },
    #[serde(rename = "failed")]
    Failed {
        endpoint: String,
        error_type: String,
        error: String,
    },
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestReport {
    pub bucket: String,
    pub run_timestamp: String,
    pub ingested_at: String,
    pub endpoints: Vec<EndpointOutcome>,
    pub succeeded: usize,
    pub failed: usize,
}

impl IngestReport {
    /// `Err` when any endpoint failed: the stable type is `TransientError` when all
    /// failures were transient, else the first permanent one's.
    pub fn into_result(self) -> Result<Self, EtlError> {
        let failures: Vec<(&str, &str, &str)> = self
            .endpoints
            .iter()
            .filter_map(|o| match o {
                EndpointOutcome::Failed {
                    endpoint,
                    error_type,
                    error,
                } => Some((endpoint.as_str(), error_type.as_str(), error.as_str())),
                EndpointOutcome::Landed { .. } => None,
            })
            .collect();
        if failures.is_empty() {
            return Ok(self);
        }
        let kind = failures
            .iter()
            .map(|(_, t, _)| ErrorKind::from_error_type(t).unwrap_or(ErrorKind::Internal))
            .find(|k| !k.is_retryable())
            .unwrap_or(ErrorKind::Transient);
        let detail: Vec<String> = failures
            .iter()
            .map(|(e, t, m)| format!("{e}: {t}: {m}"))
            .collect();
        Err(EtlError::new(
            kind,
            format!(
                "{} of {} endpoints failed ({}); the other {} landed in s3://{}",
                failures.len(),
                self.endpoints.len(),
                detail.join("; "),
                self.succeeded,
                self.bucket
            ),
        ))
    }
}

/// Upload settings for the landing objects: S3's smallest part and two parts in flight,
/// so an endpoint holds about 15 MB however many pages it has (`ENDPOINT_CONCURRENCY`
/// endpoints at once).
fn landing_put_options() -> etl_aws::s3::PutOptions {
    etl_aws::s3::PutOptions {
        part_size: etl_aws::s3::MIN_PART_SIZE,
        concurrency: 2,
        content_type: Some("application/x-ndjson".into()),
    }
}

/// The pages after `first`, each as NDJSON into `tx`, page by page. Returns the number of
/// records sent; stops early (Ok) when the upload stopped reading, which then has the error.
async fn send_pages(
    pager: &mut Pager<'_>,
    first: Vec<Value>,
    ingested_at: &str,
    tx: &mut futures::channel::mpsc::Sender<std::io::Result<bytes::Bytes>>,
) -> Result<usize, EtlError> {
    use futures::SinkExt as _;
    let mut records = 0;
    let mut page = first;
    loop {
        records += page.len();
        let body = ndjson(page, ingested_at)?;
        if tx.send(Ok(bytes::Bytes::from(body))).await.is_err() {
            return Ok(records);
        }
        match pager.next_page().await? {
            Some(next) => page = next,
            None => return Ok(records),
        }
    }
}

async fn ingest_endpoint<S>(
    endpoint: &str,
    settings: &ApiSettings,
    clients: &Clients<S>,
    config: &Config,
    run: DateTime<Utc>,
    ingested_at: &str,
) -> Result<EndpointOutcome, EtlError> {
    use futures::SinkExt as _;
    let url = settings.base_url.join(endpoint).map_err(|e| {
        EtlError::invalid_input(format!("endpoint {endpoint:?} does not form a URL: {e}"))
    })?;
    let mut pager = Pager::new(&clients.http, url, &settings.api_key, &config.retry);
    // An endpoint without records writes no object, so the upload waits for a record.
    let mut first = None;
    while let Some(page) = pager.next_page().await? {
        if !page.is_empty() {
            first = Some(page);
            break;
        }
    }
    let mut key = None;
    let mut records = 0;
    if let Some(first) = first {
        let k = landing_key(config, endpoint, run);
        // Pages flow through a small channel into the multipart writer: at most a page or
        // two wait in the channel and a few parts in the writer. The object only appears
        // when the upload completes, so a failure part-way leaves nothing half-written.
        let (mut tx, rx) = futures::channel::mpsc::channel::<std::io::Result<bytes::Bytes>>(1);
        let options = landing_put_options();
        let upload = etl_aws::s3::put_object_from_reader(
            &clients.s3,
            &config.bucket,
            &k,
            tokio_util::io::StreamReader::new(rx),
            &options,
        );
        let produce = async {
            let sent = send_pages(&mut pager, first, ingested_at, &mut tx).await;
            if let Err(e) = &sent {
                // An error, not an end of the stream: the writer aborts instead of
                // completing an object with the pages so far.
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
            }
            // Dropping the sender is the end of the body.
            drop(tx);
            sent
        };
        let (uploaded, sent) = futures::join!(upload, produce);
        // A fetch failure explains an aborted upload better than the upload's own error.
        records = sent?;
        uploaded?;
        key = Some(k);
    }
    let stats = pager.stats;
    tracing::info!(
        endpoint,
        records,
        pages = stats.pages,
        requests = stats.requests,
        key = key.as_deref().unwrap_or(""),
        "endpoint ingested"
    );
    Ok(EndpointOutcome::Landed {
        endpoint: endpoint.to_string(),
        records,
        pages: stats.pages,
        requests: stats.requests,
        key,
    })
}

/// Runs every endpoint; never fails for one endpoint's sake (see
/// [`IngestReport::into_result`]). Fails only when the settings cannot be read.
pub async fn ingest<S: ParameterSource>(
    input: &Value,
    clients: &Clients<S>,
    config: &Config,
) -> Result<IngestReport, EtlError> {
    use futures::StreamExt as _;
    let now = Utc::now();
    let run = run_time(input, now);
    let ingested_at = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let settings = load_settings(clients.params.as_ref(), config).await?;
    tracing::info!(
        host = settings.base_url.host_str().unwrap_or(""),
        endpoints = settings.endpoints.len(),
        run = %run.to_rfc3339_opts(SecondsFormat::Secs, true),
        "ingesting"
    );
    let outcomes: Vec<EndpointOutcome> = futures::stream::iter(&settings.endpoints)
        .map(|endpoint| {
            let (settings, ingested_at) = (&settings, ingested_at.as_str());
            async move {
                match ingest_endpoint(endpoint, settings, clients, config, run, ingested_at).await {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        tracing::error!(
                            endpoint = endpoint.as_str(),
                            error_type = e.error_type(),
                            error = %e,
                            "endpoint failed"
                        );
                        EndpointOutcome::Failed {
                            endpoint: endpoint.clone(),
                            error_type: e.error_type().to_string(),
                            error: e.to_string(),
                        }
                    }
                }
            }
        })
        // `buffered` keeps the endpoints' order in the report.
        .buffered(config.concurrency)
        .collect()
        .await;
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o, EndpointOutcome::Failed { .. }))
        .count();
    // A refused key may have been rotated in SSM since it was cached: read it afresh next
    // time instead of failing until the TTL runs out.
    if outcomes.iter().any(|o| {
        matches!(o, EndpointOutcome::Failed { error_type, .. }
            if error_type == ErrorKind::AccessDenied.as_str())
    }) {
        clients.params.invalidate();
    }
    Ok(IngestReport {
        bucket: config.bucket.clone(),
        run_timestamp: run.to_rfc3339_opts(SecondsFormat::Secs, true),
        ingested_at,
        succeeded: outcomes.len() - failed,
        failed,
        endpoints: outcomes,
    })
}

/// The handler: any JSON input (the EventBridge scheduled event, or `{}`).
pub async fn handler(
    event: LambdaEvent<Value>,
    clients: &Clients,
    config: &Config,
) -> Result<IngestReport, EtlError> {
    let report = ingest(&event.payload, clients, config).await?;
    tracing::info!(
        succeeded = report.succeeded,
        failed = report.failed,
        run = %report.run_timestamp,
        "api ingestion finished"
    );
    report.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> Config {
        Config::from_source(&[("RAW_BUCKET", "raw")]).unwrap()
    }

    #[test]
    fn config_defaults_and_errors() {
        let c = config();
        assert_eq!(c.prefix, "raw-api-data/");
        assert_eq!(
            c.parameter_names(),
            (
                "/etl/api/base_url".into(),
                "/etl/api/api_key".into(),
                "/etl/api/endpoints".into()
            )
        );
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.retry.max_attempts, 5);
        assert_eq!(c.concurrency, 4);
        let c =
            Config::from_source(&[("RAW_BUCKET", "raw"), ("API_PARAM_PREFIX", "/x/y/")]).unwrap();
        assert_eq!(c.parameter_names().1, "/x/y/api_key");
        for (name, value) in [
            ("API_PARAM_PREFIX", "etl/api"),
            ("HTTP_TIMEOUT_SECONDS", "0"),
            ("MAX_ATTEMPTS", "0"),
            ("ENDPOINT_CONCURRENCY", "x"),
        ] {
            let err = Config::from_source(&[("RAW_BUCKET", "raw"), (name, value)]).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
        let err = Config::from_source(&[("X", "y")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing required environment variable RAW_BUCKET"
        );
    }

    #[test]
    fn endpoint_lists() {
        assert_eq!(
            parse_endpoints(" customers, products ,orders,").unwrap(),
            ["customers", "products", "orders"]
        );
        assert_eq!(
            parse_endpoints(r#"["v2/orders", "/customers/", "customers"]"#).unwrap(),
            ["v2/orders", "customers"]
        );
        for bad in ["", " , ", "../secrets", "a b", "[1]", "a//b", r#"["x?y"]"#] {
            assert_eq!(
                parse_endpoints(bad).unwrap_err().error_type(),
                "InvalidInput",
                "{bad}"
            );
        }
    }

    #[test]
    fn scheduled_event_time_and_keys() {
        let fixture: Value = serde_json::from_slice(include_bytes!(
            "../tests/fixtures/example-eventbridge-schedule.json"
        ))
        .unwrap();
        // The real sample parses as the typed event too; we only need its time.
        let typed: aws_lambda_events::event::eventbridge::EventBridgeEvent =
            serde_json::from_value(fixture.clone()).unwrap();
        assert_eq!(typed.detail_type, "Scheduled Event");
        let now = Utc::now();
        let run = run_time(&fixture, now);
        assert_eq!(run.to_rfc3339(), "2015-10-08T16:53:06+00:00");
        assert_eq!(run_time(&json!({}), now), now);
        assert_eq!(run_time(&json!("anything"), now), now);
        assert_eq!(
            landing_key(&config(), "v2/orders", run),
            "raw-api-data/v2-orders/year=2015/month=10/day=08/20151008T165306Z.ndjson"
        );
    }

    #[test]
    fn ndjson_lines() {
        let body = ndjson(
            vec![json!({"id": 1, "name": "a"}), json!(7)],
            "2024-05-01T12:00:00.000Z",
        )
        .unwrap();
        let text = String::from_utf8(body).unwrap();
        assert_eq!(
            text,
            "{\"id\":1,\"name\":\"a\",\"_ingested_at\":\"2024-05-01T12:00:00.000Z\"}\n\
             {\"value\":7,\"_ingested_at\":\"2024-05-01T12:00:00.000Z\"}\n"
        );
    }

    #[test]
    fn report_result_types() {
        let landed = EndpointOutcome::Landed {
            endpoint: "a".into(),
            records: 1,
            pages: 1,
            requests: 1,
            key: Some("k".into()),
        };
        let failed = |t: &str| EndpointOutcome::Failed {
            endpoint: "b".into(),
            error_type: t.into(),
            error: "boom".into(),
        };
        let report = |outcomes: Vec<EndpointOutcome>| IngestReport {
            bucket: "raw".into(),
            run_timestamp: "t".into(),
            ingested_at: "t".into(),
            succeeded: 1,
            failed: outcomes.len() - 1,
            endpoints: outcomes,
        };
        assert!(report(vec![landed.clone()]).into_result().is_ok());
        let err = report(vec![landed.clone(), failed("TransientError")])
            .into_result()
            .unwrap_err();
        assert_eq!(err.error_type(), "TransientError");
        assert!(err.to_string().contains("b: TransientError: boom"), "{err}");
        let err = report(vec![
            landed.clone(),
            failed("TransientError"),
            failed("NotFound"),
        ])
        .into_result()
        .unwrap_err();
        assert_eq!(err.error_type(), "NotFound");
        assert_eq!(
            serde_json::to_value(&landed).unwrap(),
            json!({"status": "ok", "endpoint": "a", "records": 1, "pages": 1, "requests": 1, "key": "k"})
        );
        assert_eq!(
            serde_json::to_value(failed("NotFound")).unwrap(),
            json!({"status": "failed", "endpoint": "b", "errorType": "NotFound", "error": "boom"})
        );
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "https://api.example.com/v1",
            "http://127.0.0.1:8080/v1",
            "http://127.8.9.10/",
            "http://localhost:3000",
            "http://[::1]:8080/",
        ] {
            assert_eq!(check_scheme(&Url::parse(ok).unwrap()), Ok(()), "{ok}");
        }
        for bad in [
            "http://api.example.com/v1?token=abc",
            "http://10.0.0.1/",
            "http://[::2]/",
            "http://localhost.evil.example/",
            "ftp://127.0.0.1/",
        ] {
            let err = check_scheme(&Url::parse(bad).unwrap()).unwrap_err();
            assert!(!err.contains("token=abc"), "the query is not echoed: {err}");
            assert!(err.contains("https"), "{bad}: {err}");
        }
    }

    #[test]
    fn settings_debug_hides_the_key() {
        let settings = ApiSettings {
            base_url: Url::parse("https://api.example/").unwrap(),
            api_key: Secret::new("sk-live-123456"),
            endpoints: vec!["customers".into()],
        };
        let shown = format!("{settings:?} {:?}", config());
        assert!(!shown.contains("sk-live-123456"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
