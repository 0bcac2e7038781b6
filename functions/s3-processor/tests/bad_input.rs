//! s3-processor against LocalStack on broken compressed objects and a missing one: the
//! class each failure gets decides whether the workflow retries it.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use std::io::Write;

use integration_tests::{new_bucket, sdk_config};
use lambda_runtime::{Context, LambdaEvent};
use s3_processor::{Clients, Config, handler};
use serde_json::json;

const SAMPLE: &str = include_str!("../../../infra/samples/customers.csv");

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    e.include_checksum(true).unwrap();
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn broken_objects_are_invalid_input_and_a_missing_one_not_found() {
    let conf = sdk_config().await;
    let clients = Clients::new(&conf);
    let raw = new_bucket(&clients.s3, "raw").await;
    let lake = new_bucket(&clients.s3, "lake").await;
    let work = tempfile::tempdir().unwrap();
    let config = Config::from_source(
        &[
            ("PROCESSED_BUCKET".to_string(), lake.clone()),
            ("WORK_DIR".to_string(), work.path().display().to_string()),
        ]
        .into_iter()
        .collect::<std::collections::HashMap<_, _>>(),
    )
    .unwrap();
    let csv = SAMPLE.repeat(50).into_bytes();
    let gz = gzip(&csv);
    let zst = zstd(&csv);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("ok.csv.gz", gz.clone(), ""),
        (
            "truncated.csv.gz",
            gz[..gz.len() / 2].to_vec(),
            "InvalidInput",
        ),
        (
            "truncated.csv.zst",
            zst[..zst.len() / 2].to_vec(),
            "InvalidInput",
        ),
        ("plain.csv.gz", csv.clone(), "InvalidInput"),
        ("zstd-inside.csv.gz", zst.clone(), "InvalidInput"),
    ];
    for (name, body, want) in cases {
        let key = format!("raw-data/customers/{name}");
        clients
            .s3
            .put_object()
            .bucket(&raw)
            .key(&key)
            .body(body.into())
            .send()
            .await
            .unwrap();
        let event = LambdaEvent::new(json!({"bucket": raw, "key": key}), Context::default());
        let result = handler(event, &clients, &config).await;
        match (want, result) {
            ("", Ok(out)) => assert_eq!(out.objects[0].status, "processed", "{name}"),
            ("", Err(e)) => panic!("{name}: {e}"),
            (want, Ok(out)) => panic!("{name}: wanted {want}, got {out:?}"),
            (want, Err(e)) => {
                assert_eq!(e.error_type(), want, "{name}: {e}");
                assert!(e.to_string().contains(&key), "{name}: {e}");
            }
        }
    }
    let event = LambdaEvent::new(
        json!({"bucket": raw, "key": "raw-data/customers/gone.csv.gz"}),
        Context::default(),
    );
    let err = handler(event, &clients, &config).await.unwrap_err();
    assert_eq!(err.error_type(), "NotFound", "{err}");
}
