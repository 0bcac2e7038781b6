//! job-status-checker against Glue in LocalStack, whose provider runs each job run's script
//! as a host process (tests/localstack/plugin/etl_localstack/glue.py): the states reported
//! are the real process's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aws_sdk_glue::types::{ExecutionProperty, JobCommand};
use integration_tests::{ACCOUNT, new_bucket, poll_until, sdk_config, unique_name};
use job_status_checker::{Clients, Config, EtlStatus, StatusOutput, handler};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;

/// Succeeds after 2 s, so the checker sees it running first.
const SUCCEEDING_SCRIPT: &str = "import time\ntime.sleep(2)\nprint('done')\n";
const FAILING_SCRIPT: &str = "raise RuntimeError('no input files under raw-data/')\n";

/// A job whose script (uploaded to a new bucket) is `script`.
async fn create_job(clients: &Clients, script: &str) -> String {
    let s3 = etl_aws::clients::s3(&sdk_config().await);
    let bucket = new_bucket(&s3, "jsc-scripts").await;
    s3.put_object()
        .bucket(&bucket)
        .key("job.py")
        .body(script.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    let name = unique_name("jsc-job");
    clients
        .glue
        .create_job()
        .name(&name)
        .role(format!("arn:aws:iam::{ACCOUNT}:role/x"))
        .command(
            JobCommand::builder()
                .name("glueetl")
                .script_location(format!("s3://{bucket}/job.py"))
                .build(),
        )
        .execution_property(ExecutionProperty::builder().max_concurrent_runs(3).build())
        .send()
        .await
        .unwrap();
    name
}

async fn start(clients: &Clients, job: &str) -> String {
    clients
        .glue
        .start_job_run()
        .job_name(job)
        .send()
        .await
        .unwrap()
        .job_run_id
        .unwrap()
}

/// Polls the handler until the run is terminal; every answer before that is a live state.
async fn until_terminal(clients: &Clients, job: &str, run_id: &str) -> StatusOutput {
    poll_until("the job run to finish", Duration::from_secs(60), || {
        let clients = clients.clone();
        let event = LambdaEvent::new(
            json!({"jobName": job, "jobRunId": run_id}),
            Context::default(),
        );
        async move {
            let out = handler(event, &clients, &Config::default()).await.unwrap();
            if !out.terminal {
                assert!(
                    ["STARTING", "RUNNING"].contains(&out.glue_state.as_str()),
                    "{out:?}"
                );
                assert_eq!(out.etl_status, EtlStatus::Running);
            }
            out.terminal.then_some(out)
        }
    })
    .await
}

#[tokio::test]
async fn reports_the_run_it_was_asked_about() {
    let clients = Clients::new(&sdk_config().await);
    let job = create_job(&clients, SUCCEEDING_SCRIPT).await;
    let first = start(&clients, &job).await;
    let second = start(&clients, &job).await;
    assert_ne!(first, second);
    // Right after the start the script is still sleeping: not finished, whatever reads came.
    let event = LambdaEvent::new(
        json!({"jobName": job, "jobRunId": first}),
        Context::default(),
    );
    let out = handler(event, &clients, &Config::default()).await.unwrap();
    assert_eq!(out.etl_status, EtlStatus::Running, "{out:?}");

    for run_id in [&first, &second] {
        let out = until_terminal(&clients, &job, run_id).await;
        assert_eq!(
            &out.job_run_id, run_id,
            "the run asked about, not the latest"
        );
        assert_eq!(out.job_name, job);
        assert_eq!(out.etl_status, EtlStatus::Succeeded);
        assert_eq!(out.glue_state, "SUCCEEDED");
        assert!(
            out.start_time.is_some() && out.end_time.is_some(),
            "{out:?}"
        );
        assert_eq!(out.error_message, None);
        let value = serde_json::to_value(&out).unwrap();
        assert_eq!(value["etlStatus"], json!("SUCCEEDED"));
    }
}

#[tokio::test]
async fn reports_a_failed_script_with_its_error() {
    let clients = Clients::new(&sdk_config().await);
    let job = create_job(&clients, FAILING_SCRIPT).await;
    let run_id = start(&clients, &job).await;
    let out = until_terminal(&clients, &job, &run_id).await;
    assert_eq!(out.etl_status, EtlStatus::Failed);
    assert_eq!(out.glue_state, "FAILED");
    assert_eq!(
        out.error_message.as_deref(),
        Some("RuntimeError: no input files under raw-data/")
    );
}

#[tokio::test]
async fn unknown_run_is_not_found() {
    let clients = Clients::new(&sdk_config().await);
    let job = create_job(&clients, SUCCEEDING_SCRIPT).await;
    let event = LambdaEvent::new(
        json!({"jobName": job, "jobRunId": "jr_does_not_exist"}),
        Context::default(),
    );
    let err = handler(event, &clients, &Config::default())
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "NotFound", "{err}");
    assert!(err.to_string().contains("jr_does_not_exist"), "{err}");
    let diagnostic = lambda_runtime::Diagnostic::from(err);
    assert_eq!(diagnostic.error_type, "NotFound");

    let event = LambdaEvent::new(
        json!({"jobName": unique_name("no-such-job"), "jobRunId": "jr_1"}),
        Context::default(),
    );
    let err = handler(event, &clients, &Config::default())
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "NotFound", "{err}");
}
