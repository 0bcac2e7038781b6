//! etl-aws against LocalStack: Glue catalog sync, idempotent Step Functions start, SNS
//! publish (read back through SQS), SSM cache, multipart upload and its abort.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use etl_aws::glue::{ColumnSpec, SyncAction, TableSpec, add_partitions, sync_table};
use etl_aws::s3::{PutOptions, put_object_from_reader};
use etl_aws::sfn::{StartOutcome, execution_name, start_execution};
use etl_aws::ssm::ParameterCache;
use integration_tests::{
    TopicQueue, execution_names, new_bucket, pass_state_machine, sdk_config, unique_name,
};
use serde_json::Value;
use tokio::io::{AsyncRead, ReadBuf};

fn cols(list: &[(&str, &str)]) -> Vec<ColumnSpec> {
    list.iter().map(|(n, t)| ColumnSpec::new(*n, *t)).collect()
}

#[tokio::test]
async fn glue_catalog_sync() {
    let glue = etl_aws::clients::glue(&sdk_config().await);
    let database = unique_name("etl_db").replace('-', "_");
    let mut spec = TableSpec {
        database: database.clone(),
        table: "customers".into(),
        location: "s3://processed/customers/".into(),
        columns: cols(&[("customer_id", "bigint"), ("name", "string")]),
        partition_keys: cols(&[("country", "string")]),
    };
    let read = |glue: aws_sdk_glue::Client, database: String| async move {
        glue.get_table()
            .database_name(&database)
            .name("customers")
            .send()
            .await
            .unwrap()
            .table
            .unwrap()
    };

    let created = sync_table(&glue, &spec).await.unwrap();
    assert_eq!(created.action, SyncAction::Created);
    let table = read(glue.clone(), database.clone()).await;
    let sd = table.storage_descriptor().unwrap();
    assert_eq!(sd.location(), Some("s3://processed/customers/"));
    assert_eq!(sd.input_format(), Some(etl_aws::glue::PARQUET_INPUT_FORMAT));
    assert_eq!(
        sd.serde_info().unwrap().serialization_library(),
        Some(etl_aws::glue::PARQUET_SERDE)
    );
    assert_eq!(table.partition_keys()[0].name(), "country");
    let v1 = table.version_id().map(String::from);

    assert_eq!(
        sync_table(&glue, &spec).await.unwrap().action,
        SyncAction::Unchanged
    );

    // Evolve: the data gained a column (and no longer has `name`, which stays).
    spec.columns = cols(&[("customer_id", "bigint"), ("email", "string")]);
    let evolved = sync_table(&glue, &spec).await.unwrap();
    assert_eq!(evolved.action, SyncAction::Updated);
    assert_eq!(evolved.added_columns, ["email"]);
    let table = read(glue.clone(), database.clone()).await;
    let names: Vec<&str> = table
        .storage_descriptor()
        .unwrap()
        .columns()
        .iter()
        .map(|c| c.name())
        .collect();
    assert_eq!(names, ["customer_id", "name", "email"]);
    assert_eq!(
        table
            .parameters()
            .unwrap()
            .get("classification")
            .map(String::as_str),
        Some("parquet")
    );
    let v2 = table.version_id().map(String::from);
    assert!(v2.is_some(), "the catalog reports a VersionId");
    assert_ne!(v1, v2, "UpdateTable made a new table version");

    // An incompatible type change is refused and leaves the table as it was.
    let mut incompatible = spec.clone();
    incompatible.columns = cols(&[("customer_id", "string")]);
    let err = sync_table(&glue, &incompatible).await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidInput");
    assert!(
        err.to_string()
            .contains("customer_id is bigint in the catalog but string"),
        "{err}"
    );
    assert_eq!(
        read(glue.clone(), database.clone())
            .await
            .version_id()
            .map(String::from),
        v2
    );

    // Partitions: adding the same one twice is fine and leaves one partition.
    let first = add_partitions(&glue, &spec, &[vec!["US".into()]])
        .await
        .unwrap();
    assert_eq!((first.created, first.already_existed), (1, 0));
    let second = add_partitions(&glue, &spec, &[vec!["US".into()], vec!["US".into()]])
        .await
        .unwrap();
    assert_eq!((second.created, second.already_existed), (0, 1));
    let partitions = glue
        .get_partitions()
        .database_name(&database)
        .table_name("customers")
        .send()
        .await
        .unwrap()
        .partitions
        .unwrap_or_default();
    assert_eq!(partitions.len(), 1);
    assert_eq!(partitions[0].values(), ["US"]);
    assert_eq!(
        partitions[0].storage_descriptor().unwrap().location(),
        Some("s3://processed/customers/country=US/")
    );
    let mixed = add_partitions(&glue, &spec, &[vec!["US".into()], vec!["FR".into()]])
        .await
        .unwrap();
    assert_eq!((mixed.created, mixed.already_existed), (1, 1));
}

#[tokio::test]
async fn sfn_start_is_idempotent() {
    let sfn = etl_aws::clients::sfn(&sdk_config().await);
    let machine = pass_state_machine(&sfn, "etl-pass").await;
    let name = execution_name(&format!(
        "order/{}/49590338271490256608559692538361571095921575989136588898",
        unique_name("seq")
    ));
    let input = r#"{"orderId":"o-1"}"#;
    let first = start_execution(&sfn, &machine, &name, input).await.unwrap();
    assert!(matches!(first, StartOutcome::Started { .. }), "{first:?}");
    let second = start_execution(&sfn, &machine, &name, input).await.unwrap();
    assert_eq!(second.execution_arn(), first.execution_arn());
    let different_input = start_execution(&sfn, &machine, &name, "{}").await.unwrap();
    assert!(
        matches!(different_input, StartOutcome::AlreadyExists { .. }),
        "{different_input:?}"
    );
    assert_eq!(different_input.execution_arn(), first.execution_arn());

    assert_eq!(execution_names(&sfn, &machine).await, [name.as_str()]);

    let err = start_execution(&sfn, &machine, "bad name", input)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "InvalidInput");
}

#[tokio::test]
async fn sns_publish_reaches_a_queue() {
    let conf = sdk_config().await;
    let sns = etl_aws::clients::sns(&conf);
    let alerts = TopicQueue::new(&conf, "etl-alerts").await;
    let topic = alerts.topic_arn.clone();

    let message = "customers: quality 0.62 below 0.80\nsee s3://processed/_manifests/x.json";
    let id = etl_aws::sns::publish(&sns, &topic, "ETL alert:\ncustomers ✗ quality", message)
        .await
        .unwrap();
    assert!(!id.is_empty());

    let body = alerts.next_message(Duration::from_secs(20)).await;
    assert_eq!(body["Message"], Value::String(message.into()));
    assert_eq!(
        body["Subject"],
        Value::String("ETL alert: customers ? quality".into())
    );
    assert_eq!(body["MessageId"], Value::String(id));
}

#[tokio::test]
async fn ssm_secure_string_cache() {
    let ssm = etl_aws::clients::ssm(&sdk_config().await);
    let name = format!("/etl-test/{}/api-key", unique_name("p"));
    let put = |value: &'static str| {
        ssm.put_parameter()
            .name(&name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send()
    };
    put("s3cr3t-1").await.unwrap();

    let cache = ParameterCache::new(ssm.clone(), Duration::from_secs(300));
    let value = cache.get(&name).await.unwrap();
    assert_eq!(value.expose(), "s3cr3t-1", "decrypted value");
    assert!(!format!("{value:?} {cache:?}").contains("s3cr3t"));

    put("s3cr3t-2").await.unwrap();
    assert_eq!(
        cache.get(&name).await.unwrap().expose(),
        "s3cr3t-1",
        "served from the cache"
    );
    let fresh = ParameterCache::new(ssm.clone(), Duration::from_secs(300));
    assert_eq!(fresh.get(&name).await.unwrap().expose(), "s3cr3t-2");
    let zero_ttl = ParameterCache::new(ssm.clone(), Duration::ZERO);
    assert_eq!(zero_ttl.get(&name).await.unwrap().expose(), "s3cr3t-2");

    let err = cache.get("/etl-test/missing/param").await.unwrap_err();
    assert_eq!(err.error_type(), "NotFound", "{err}");
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn multipart_put_round_trip() {
    let s3 = etl_aws::clients::s3(&sdk_config().await);
    let bucket = new_bucket(&s3, "etl-mpu").await;
    let body = pattern(12 * 1024 * 1024 + 123);
    let options = PutOptions {
        part_size: 5 * 1024 * 1024,
        concurrency: 2,
        content_type: Some("application/octet-stream".into()),
    };
    let out = put_object_from_reader(&s3, &bucket, "big/object.bin", body.as_slice(), &options)
        .await
        .unwrap();
    assert_eq!(out.parts, 3);
    assert_eq!(out.bytes, body.len() as u64);

    let object = etl_aws::s3::get_object(&s3, &bucket, "big/object.bin")
        .await
        .unwrap();
    assert_eq!(object.size, Some(body.len() as i64));
    let mut reader = object.into_reader();
    let mut back = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut back)
        .await
        .unwrap();
    assert!(back == body, "the object read back equals what was written");

    // Ranged, parallel parts come back in order.
    use futures::TryStreamExt;
    let ranged = etl_aws::s3::get_object_ranges(&s3, &bucket, "big/object.bin", 5 * 1024 * 1024, 3)
        .await
        .unwrap();
    assert_eq!(ranged.size, body.len() as u64);
    assert!(ranged.etag.is_some());
    let parts: Vec<bytes::Bytes> = ranged.parts.try_collect().await.unwrap();
    assert_eq!(parts.len(), 3);
    assert!(parts.concat() == body, "ranged parts reassemble the object");
    let mut back = Vec::new();
    let ranged = etl_aws::s3::get_object_ranges(&s3, &bucket, "big/object.bin", 4 * 1024 * 1024, 2)
        .await
        .unwrap();
    tokio::io::AsyncReadExt::read_to_end(&mut ranged.into_reader(), &mut back)
        .await
        .unwrap();
    assert!(back == body, "the ranged reader yields the object");
    let missing = etl_aws::s3::get_object_ranges(&s3, &bucket, "nope", 1024, 2)
        .await
        .unwrap_err();
    assert_eq!(missing.error_type(), "NotFound");

    let small = put_object_from_reader(&s3, &bucket, "small.bin", &b"tiny"[..], &options)
        .await
        .unwrap();
    assert_eq!((small.parts, small.bytes), (0, 4));

    let err = etl_aws::s3::get_object(&s3, &bucket, "nope")
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "NotFound");
}

/// Yields `data` up to `fail_at` bytes, then fails.
struct FailingReader {
    data: Vec<u8>,
    pos: usize,
    fail_at: usize,
}

impl AsyncRead for FailingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos >= self.fail_at {
            return Poll::Ready(Err(io::Error::other("source stream broke")));
        }
        let end = self
            .fail_at
            .min(self.pos + buf.remaining())
            .min(self.data.len());
        let start = self.pos;
        buf.put_slice(&self.data[start..end]);
        self.pos = end;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn failed_multipart_put_leaves_nothing() {
    let s3 = etl_aws::clients::s3(&sdk_config().await);
    let bucket = new_bucket(&s3, "etl-mpu-abort").await;
    let reader = FailingReader {
        data: pattern(16 * 1024 * 1024),
        pos: 0,
        fail_at: 11 * 1024 * 1024,
    };
    let options = PutOptions {
        part_size: 5 * 1024 * 1024,
        ..Default::default()
    };
    let err = put_object_from_reader(&s3, &bucket, "partial.bin", reader, &options)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("source stream broke"), "{err}");
    assert!(err.to_string().contains("partial.bin"), "{err}");

    let head = s3
        .head_object()
        .bucket(&bucket)
        .key("partial.bin")
        .send()
        .await;
    assert!(head.is_err(), "no object is visible");
    let uploads = s3
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(
        uploads.uploads().is_empty(),
        "pending uploads: {:?}",
        uploads.uploads()
    );
}
