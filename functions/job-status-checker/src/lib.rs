//! job-status-checker: reports the state of one Glue job run, `{jobName, jobRunId}`.
//!
//! The seed asked for "the latest run" of the job, which under concurrent runs reports
//! somebody else's; we read exactly the run the workflow started (GetJobRun). Every Glue
//! run state maps to one of three `etlStatus` values a Choice state branches on:
//! `RUNNING` (poll again), `SUCCEEDED`, `FAILED`; the raw state is kept as `glueState`.

use chrono::{DateTime, SecondsFormat, Utc};
use etl_aws::EtlError;
use etl_aws::config::{ConfigError, EnvSource, ProcessEnv};
use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use aws_sdk_glue::types::{JobRun, JobRunState};

/// Nothing is configured by environment today; kept so every function has the same shape
/// (and a place for e.g. a default job name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    pub fn from_source(_env: &impl EnvSource) -> Result<Self, ConfigError> {
        Ok(Self {})
    }
}

/// SDK clients, built once per cold start.
#[derive(Debug, Clone)]
pub struct Clients {
    pub glue: aws_sdk_glue::Client,
}

impl Clients {
    pub fn new(conf: &aws_config::SdkConfig) -> Self {
        Self {
            glue: etl_aws::clients::glue(conf),
        }
    }
}

/// The task input (the ASL passes `JobName` and `$.JobRunId` from glue:startJobRun).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusInput {
    pub job_name: String,
    pub job_run_id: String,
}

/// What the workflow branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EtlStatus {
    Running,
    Succeeded,
    Failed,
}

/// The task output (the seed's shape, for the run asked about).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusOutput {
    pub etl_status: EtlStatus,
    /// Glue's own state, e.g. `TIMEOUT`.
    pub glue_state: String,
    /// Whether the run has finished (`etlStatus` is not `RUNNING`).
    pub terminal: bool,
    pub job_name: String,
    pub job_run_id: String,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub execution_time_seconds: Option<i64>,
    pub error_message: Option<String>,
}

/// Parses the raw event; malformed input is an `InvalidInput` error.
pub fn parse_input(payload: Value) -> Result<StatusInput, EtlError> {
    let input: StatusInput = serde_json::from_value(payload).map_err(|e| {
        EtlError::invalid_input(format!(
            "invalid job-status-checker input: {e} (expected {{\"jobName\": ..., \"jobRunId\": ...}})"
        ))
    })?;
    if input.job_name.trim().is_empty() || input.job_run_id.trim().is_empty() {
        return Err(EtlError::invalid_input(
            "invalid job-status-checker input: jobName and jobRunId must not be empty",
        ));
    }
    Ok(input)
}

/// Maps a Glue run state. Unknown future states count as failed (with the raw state in
/// `glueState`), so the workflow never polls forever on something it cannot interpret.
pub fn map_state(state: &JobRunState) -> EtlStatus {
    match state {
        JobRunState::Starting
        | JobRunState::Running
        | JobRunState::Stopping
        | JobRunState::Waiting => EtlStatus::Running,
        JobRunState::Succeeded => EtlStatus::Succeeded,
        JobRunState::Failed
        | JobRunState::Error
        | JobRunState::Timeout
        | JobRunState::Stopped
        | JobRunState::Expired => EtlStatus::Failed,
        _ => EtlStatus::Failed,
    }
}

fn to_chrono(dt: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(dt.secs(), dt.subsec_nanos())
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Builds the output from a job run (pure, so every state is unit-tested).
pub fn to_output(job_name: &str, job_run_id: &str, run: &JobRun) -> StatusOutput {
    let (etl_status, glue_state) = match run.job_run_state() {
        Some(state) => (map_state(state), state.as_str().to_string()),
        // No state at all: Glue has not reported one yet.
        None => (EtlStatus::Running, "UNKNOWN".to_string()),
    };
    let started = run.started_on().and_then(to_chrono);
    let completed = run.completed_on().and_then(to_chrono);
    // Glue's ExecutionTime is the billed run time; fall back to the wall clock.
    let execution_time_seconds = match (run.execution_time(), started, completed) {
        (secs, _, _) if secs > 0 => Some(i64::from(secs)),
        (_, Some(s), Some(c)) => Some((c - s).num_seconds()),
        _ => None,
    };
    let error_message = match (run.error_message(), etl_status) {
        (Some(m), _) if !m.is_empty() => Some(m.to_string()),
        (_, EtlStatus::Failed) => Some(format!("Glue job run ended in state {glue_state}")),
        _ => None,
    };
    StatusOutput {
        etl_status,
        terminal: etl_status != EtlStatus::Running,
        glue_state,
        job_name: job_name.to_string(),
        job_run_id: job_run_id.to_string(),
        start_time: started.map(rfc3339),
        end_time: completed.map(rfc3339),
        execution_time_seconds,
        error_message,
    }
}

/// The handler.
pub async fn handler(
    event: LambdaEvent<Value>,
    clients: &Clients,
    _config: &Config,
) -> Result<StatusOutput, EtlError> {
    let input = parse_input(event.payload)?;
    let out = clients
        .glue
        .get_job_run()
        .job_name(&input.job_name)
        .run_id(&input.job_run_id)
        .send()
        .await
        .map_err(|e| {
            EtlError::from_sdk(
                format!(
                    "reading Glue job run {} of job {}",
                    input.job_run_id, input.job_name
                ),
                e,
            )
        })?;
    let run = out.job_run.ok_or_else(|| {
        EtlError::not_found(format!(
            "Glue job run {} of job {} not found",
            input.job_run_id, input.job_name
        ))
    })?;
    let output = to_output(&input.job_name, &input.job_run_id, &run);
    tracing::info!(
        job_name = %input.job_name,
        job_run_id = %input.job_run_id,
        glue_state = %output.glue_state,
        etl_status = ?output.etl_status,
        "job run status read"
    );
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Context;
    use serde_json::json;

    #[test]
    fn input_parsing() {
        let event = LambdaEvent::new(
            json!({"jobName": "customer-etl-job", "jobRunId": "jr_1"}),
            Context::default(),
        );
        let input = parse_input(event.payload).unwrap();
        assert_eq!(input.job_name, "customer-etl-job");
        assert_eq!(input.job_run_id, "jr_1");
        for bad in [
            json!({"jobName": "j"}),
            json!({"jobName": "j", "jobRunId": ""}),
            json!({"jobName": "j", "jobRunId": "r", "extra": 1}),
            json!(null),
        ] {
            let err = parse_input(bad.clone()).unwrap_err();
            assert_eq!(err.error_type(), "InvalidInput", "{bad}");
        }
    }

    #[test]
    fn every_state_maps() {
        let cases = [
            ("STARTING", EtlStatus::Running),
            ("RUNNING", EtlStatus::Running),
            ("STOPPING", EtlStatus::Running),
            ("WAITING", EtlStatus::Running),
            ("SUCCEEDED", EtlStatus::Succeeded),
            ("FAILED", EtlStatus::Failed),
            ("ERROR", EtlStatus::Failed),
            ("TIMEOUT", EtlStatus::Failed),
            ("STOPPED", EtlStatus::Failed),
            ("EXPIRED", EtlStatus::Failed),
            ("SOMETHING_NEW", EtlStatus::Failed),
        ];
        for (raw, want) in cases {
            assert_eq!(map_state(&JobRunState::from(raw)), want, "{raw}");
        }
    }

    #[test]
    fn output_from_runs() {
        let started = aws_smithy_types::DateTime::from_secs(1_714_560_000);
        let done = aws_smithy_types::DateTime::from_secs(1_714_560_095);
        let run = JobRun::builder()
            .id("jr_1")
            .job_run_state(JobRunState::Succeeded)
            .started_on(started)
            .completed_on(done)
            .build();
        let out = to_output("j", "jr_1", &run);
        assert_eq!(
            serde_json::to_value(&out).unwrap(),
            json!({
                "etlStatus": "SUCCEEDED", "glueState": "SUCCEEDED", "terminal": true,
                "jobName": "j", "jobRunId": "jr_1",
                "startTime": "2024-05-01T10:40:00Z", "endTime": "2024-05-01T10:41:35Z",
                "executionTimeSeconds": 95, "errorMessage": null
            })
        );

        let run = JobRun::builder()
            .job_run_state(JobRunState::Timeout)
            .started_on(started)
            .execution_time(2880)
            .build();
        let out = to_output("j", "jr_2", &run);
        assert_eq!(out.etl_status, EtlStatus::Failed);
        assert_eq!(out.glue_state, "TIMEOUT");
        assert_eq!(out.execution_time_seconds, Some(2880));
        assert_eq!(
            out.error_message.as_deref(),
            Some("Glue job run ended in state TIMEOUT")
        );

        let run = JobRun::builder()
            .job_run_state(JobRunState::Failed)
            .error_message("OOM on executor 3")
            .build();
        let out = to_output("j", "jr_3", &run);
        assert_eq!(out.error_message.as_deref(), Some("OOM on executor 3"));
        assert_eq!(out.execution_time_seconds, None);

        let run = JobRun::builder()
            .job_run_state(JobRunState::Running)
            .build();
        let out = to_output("j", "jr_4", &run);
        assert_eq!(out.etl_status, EtlStatus::Running);
        assert!(!out.terminal);
        assert_eq!(out.error_message, None);
    }
}
