//! s3-processor in-process against LocalStack: S3 in and out, Glue via moto, SNS alerts,
//! Step Functions for files routed to the Glue engine.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use std::time::Duration;

use etl_core::polars::prelude::*;
use integration_tests::{
    TopicQueue, execution_names, get_bytes, list_keys, new_bucket, pass_state_machine, sdk_config,
    unique_name,
};
use lambda_runtime::{Context, LambdaEvent};
use s3_processor::{Clients, Config, handler};
use serde_json::{Value, json};

const SAMPLE: &str = include_str!("../../../infra/samples/customers.csv");

struct Env {
    clients: Clients,
    config: Config,
    raw: String,
    lake: String,
    database: String,
    _work: tempfile::TempDir,
}

async fn env(alert_topic: Option<&str>) -> Env {
    env_with(alert_topic, &[]).await
}

async fn env_with(alert_topic: Option<&str>, extra: &[(&str, &str)]) -> Env {
    let conf = sdk_config().await;
    let clients = Clients::new(&conf);
    let raw = new_bucket(&clients.s3, "raw").await;
    let lake = new_bucket(&clients.s3, "lake").await;
    let database = unique_name("db").replace('-', "_");
    let work = tempfile::tempdir().unwrap();
    let mut vars: Vec<(String, String)> = vec![
        ("PROCESSED_BUCKET".into(), lake.clone()),
        ("GLUE_DATABASE".into(), database.clone()),
        ("WORK_DIR".into(), work.path().display().to_string()),
    ];
    if let Some(t) = alert_topic {
        vars.push(("ALERT_TOPIC_ARN".into(), t.to_string()));
    }
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = Config::from_source(
        &vars
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>(),
    )
    .unwrap();
    Env {
        clients,
        config,
        raw,
        lake,
        database,
        _work: work,
    }
}

impl Env {
    async fn put(&self, key: &str, body: &str) {
        self.clients
            .s3
            .put_object()
            .bucket(&self.raw)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }

    async fn invoke(&self, event: Value) -> Value {
        let out = handler(
            LambdaEvent::new(event, Context::default()),
            &self.clients,
            &self.config,
        )
        .await
        .unwrap();
        serde_json::to_value(out).unwrap()
    }

    async fn partitions(&self) -> Vec<Vec<String>> {
        let mut values: Vec<Vec<String>> = self
            .clients
            .glue
            .get_partitions()
            .database_name(&self.database)
            .table_name("customers")
            .send()
            .await
            .unwrap()
            .partitions
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.values.unwrap_or_default())
            .collect();
        values.sort();
        values
    }
}

/// An S3 notification as S3 sends it: the key form-encoded.
fn notification(bucket: &str, encoded_key: &str) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2025-01-01T00:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "x"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "raw",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "x"}, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": encoded_key, "size": 1, "eTag": "e", "sequencer": "1"}}
    }]})
}

#[tokio::test]
async fn csv_lands_as_catalogued_parquet_with_quarantine_and_manifest() {
    let e = env(None).await;
    let key = "raw-data/customers/2024 batch/customers+1.csv";
    e.put(key, SAMPLE).await;
    let out = e
        .invoke(notification(
            &e.raw,
            "raw-data/customers/2024+batch/customers%2B1.csv",
        ))
        .await;
    let result = &out["objects"][0];
    assert_eq!(result["status"], "processed", "{out}");
    assert_eq!(result["key"], key, "the key is decoded");
    assert_eq!(
        (
            result["rowsIn"].as_u64(),
            result["rowsOut"].as_u64(),
            result["quarantined"].as_u64()
        ),
        (Some(23), Some(13), Some(8))
    );

    let data = list_keys(&e.clients.s3, &e.lake, "processed/customers/").await;
    assert_eq!(data.len(), 13, "{data:?}");
    let us_high = data
        .iter()
        .find(|k| k.contains("country=US/customer_segment=High/"))
        .unwrap();
    let bytes = get_bytes(&e.clients.s3, &e.lake, us_high).await;
    let df = ParquetReader::new(std::io::Cursor::new(bytes))
        .finish()
        .unwrap();
    assert_eq!(df.height(), 1);
    assert_eq!(
        df.column("customer_id").unwrap().i64().unwrap().get(0),
        Some(1001)
    );

    let quarantine = list_keys(&e.clients.s3, &e.lake, "quarantine/customers/").await;
    assert_eq!(quarantine.len(), 1);
    let q = ParquetReader::new(std::io::Cursor::new(
        get_bytes(&e.clients.s3, &e.lake, &quarantine[0]).await,
    ))
    .finish()
    .unwrap();
    assert_eq!(q.height(), 8);

    let manifest_key = result["manifestKey"].as_str().unwrap();
    let manifest: Value =
        serde_json::from_slice(&get_bytes(&e.clients.s3, &e.lake, manifest_key).await).unwrap();
    assert_eq!(manifest["counts"]["rows_in"], 23);
    assert_eq!(manifest["counts"]["duplicates"], 2);
    assert_eq!(manifest["source"]["name"], format!("s3://{}/{key}", e.raw));
    assert!(
        manifest["outputs"][0]["path"]
            .as_str()
            .unwrap()
            .starts_with(&format!("s3://{}/processed/customers/", e.lake))
    );

    let table = e
        .clients
        .glue
        .get_table()
        .database_name(&e.database)
        .name("customers")
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let sd = table.storage_descriptor.unwrap();
    let columns: Vec<String> = sd
        .columns
        .unwrap_or_default()
        .into_iter()
        .map(|c| format!("{}:{}", c.name, c.r#type.unwrap_or_default()))
        .collect();
    assert!(
        columns.contains(&"customer_id:bigint".to_string()),
        "{columns:?}"
    );
    assert!(
        columns.contains(&"processed_at:timestamp".to_string()),
        "{columns:?}"
    );
    assert!(
        columns.contains(&"signup_date:date".to_string()),
        "{columns:?}"
    );
    assert_eq!(
        sd.location.as_deref(),
        Some(format!("s3://{}/processed/customers/", e.lake).as_str())
    );
    let keys: Vec<String> = table
        .partition_keys
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(keys, ["country", "customer_segment"]);
    let partitions = e.partitions().await;
    assert_eq!(partitions.len(), 13);
    assert!(partitions.contains(&vec!["US".to_string(), "High".to_string()]));
}

#[tokio::test]
async fn redelivery_rewrites_the_same_keys_and_a_new_version_replaces_the_old() {
    let e = env(None).await;
    let key = "raw-data/customers/daily.csv";
    e.put(key, SAMPLE).await;
    let event = notification(&e.raw, key);
    let mut seen = Vec::new();
    for _ in 0..3 {
        e.invoke(event.clone()).await;
        seen.push(list_keys(&e.clients.s3, &e.lake, "").await);
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[1], seen[2]);
    assert_eq!(
        e.partitions().await.len(),
        13,
        "one partition each, however often"
    );

    // A new version of the object with rows in one partition only: the others' files go.
    let header = SAMPLE.lines().next().unwrap();
    e.put(
        key,
        &format!("{header}\n2001,Zoe,zoe@example.com,NZ,900,10,New,2025-01-01\n"),
    )
    .await;
    e.invoke(event).await;
    let data = list_keys(&e.clients.s3, &e.lake, "processed/customers/").await;
    assert_eq!(data.len(), 1, "{data:?}");
    assert!(data[0].contains("country=NZ/customer_segment=High/"));
    assert!(
        list_keys(&e.clients.s3, &e.lake, "quarantine/")
            .await
            .is_empty(),
        "nothing rejected now"
    );
}

#[tokio::test]
async fn a_quality_alert_reaches_sns() {
    let conf = sdk_config().await;
    let alerts = TopicQueue::new(&conf, "alerts").await;
    let e = env(Some(&alerts.topic_arn)).await;
    let header = SAMPLE.lines().next().unwrap();
    // amount 250000 breaks the alert-only range rule: the data is kept, the team is told.
    e.put(
        "raw-data/customers/big.csv",
        &format!(
            "{header}\n1,A,a@x.io,US,10,250000,x,2024-01-01\n2,B,b@x.io,US,10,5,y,2024-01-01\n"
        ),
    )
    .await;
    let out = e
        .invoke(json!({"bucket": e.raw, "key": "raw-data/customers/big.csv"}))
        .await;
    assert_eq!(out["objects"][0]["status"], "processed");
    assert_eq!(out["objects"][0]["rowsOut"], 2);
    let message = alerts.next_message(Duration::from_secs(20)).await;
    assert!(
        message["Subject"]
            .as_str()
            .unwrap()
            .starts_with("ETL quality alert: customers"),
        "{message}"
    );
    assert!(
        message["Message"]
            .as_str()
            .unwrap()
            .contains("ColumnValues \"amount\" between 0 and 100000"),
        "{message}"
    );
}

#[tokio::test]
async fn unknown_prefixes_and_own_outputs_are_skipped() {
    let e = env(None).await;
    let out = e
        .invoke(json!({"Records": [
            notification(&e.raw, "elsewhere/file.csv")["Records"][0],
            notification(&e.lake, "processed/customers/country%3DUS/x.parquet")["Records"][0],
        ]}))
        .await;
    let reasons: Vec<&str> = out["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["no dataset spec for this prefix", "own output"]);
    assert!(list_keys(&e.clients.s3, &e.lake, "").await.is_empty());
}

#[tokio::test]
async fn a_missing_object_is_not_found_and_bad_input_is_invalid() {
    let e = env(None).await;
    let err = handler(
        LambdaEvent::new(
            json!({"bucket": e.raw, "key": "raw-data/customers/none.csv"}),
            Context::default(),
        ),
        &e.clients,
        &e.config,
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type(), "NotFound");
    e.put("raw-data/customers/broken.json", "[{\"customer_id\": 1},")
        .await;
    let err = handler(
        LambdaEvent::new(
            json!({"bucket": e.raw, "key": "raw-data/customers/broken.json"}),
            Context::default(),
        ),
        &e.clients,
        &e.config,
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type(), "InvalidInput");
    assert!(err.message().contains("broken.json"), "{}", err.message());
}

#[tokio::test]
async fn a_file_over_the_threshold_starts_one_glue_workflow_and_is_not_processed() {
    let sfn = etl_aws::clients::sfn(&sdk_config().await);
    let machine = pass_state_machine(&sfn, "route").await;
    // The sample itself is exactly at the threshold (processed); one row more routes.
    let threshold = SAMPLE.len().to_string();
    let e = env_with(
        None,
        &[
            ("GLUE_ROUTE_BYTES", threshold.as_str()),
            ("GLUE_BYTES_PER_WORKER", "500"),
            ("STATE_MACHINE_ARN", machine.as_str()),
        ],
    )
    .await;
    let big_key = "raw-data/customers/big file.csv";
    let big = format!("{SAMPLE}9001,Big,big@example.com,US,10,5,x,2024-01-01\n");
    e.put(big_key, &big).await;
    let etag = e
        .clients
        .s3
        .head_object()
        .bucket(&e.raw)
        .key(big_key)
        .send()
        .await
        .unwrap()
        .e_tag
        .unwrap()
        .trim_matches('"')
        .to_string();
    let name = s3_processor::glue_execution_name(&e.raw, big_key, Some(&etag));
    assert!(name.starts_with("glue-big-file-csv-"), "{name}");
    let arn = etl_aws::sfn::execution_arn(&machine, &name);

    // The S3 trigger, then the same file as a workflow Map item: one execution.
    for event in [
        notification(&e.raw, "raw-data/customers/big+file.csv"),
        json!({"bucket": e.raw, "key": big_key, "etag": etag}),
    ] {
        let out = e.invoke(event).await;
        let result = &out["objects"][0];
        assert_eq!(result["status"], "routed", "{out}");
        assert_eq!(result["executionArn"], arn.as_str(), "{out}");
        assert_eq!(result["dataset"], "customers", "{out}");
    }
    assert_eq!(execution_names(&sfn, &machine).await, [name.as_str()]);
    let input: Value = serde_json::from_str(
        &sfn.describe_execution()
            .execution_arn(&arn)
            .send()
            .await
            .unwrap()
            .input
            .unwrap(),
    )
    .unwrap();
    let size = big.len();
    assert_eq!(size.div_ceil(500), 4, "{size} bytes");
    assert_eq!(
        input,
        json!({
            "engine": "glue",
            "files": [{"bucket": e.raw, "key": big_key, "etag": etag, "size": size}],
            "totalBytes": size,
            // ceil(size / 500) = 4, within the default 2..=20.
            "glueWorkers": size.div_ceil(500),
        })
    );
    assert!(
        list_keys(&e.clients.s3, &e.lake, "").await.is_empty(),
        "a routed file writes nothing"
    );

    // At the threshold: processed here as before, nothing started.
    let small_key = "raw-data/customers/small.csv";
    e.put(small_key, SAMPLE).await;
    let out = e.invoke(notification(&e.raw, small_key)).await;
    assert_eq!(out["objects"][0]["status"], "processed", "{out}");
    assert_eq!(out["objects"][0]["rowsIn"], 23, "{out}");
    assert!(out["objects"][0].get("executionArn").is_none(), "{out}");
    let manifest = out["objects"][0]["manifestKey"].as_str().unwrap();
    assert!(
        list_keys(&e.clients.s3, &e.lake, "manifests/")
            .await
            .contains(&manifest.to_string())
    );
    assert_eq!(execution_names(&sfn, &machine).await, [name.as_str()]);
}
