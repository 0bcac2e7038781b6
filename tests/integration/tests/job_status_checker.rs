//! job-status-checker against Glue (moto behind LocalStack).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aws_sdk_glue::types::{ExecutionProperty, JobCommand};
use integration_tests::{ACCOUNT, poll_until, sdk_config, unique_name};
use job_status_checker::{Clients, Config, EtlStatus, handler};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;

async fn create_job(clients: &Clients) -> String {
    let name = unique_name("jsc-job");
    clients
        .glue
        .create_job()
        .name(&name)
        .role(format!("arn:aws:iam::{ACCOUNT}:role/x"))
        .command(
            JobCommand::builder()
                .name("glueetl")
                .script_location("s3://scripts/etl.py")
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

#[tokio::test]
async fn reports_the_run_it_was_asked_about() {
    let clients = Clients::new(&sdk_config().await);
    let config = &Config::default();
    let job = create_job(&clients).await;
    let first = start(&clients, &job).await;
    let second = start(&clients, &job).await;
    assert_ne!(first, second);

    for run_id in [&first, &second] {
        let out = poll_until("the job run to finish", Duration::from_secs(30), || {
            let clients = clients.clone();
            let event = LambdaEvent::new(
                json!({"jobName": job, "jobRunId": run_id}),
                Context::default(),
            );
            async move {
                let out = handler(event, &clients, config).await.unwrap();
                assert!(
                    ["STARTING", "RUNNING", "SUCCEEDED"].contains(&out.glue_state.as_str()),
                    "{out:?}"
                );
                out.terminal.then_some(out)
            }
        })
        .await;
        assert_eq!(
            &out.job_run_id, run_id,
            "the run asked about, not the latest"
        );
        assert_eq!(out.job_name, job);
        assert_eq!(out.etl_status, EtlStatus::Succeeded);
        assert_eq!(out.glue_state, "SUCCEEDED");
        assert!(out.start_time.is_some(), "{out:?}");
        assert_eq!(out.error_message, None);
        let value = serde_json::to_value(&out).unwrap();
        assert_eq!(value["etlStatus"], json!("SUCCEEDED"));
    }
}

#[tokio::test]
async fn unknown_run_is_not_found() {
    let clients = Clients::new(&sdk_config().await);
    let job = create_job(&clients).await;
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
