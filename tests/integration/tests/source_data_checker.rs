//! source-data-checker against S3 in LocalStack.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::SecondsFormat;
use integration_tests::{new_bucket, poll_until, put_many, sdk_config};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use source_data_checker::{CheckOutput, Clients, Config, handler};

async fn setup(prefix: &str) -> (Clients, String) {
    let clients = Clients::new(&sdk_config().await);
    let bucket = new_bucket(&clients.s3, prefix).await;
    (clients, bucket)
}

async fn check(clients: &Clients, config: &Config, input: Value) -> CheckOutput {
    handler(LambdaEvent::new(input, Context::default()), clients, config)
        .await
        .expect("handler succeeds")
}

fn keys(out: &CheckOutput) -> BTreeSet<String> {
    out.files
        .as_ref()
        .expect("files inline")
        .iter()
        .map(|f| f.key.clone())
        .collect()
}

#[tokio::test]
async fn no_files_means_no_data() {
    let (clients, bucket) = setup("sdc-empty").await;
    let config = Config::from_source(&[("RAW_BUCKET", bucket.as_str())]).unwrap();
    let out = check(&clients, &config, json!({})).await;
    assert!(!out.data_available);
    assert_eq!(out.file_count, 0);
    assert_eq!(out.total_bytes, 0);
    assert_eq!(out.files.as_deref(), Some(&[][..]));
    assert_eq!(out.items_location, None);
}

#[tokio::test]
async fn lists_every_page() {
    let (clients, bucket) = setup("sdc-pages").await;
    let wanted: Vec<String> = (0..1100)
        .map(|i| format!("raw-data/customers/f{i:05}.csv"))
        .collect();
    put_many(&clients.s3, &bucket, &wanted, 32).await;

    // The listing really spans pages (S3 returns at most 1000 keys per page).
    let listing = etl_aws::s3::list_objects(&clients.s3, &bucket, "raw-data/", None, |_| true)
        .await
        .unwrap();
    assert_eq!(listing.scanned, 1100);
    assert_eq!(listing.pages, 2);

    let config = Config::from_source(&[("RAW_BUCKET", bucket.as_str())]).unwrap();
    let out = check(&clients, &config, json!({"lookbackHours": 1})).await;
    assert!(out.data_available);
    assert_eq!(out.file_count, 1100);
    assert_eq!(keys(&out), wanted.iter().cloned().collect::<BTreeSet<_>>());
    let expected_bytes: i64 = wanted
        .iter()
        .map(|k| format!("id\n{k}\n").len() as i64)
        .sum();
    assert_eq!(out.total_bytes, expected_bytes);
    // ~30 KB with the default 1 GiB a worker: Glue's minimum.
    assert_eq!(out.glue_workers, 2);
    let first = &out.files.as_ref().unwrap()[0];
    assert_eq!(first.bucket, bucket);
    assert!(
        first.etag.as_deref().is_some_and(|e| !e.contains('"')),
        "{first:?}"
    );
    assert!(first.last_modified.is_some());
}

#[tokio::test]
async fn since_and_suffix_filters() {
    let (clients, bucket) = setup("sdc-since").await;
    let old: Vec<String> = ["raw-data/a1.csv", "raw-data/a2.json"]
        .map(String::from)
        .to_vec();
    put_many(&clients.s3, &bucket, &old, 4).await;
    let listing = etl_aws::s3::list_objects(&clients.s3, &bucket, "raw-data/", None, |_| true)
        .await
        .unwrap();
    let watermark = listing
        .objects
        .iter()
        .filter_map(|o| o.last_modified)
        .max()
        .unwrap();
    // Wait until the server clock has moved past the watermark (timestamps may have
    // second precision), so everything written next is strictly newer.
    poll_until(
        "the S3 clock to pass the watermark",
        Duration::from_secs(10),
        || {
            let s3 = clients.s3.clone();
            let bucket = bucket.clone();
            async move {
                s3.put_object()
                    .bucket(&bucket)
                    .key("clock/probe")
                    .body(Vec::new().into())
                    .send()
                    .await
                    .unwrap();
                let head = s3
                    .head_object()
                    .bucket(&bucket)
                    .key("clock/probe")
                    .send()
                    .await
                    .unwrap();
                let t = etl_aws::s3::to_chrono(head.last_modified().unwrap()).unwrap();
                (t > watermark).then_some(())
            }
        },
    )
    .await;
    let new: Vec<String> = [
        "raw-data/b1.csv",
        "raw-data/b2.txt",
        "raw-data/b3.ndjson.gz",
        "raw-data/sub/b4.CSV",
        "raw-data/dir/",
    ]
    .map(String::from)
    .to_vec();
    put_many(&clients.s3, &bucket, &new, 4).await;

    let config = Config::from_source(&[("RAW_BUCKET", bucket.as_str())]).unwrap();
    let since = watermark.to_rfc3339_opts(SecondsFormat::Millis, true);
    let out = check(&clients, &config, json!({"since": since})).await;
    assert_eq!(
        keys(&out),
        [
            "raw-data/b1.csv",
            "raw-data/b3.ndjson.gz",
            "raw-data/sub/b4.CSV"
        ]
        .map(String::from)
        .into()
    );
    assert_eq!(out.file_count, 3);

    let out = check(
        &clients,
        &config,
        json!({"since": since, "suffixes": [".TXT"]}),
    )
    .await;
    assert_eq!(keys(&out), ["raw-data/b2.txt"].map(String::from).into());

    // Without `since`, the lookback (1 hour) sees the old files too.
    let out = check(&clients, &config, json!({})).await;
    assert_eq!(out.file_count, 5);

    // A prefix narrows the listing.
    let out = check(
        &clients,
        &config,
        json!({"since": since, "prefix": "raw-data/sub/"}),
    )
    .await;
    assert_eq!(keys(&out), ["raw-data/sub/b4.CSV"].map(String::from).into());
}

#[tokio::test]
async fn large_lists_go_to_s3() {
    let (clients, bucket) = setup("sdc-large").await;
    let wanted: Vec<String> = (0..60)
        .map(|i| format!("raw-data/big/part-{i:03}.csv"))
        .collect();
    put_many(&clients.s3, &bucket, &wanted, 16).await;
    let config = Config::from_source(&[
        ("RAW_BUCKET", bucket.as_str()),
        ("INLINE_LIMIT_BYTES", "2000"),
        ("MANIFEST_PREFIX", "raw-data/_items/"),
        ("GLUE_BYTES_PER_WORKER", "100"),
        ("GLUE_MAX_WORKERS", "7"),
    ])
    .unwrap();
    let out = check(&clients, &config, json!({})).await;
    assert!(out.data_available);
    assert_eq!(out.file_count, 60);
    // Sized from the listed bytes: 100 a worker, within 2..=7.
    let total: i64 = wanted
        .iter()
        .map(|k| format!("id\n{k}\n").len() as i64)
        .sum();
    assert_eq!(out.total_bytes, total);
    assert_eq!(out.glue_workers, 7, "{total} bytes");
    assert_eq!(out.files, None);
    let location = out.items_location.clone().expect("items location");
    assert_eq!(location.bucket, bucket);
    assert!(
        location.key.starts_with("raw-data/_items/"),
        "{}",
        location.key
    );
    let json_out = serde_json::to_value(&out).unwrap();
    assert!(json_out.get("files").is_none());
    assert_eq!(json_out["itemsLocation"]["key"], json!(location.key));

    let body = clients
        .s3
        .get_object()
        .bucket(&location.bucket)
        .key(&location.key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let items: Vec<Value> = serde_json::from_slice(&body).unwrap();
    // Each item carries its ETag as S3 lists it (the workflow's Map selects bucket, key
    // and etag) and its size (the Glue job's `--items_location` reads all four).
    let listing = etl_aws::s3::list_objects(&clients.s3, &bucket, "raw-data/big/", None, |_| true)
        .await
        .unwrap();
    let expected: Vec<Value> = listing
        .objects
        .iter()
        .map(|o| {
            json!({"bucket": bucket, "key": o.key, "etag": o.etag.as_deref().unwrap(),
                   "size": format!("id\n{}\n", o.key).len()})
        })
        .collect();
    assert_eq!(
        listing.objects.iter().map(|o| &o.key).collect::<Vec<_>>(),
        wanted.iter().collect::<Vec<_>>()
    );
    assert_eq!(items, expected);

    // The items file sits under the listed prefix here, yet is never reported as data,
    // and the same listing writes the same key again.
    let again = check(&clients, &config, json!({})).await;
    assert_eq!(again.file_count, 60);
    assert_eq!(again.items_location, Some(location));
}

#[tokio::test]
async fn missing_bucket_is_not_found() {
    let clients = Clients::new(&sdk_config().await);
    let config = Config::from_source(&[("RAW_BUCKET", "sdc-no-such-bucket-xyz")]).unwrap();
    let err = handler(
        LambdaEvent::new(json!({}), Context::default()),
        &clients,
        &config,
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type(), "NotFound", "{err}");
    assert!(err.to_string().contains("sdc-no-such-bucket-xyz"), "{err}");
}

/// Writes a run manifest where s3-processor would (`<dataset>/<stem>-<source hash>.json`)
/// recording `etag` and `status` for `s3://bucket/key`.
async fn put_run_manifest(
    clients: &Clients,
    lake: &str,
    bucket: &str,
    key: &str,
    etag: &str,
    status: &str,
) {
    let hash = etl_aws::source_object_hash(bucket, key);
    let stem = key.rsplit('/').next().unwrap();
    let body = json!({
        "dataset": "customers",
        "source": {"name": format!("s3://{bucket}/{key}"), "etag": etag},
        "status": status,
    });
    clients
        .s3
        .put_object()
        .bucket(lake)
        .key(format!("manifests/customers/{stem}-{hash:016x}.json"))
        .body(serde_json::to_vec(&body).unwrap().into())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn files_processed_with_the_same_etag_are_skipped_unless_reprocessing() {
    let (clients, bucket) = setup("sdc-skip").await;
    let lake = new_bucket(&clients.s3, "sdc-skip-lake").await;
    let names: Vec<String> = ["same", "changed", "failed", "new"]
        .iter()
        .map(|n| format!("raw-data/customers/{n}.csv"))
        .collect();
    put_many(&clients.s3, &bucket, &names, 4).await;
    let listing = etl_aws::s3::list_objects(&clients.s3, &bucket, "raw-data/", None, |_| true)
        .await
        .unwrap();
    let etag = |key: &str| {
        listing
            .objects
            .iter()
            .find(|o| o.key == key)
            .and_then(|o| o.etag.clone())
            .unwrap()
    };
    put_run_manifest(
        &clients,
        &lake,
        &bucket,
        &names[0],
        &etag(&names[0]),
        "succeeded",
    )
    .await;
    put_run_manifest(
        &clients,
        &lake,
        &bucket,
        &names[1],
        "an-older-etag",
        "succeeded",
    )
    .await;
    put_run_manifest(
        &clients,
        &lake,
        &bucket,
        &names[2],
        &etag(&names[2]),
        "quality_failed",
    )
    .await;
    // The same file name in another bucket has a manifest of its own, not this one's.
    put_run_manifest(
        &clients,
        &lake,
        "elsewhere",
        &names[3],
        &etag(&names[3]),
        "succeeded",
    )
    .await;

    let config = Config::from_source(&[
        ("RAW_BUCKET", bucket.as_str()),
        ("PROCESSED_BUCKET", lake.as_str()),
    ])
    .unwrap();
    let out = check(&clients, &config, json!({})).await;
    assert_eq!(out.skipped_count, 1);
    assert_eq!(out.file_count, 3);
    assert_eq!(keys(&out), names[1..].iter().cloned().collect());
    let size =
        |keys: &[String]| -> i64 { keys.iter().map(|k| format!("id\n{k}\n").len() as i64).sum() };
    assert_eq!(out.total_bytes, size(&names[1..]));

    let out = check(&clients, &config, json!({"reprocess": true})).await;
    assert_eq!((out.skipped_count, out.file_count), (0, 4));
    assert_eq!(keys(&out), names.iter().cloned().collect());

    // Everything processed: no data, and the count says why.
    for key in &names {
        put_run_manifest(&clients, &lake, &bucket, key, &etag(key), "succeeded").await;
    }
    let out = check(&clients, &config, json!({})).await;
    assert!(!out.data_available);
    assert_eq!((out.skipped_count, out.file_count), (4, 0));
}
