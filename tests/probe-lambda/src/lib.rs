//! A probe Lambda for the LocalStack harness (tests/localstack).
//!
//! It tells the tests that it ran and in which process:
//! - a direct invoke gets its payload echoed with the process id and an invocation counter
//!   (so warm reuse is visible); the payload may ask it to `sleep_ms`, `fail` with a message,
//!   `exit` the process, or write a `marker` object;
//! - a Kinesis batch returns `batchItemFailures` for each record whose JSON data has
//!   `"fail": true`, and writes one marker listing the records it saw;
//! - an S3 notification writes a marker per object, an EventBridge event one per event.
//!
//! Markers go to the bucket named by `MARKER_BUCKET` (none set: nothing is written).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::{Value, json};

/// Process-wide state: the S3 client is built once per execution environment.
pub struct Probe {
    s3: Option<(aws_sdk_s3::Client, String)>,
    invocations: AtomicU64,
}

impl Probe {
    /// Reads `MARKER_BUCKET`; the SDK finds endpoint, region and credentials in the environment.
    pub async fn from_env() -> Self {
        let s3 = match std::env::var("MARKER_BUCKET") {
            Ok(bucket) if !bucket.is_empty() => {
                let shared = aws_config::load_from_env().await;
                // Path-style addressing: LocalStack's endpoint is an IP address, not a domain.
                let conf = aws_sdk_s3::config::Builder::from(&shared)
                    .force_path_style(true)
                    .build();
                Some((aws_sdk_s3::Client::from_conf(conf), bucket))
            }
            _ => None,
        };
        Self {
            s3,
            invocations: AtomicU64::new(0),
        }
    }

    /// A probe that writes no markers (unit tests).
    pub fn without_markers() -> Self {
        Self {
            s3: None,
            invocations: AtomicU64::new(0),
        }
    }

    async fn put_marker(&self, key: &str, body: &Value) -> Result<Option<String>, Error> {
        let Some((client, bucket)) = &self.s3 else {
            return Ok(None);
        };
        client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .body(body.to_string().into_bytes().into())
            .send()
            .await
            .map_err(|e| format!("writing marker s3://{bucket}/{key}: {e:?}"))?;
        Ok(Some(format!("s3://{bucket}/{key}")))
    }
}

/// Which kind of event arrived, by the fields AWS puts in each.
fn event_source(payload: &Value) -> Option<&str> {
    if let Some(source) = payload
        .pointer("/Records/0/eventSource")
        .and_then(Value::as_str)
    {
        return Some(source);
    }
    if payload.get("detail-type").is_some() && payload.get("source").is_some() {
        return Some("aws:events");
    }
    None
}

pub async fn handler(probe: &Probe, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    let invocation = probe.invocations.fetch_add(1, Ordering::SeqCst) + 1;
    let request_id = context.request_id.clone();
    let source = event_source(&payload).unwrap_or("direct").to_string();
    tracing::info!(%request_id, invocation, %source, "probe invoked");

    match source.as_str() {
        "aws:kinesis" => kinesis(probe, &request_id, payload).await,
        "aws:s3" => s3(probe, payload).await,
        "aws:events" => eventbridge(probe, &request_id, payload).await,
        _ => direct(probe, invocation, &context, payload).await,
    }
}

async fn direct(
    probe: &Probe,
    invocation: u64,
    context: &lambda_runtime::Context,
    payload: Value,
) -> Result<Value, Error> {
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(message) = payload.get("fail").and_then(Value::as_str) {
        return Err(message.into());
    }
    if let Some(code) = payload.get("exit").and_then(Value::as_i64) {
        tracing::warn!(code, "probe asked to exit");
        std::process::exit(i32::try_from(code).unwrap_or(1));
    }
    let env = |name: &str| std::env::var(name).ok();
    let mut out = json!({
        "probe": "ok",
        "pid": std::process::id(),
        "invocation": invocation,
        "request_id": context.request_id,
        "function_arn": context.invoked_function_arn,
        "event": payload,
        "env": {
            "AWS_ENDPOINT_URL": env("AWS_ENDPOINT_URL"),
            "AWS_REGION": env("AWS_REGION"),
            "AWS_LAMBDA_FUNCTION_NAME": env("AWS_LAMBDA_FUNCTION_NAME"),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
            "LAMBDA_TASK_ROOT": env("LAMBDA_TASK_ROOT"),
            "_HANDLER": env("_HANDLER"),
        },
    });
    if let Some(key) = payload_marker_key(&out) {
        out["marker"] = json!(probe.put_marker(&key, &out).await?);
    }
    Ok(out)
}

fn payload_marker_key(out: &Value) -> Option<String> {
    out.pointer("/event/marker")
        .and_then(Value::as_str)
        .map(str::to_string)
}

async fn kinesis(probe: &Probe, request_id: &str, payload: Value) -> Result<Value, Error> {
    let event: KinesisEvent = serde_json::from_value(payload)?;
    let mut response = KinesisEventResponse::default();
    let mut seen = Vec::new();
    for record in &event.records {
        let data = String::from_utf8_lossy(&record.kinesis.data.0).into_owned();
        let wants_failure = serde_json::from_str::<Value>(&data)
            .ok()
            .and_then(|v| v.get("fail").and_then(Value::as_bool))
            .unwrap_or(false);
        if wants_failure {
            response.add_failure(record.kinesis.sequence_number.clone());
        }
        seen.push(json!({
            "sequence_number": record.kinesis.sequence_number,
            "data": data,
            "failed": wants_failure,
        }));
    }
    let marker = json!({ "request_id": request_id, "records": seen });
    probe
        .put_marker(&format!("kinesis/{request_id}.json"), &marker)
        .await?;
    Ok(serde_json::to_value(response)?)
}

async fn s3(probe: &Probe, payload: Value) -> Result<Value, Error> {
    let event: S3Event = serde_json::from_value(payload)?;
    let mut markers = Vec::new();
    for record in &event.records {
        let key = record.s3.object.key.clone().unwrap_or_default();
        let body = json!({
            "bucket": record.s3.bucket.name,
            "key": key,
            "event_name": record.event_name,
        });
        markers.push(probe.put_marker(&format!("s3/{key}"), &body).await?);
    }
    Ok(json!({ "markers": markers }))
}

async fn eventbridge(probe: &Probe, request_id: &str, payload: Value) -> Result<Value, Error> {
    let event: EventBridgeEvent = serde_json::from_value(payload)?;
    // A scheduled rule names itself in `resources`; that is what the tests look for.
    let rule = event
        .resources
        .as_ref()
        .and_then(|r| r.first())
        .and_then(|arn| arn.rsplit('/').next())
        .unwrap_or("no-rule")
        .to_string();
    let body = json!({
        "rule": rule,
        "detail_type": event.detail_type,
        "source": event.source,
        "id": event.id,
    });
    let marker = probe
        .put_marker(&format!("events/{rule}/{request_id}.json"), &body)
        .await?;
    Ok(json!({ "marker": marker, "rule": rule }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Context;

    fn event(payload: Value) -> LambdaEvent<Value> {
        LambdaEvent::new(payload, Context::default())
    }

    #[tokio::test]
    async fn echoes_and_counts_invocations() -> Result<(), Error> {
        let probe = Probe::without_markers();
        let first = handler(&probe, event(json!({ "hello": "world" }))).await?;
        let second = handler(&probe, event(json!({}))).await?;
        assert_eq!(first["event"]["hello"], "world");
        assert_eq!(first["pid"], std::process::id());
        assert_eq!(first["invocation"], 1);
        assert_eq!(second["invocation"], 2);
        Ok(())
    }

    #[tokio::test]
    async fn fails_on_request() {
        let probe = Probe::without_markers();
        let err = handler(&probe, event(json!({ "fail": "boom" }))).await;
        assert_eq!(err.map_err(|e| e.to_string()), Err("boom".to_string()));
    }

    #[tokio::test]
    async fn reports_kinesis_batch_item_failures() -> Result<(), Error> {
        let probe = Probe::without_markers();
        // "eyJmYWlsIjp0cnVlfQ==" is {"fail":true}, "eyJvayI6MX0=" is {"ok":1}.
        let record = |seq: &str, data: &str| {
            json!({
                "eventSource": "aws:kinesis",
                "eventName": "aws:kinesis:record",
                "kinesis": {
                    "sequenceNumber": seq,
                    "partitionKey": "p",
                    "data": data,
                    "approximateArrivalTimestamp": 1.7e9,
                    "kinesisSchemaVersion": "1.0"
                }
            })
        };
        let payload = json!({ "Records": [
            record("1", "eyJvayI6MX0="),
            record("2", "eyJmYWlsIjp0cnVlfQ=="),
        ]});
        let out = handler(&probe, event(payload)).await?;
        assert_eq!(
            out,
            json!({ "batchItemFailures": [{ "itemIdentifier": "2" }] })
        );
        Ok(())
    }
}
