//! Starting the order workflow for purchases: bounded retries, a classification of
//! StartExecution failures, the durable record of purchases that could not be started, and
//! the replay of those records.
//!
//! A failed start never holds back the shard (see the crate docs for why): a purchase is
//! either started (or found already started), refused for good (quarantined as
//! `order_rejected`), or written to the failed-orders object of its batch, from which
//! [`replay_failed_orders`] starts it later. Execution names derive from the record, so a
//! replay of a purchase that did start in the meantime answers "already exists" and starts
//! nothing twice.

use std::time::{Duration, Instant};

use aws_sdk_sfn::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use etl_aws::sfn::StartOutcome;
use etl_aws::{ErrorKind, EtlError};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::{Clients, Config};

/// Time kept back from the Lambda deadline for the S3 writes that follow the starts: past
/// `deadline - WRITE_RESERVE` no start is attempted or retried (the purchase is recorded).
pub const WRITE_RESERVE: Duration = Duration::from_secs(15);

/// What a StartExecution failure means for the purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFailure {
    /// This purchase can never start (its input or name is refused): quarantined.
    Rejected,
    /// Worth another attempt soon: throttling, quotas, 5xx, network.
    Retryable,
    /// Not this purchase's fault and not fixed by retrying now (the state machine is
    /// missing or being deleted, a permission or KMS key problem): recorded for replay.
    Stuck,
}

/// Codes of StartExecution errors that a retry in a moment may clear. Kept here, not in
/// etl-aws's shared tables: they decide whether a purchase waits or is recorded, which is
/// this function's policy. `ExecutionLimitExceeded` is the 1,000,000 open executions quota,
/// `KmsThrottlingException` the state machine's key being throttled.
const RETRYABLE_START_CODES: &[&str] = &["ExecutionLimitExceeded", "KmsThrottlingException"];

/// Codes that refuse this purchase's request itself; no retry or replay can succeed.
const REJECTED_START_CODES: &[&str] = &["InvalidExecutionInput", "InvalidName"];

/// Classifies a failure of [`etl_aws::sfn::start_execution`] by the service's error code
/// when there is one, else by the error's kind.
pub fn classify_start_error(err: &EtlError) -> StartFailure {
    let code = std::error::Error::source(err)
        .and_then(|s| s.downcast_ref::<SdkError<StartExecutionError>>())
        .and_then(|e| e.code().map(str::to_string));
    classify_start_code(code.as_deref(), err.kind())
}

/// [`classify_start_error`] on its parts.
pub fn classify_start_code(code: Option<&str>, kind: ErrorKind) -> StartFailure {
    match code {
        Some(c) if REJECTED_START_CODES.contains(&c) => StartFailure::Rejected,
        Some(c) if RETRYABLE_START_CODES.contains(&c) => StartFailure::Retryable,
        // Any other coded refusal (StateMachineDoesNotExist, StateMachineDeleting,
        // InvalidArn, KmsAccessDeniedException, ValidationException, AccessDenied...) is
        // about the configuration or the service, not the purchase: keep it for replay.
        Some(_) if kind != ErrorKind::Transient => StartFailure::Stuck,
        _ => match kind {
            ErrorKind::Transient => StartFailure::Retryable,
            // No service code: our own refusal of the request (an invalid execution name).
            ErrorKind::InvalidInput => StartFailure::Rejected,
            _ => StartFailure::Stuck,
        },
    }
}

/// One purchase to start.
#[derive(Debug, Clone)]
pub struct OrderStart {
    /// Index of the record in the batch.
    pub index: usize,
    pub execution_name: String,
    /// The StartExecution input (JSON).
    pub input: String,
}

/// How a start ended.
#[derive(Debug)]
pub enum StartResult {
    Done(StartOutcome),
    /// Refused for good ([`StartFailure::Rejected`]).
    Rejected(EtlError),
    /// Not started: stuck, out of attempts, or out of time. `attempts` may be 0 when the
    /// deadline came first.
    Unstarted {
        error: EtlError,
        attempts: u32,
    },
}

/// The wait before retry `n` (1-based): full jitter up to `100 ms * 2^(n-1)`, at most 2 s.
pub fn start_backoff(n: u32, unit: f64) -> Duration {
    let ceiling = Duration::from_millis(100)
        .saturating_mul(2_u32.saturating_pow(n.saturating_sub(1)))
        .min(Duration::from_secs(2));
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

fn time_left(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

/// Starts one purchase with up to `config.start_attempts` attempts (each of which the SDK
/// itself retries on throttling), stopping early once `deadline - WRITE_RESERVE` is near.
pub async fn start_with_retries(
    clients: &Clients,
    config: &Config,
    start: &OrderStart,
    deadline: Option<Instant>,
) -> StartResult {
    let mut attempts = 0;
    loop {
        if time_left(deadline).is_some_and(|left| left <= WRITE_RESERVE) {
            return StartResult::Unstarted {
                error: EtlError::transient(format!(
                    "execution {} not started: the invocation reached its deadline reserve",
                    start.execution_name
                )),
                attempts,
            };
        }
        attempts += 1;
        let result = etl_aws::sfn::start_execution(
            &clients.sfn,
            &config.order_state_machine_arn,
            &start.execution_name,
            &start.input,
        )
        .await;
        let error = match result {
            Ok(outcome) => return StartResult::Done(outcome),
            Err(e) => e,
        };
        match classify_start_error(&error) {
            StartFailure::Rejected => return StartResult::Rejected(error),
            StartFailure::Stuck => return StartResult::Unstarted { error, attempts },
            StartFailure::Retryable if attempts >= config.start_attempts => {
                return StartResult::Unstarted { error, attempts };
            }
            StartFailure::Retryable => {
                let wait = start_backoff(attempts, fastrand::f64());
                if time_left(deadline).is_some_and(|left| left <= WRITE_RESERVE + wait) {
                    return StartResult::Unstarted { error, attempts };
                }
                tracing::debug!(name = %start.execution_name, attempts, error = %error, "order start failed, retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Starts every purchase, `config.start_concurrency` at once; results in input order.
pub async fn start_all(
    clients: &Clients,
    config: &Config,
    starts: Vec<OrderStart>,
    deadline: Option<Instant>,
) -> Vec<(OrderStart, StartResult)> {
    futures::stream::iter(starts)
        .map(|start| async move {
            let result = start_with_retries(clients, config, &start, deadline).await;
            (start, result)
        })
        // `buffered` keeps the batch's order, which the failed-orders object follows.
        .buffered(config.start_concurrency)
        .collect()
        .await
}

/// One line of a failed-orders object: everything needed to start the purchase later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedOrder {
    pub execution_name: String,
    /// The state machine the start was aimed at (a replay uses the configured one).
    pub state_machine_arn: String,
    pub shard_id: String,
    pub sequence_number: String,
    pub error_type: String,
    pub error: String,
    pub attempts: u32,
    /// The StartExecution input, as JSON.
    pub input: serde_json::Value,
}

/// What [`replay_failed_orders`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplaySummary {
    pub objects: usize,
    pub started: usize,
    pub already_started: usize,
    /// Refused for good on replay (left in the object, so nothing disappears unseen).
    pub rejected: usize,
    /// Still failing; left in their object.
    pub still_failing: usize,
    /// Objects emptied and deleted.
    pub objects_deleted: usize,
}

fn bad_line(bucket: &str, key: &str, line: usize, e: serde_json::Error) -> EtlError {
    EtlError::invalid_input(format!(
        "s3://{bucket}/{key} line {line}: not a failed-order record: {e}"
    ))
}

/// Starts the purchases recorded under `config.failed_orders_prefix` + `sub_prefix` with
/// the configured state machine. An object whose purchases all started is deleted;
/// otherwise it is rewritten with the ones left (their error updated). Needs
/// s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on the archive bucket.
pub async fn replay_failed_orders(
    clients: &Clients,
    config: &Config,
    sub_prefix: &str,
) -> Result<ReplaySummary, EtlError> {
    let prefix = format!(
        "{}{}",
        config.failed_orders_prefix,
        sub_prefix.trim_start_matches('/')
    );
    let bucket = config.bucket.as_str();
    let listing =
        etl_aws::s3::list_objects(&clients.s3, bucket, &prefix, None, |o| o.size > 0).await?;
    let mut summary = ReplaySummary::default();
    for object in &listing.objects {
        summary.objects += 1;
        let body = etl_aws::s3::get_object(&clients.s3, bucket, &object.key)
            .await?
            .bytes()
            .await?;
        let mut orders = Vec::new();
        for (n, line) in body.split(|b| *b == b'\n').enumerate() {
            if line.trim_ascii().is_empty() {
                continue;
            }
            let order: FailedOrder = serde_json::from_slice(line)
                .map_err(|e| bad_line(bucket, &object.key, n + 1, e))?;
            orders.push(order);
        }
        let starts: Vec<OrderStart> = orders
            .iter()
            .enumerate()
            .map(|(index, o)| OrderStart {
                index,
                execution_name: o.execution_name.clone(),
                input: o.input.to_string(),
            })
            .collect();
        let mut left = Vec::new();
        for (start, result) in start_all(clients, config, starts, None).await {
            let mut order = orders[start.index].clone();
            match result {
                StartResult::Done(StartOutcome::Started { .. }) => summary.started += 1,
                StartResult::Done(StartOutcome::AlreadyExists { .. }) => {
                    summary.already_started += 1;
                }
                StartResult::Rejected(error) => {
                    summary.rejected += 1;
                    order.error_type = error.error_type().to_string();
                    order.error = error.to_string();
                    left.push(order);
                }
                StartResult::Unstarted { error, attempts } => {
                    summary.still_failing += 1;
                    order.error_type = error.error_type().to_string();
                    order.error = error.to_string();
                    order.attempts += attempts;
                    left.push(order);
                }
            }
        }
        if left.is_empty() {
            clients
                .s3
                .delete_object()
                .bucket(bucket)
                .key(&object.key)
                .send()
                .await
                .map_err(|e| {
                    EtlError::from_sdk(format!("deleting s3://{bucket}/{}", object.key), e)
                })?;
            summary.objects_deleted += 1;
        } else {
            let body = failed_orders_body(&left)?;
            etl_aws::s3::put_bytes(
                &clients.s3,
                bucket,
                &object.key,
                body,
                Some("application/x-ndjson"),
            )
            .await?;
        }
    }
    tracing::info!(
        prefix,
        objects = summary.objects,
        started = summary.started,
        already_started = summary.already_started,
        still_failing = summary.still_failing,
        rejected = summary.rejected,
        "failed orders replayed"
    );
    Ok(summary)
}

/// The NDJSON body of a failed-orders object.
pub fn failed_orders_body(orders: &[FailedOrder]) -> Result<Vec<u8>, EtlError> {
    let mut out = Vec::with_capacity(orders.len() * 512);
    for order in orders {
        serde_json::to_writer(&mut out, order)
            .map_err(|e| EtlError::internal(format!("serializing a failed order: {e}")))?;
        out.push(b'\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_codes() {
        use ErrorKind::*;
        use StartFailure::*;
        let cases = [
            (Some("InvalidExecutionInput"), InvalidInput, Rejected),
            (Some("InvalidName"), InvalidInput, Rejected),
            (Some("ExecutionLimitExceeded"), InvalidInput, Retryable),
            (Some("KmsThrottlingException"), InvalidInput, Retryable),
            (Some("ThrottlingException"), Transient, Retryable),
            (Some("StateMachineDoesNotExist"), NotFound, Stuck),
            (Some("StateMachineDeleting"), InvalidInput, Stuck),
            (Some("InvalidArn"), InvalidInput, Stuck),
            (Some("KmsAccessDeniedException"), AccessDenied, Stuck),
            (Some("ValidationException"), InvalidInput, Stuck),
            (None, Transient, Retryable),
            (None, InvalidInput, Rejected),
            (None, Internal, Stuck),
        ];
        for (code, kind, want) in cases {
            assert_eq!(classify_start_code(code, kind), want, "{code:?} {kind:?}");
        }
        // Without an SDK error inside, the kind decides.
        assert_eq!(
            classify_start_error(&EtlError::transient("connection reset")),
            Retryable
        );
        assert_eq!(
            classify_start_error(&EtlError::invalid_input("bad name")),
            Rejected
        );
    }

    #[test]
    fn start_backoff_grows_and_is_capped() {
        assert_eq!(start_backoff(1, 1.0), Duration::from_millis(100));
        assert_eq!(start_backoff(3, 1.0), Duration::from_millis(400));
        assert_eq!(start_backoff(3, 0.5), Duration::from_millis(200));
        assert_eq!(start_backoff(40, 1.0), Duration::from_secs(2));
        assert_eq!(start_backoff(2, 0.0), Duration::ZERO);
    }

    #[test]
    fn failed_order_lines_round_trip() {
        let order = FailedOrder {
            execution_name: "order-3-42".into(),
            state_machine_arn: "arn:aws:states:us-east-1:1:stateMachine:o".into(),
            shard_id: "shardId-000000000003".into(),
            sequence_number: "42".into(),
            error_type: "NotFound".into(),
            error: "StateMachineDoesNotExist: gone".into(),
            attempts: 1,
            input: serde_json::json!({"order": {"amount": 5}}),
        };
        let body = failed_orders_body(&[order.clone(), order.clone()]).unwrap();
        let text = String::from_utf8(body).unwrap();
        let back: Vec<FailedOrder> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, [order.clone(), order]);
    }
}
