//! kinesis-consumer in-process against LocalStack: S3 objects, Step Functions executions,
//! redelivery with the batch boundaries Lambda uses (retries from a reported record,
//! bisection, batches that grow), failing order starts recorded and replayed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;

use base64::Engine as _;
use integration_tests::{
    ACCOUNT, execution_names, get_bytes, list_keys, new_bucket, pass_state_machine, sdk_config,
    unique_name,
};
use kinesis_consumer::orders::FailedOrder;
use kinesis_consumer::{
    BatchReport, Clients, Config, KinesisBatch, ReplayRequest, Response, handler, process,
};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

const SHARD: &str = "shardId-000000000003";
/// 2024-05-01T12:00:00Z, a window boundary.
const T0: i64 = 1_714_564_800;

fn seq(i: usize) -> String {
    format!("4959033827149025660855969253836157109592157598913658{i:04}")
}

/// A Kinesis event as Lambda delivers it; `payload` is base64-encoded unless it is `Err`
/// (then the string is put in `data` as is, e.g. invalid base64).
fn batch(payloads: &[Result<String, &str>]) -> KinesisBatch {
    let engine = &base64::engine::general_purpose::STANDARD;
    let records: Vec<Value> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let data = match p {
                Ok(text) => engine.encode(text),
                Err(raw) => raw.to_string(),
            };
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": format!("pk-{i}"),
                    "sequenceNumber": seq(i),
                    "data": data,
                    "approximateArrivalTimestamp": T0 as f64 + 0.5 + i as f64,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{SHARD}:{}", seq(i)),
                "eventName": "aws:kinesis:record",
                "awsRegion": "us-east-1",
                "eventSourceARN": format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/events"),
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

/// Records `range` of `whole`, as Lambda would deliver them in a smaller batch.
fn slice(whole: &KinesisBatch, range: std::ops::Range<usize>) -> KinesisBatch {
    KinesisBatch {
        records: whole.records[range].to_vec(),
        ..Default::default()
    }
}

fn page_view(customer: &str, session: &str, secs: i64) -> Result<String, &'static str> {
    Ok(
        json!({"event_type": "page_view", "customer_id": customer, "session_id": session,
              "page_url": "/products/laptop", "timestamp": T0 + secs})
        .to_string(),
    )
}

fn purchase(
    customer: &str,
    session: Option<&str>,
    amount: f64,
    iso: &str,
) -> Result<String, &'static str> {
    let mut e = json!({"event_type": "purchase", "customer_id": customer, "product_id": "P001",
                       "quantity": 1, "amount": amount, "timestamp": iso});
    if let Some(s) = session {
        e["session_id"] = s.into();
    }
    Ok(e.to_string())
}

/// Seven records: page views and purchases over two windows, one record that is not JSON
/// and one that is not base64. Purchases are at indexes 2 and 5.
fn mixed_batch() -> KinesisBatch {
    batch(&[
        page_view("c1", "s1", 10),
        page_view("c1", "s1", 70),
        purchase("c1", Some("s1"), 999.99, "2024-05-01T12:02:30Z"),
        Ok("Hello World".into()),
        page_view("c2", "s9", 400),
        purchase("c2", None, 10.5, "2024-05-01T12:06:00.123456"),
        Err("%%% not base64 %%%"),
    ])
}

struct Setup {
    clients: Clients,
    config: Config,
    machine: String,
}

async fn setup() -> Setup {
    let conf = sdk_config().await;
    let clients = Clients::new(&conf);
    let bucket = new_bucket(&clients.s3, "kc").await;
    let machine = pass_state_machine(&clients.sfn, "kc-orders").await;
    let config = Config::from_source(&[
        ("ARCHIVE_BUCKET", bucket.as_str()),
        ("ORDER_STATE_MACHINE_ARN", machine.as_str()),
    ])
    .unwrap();
    Setup {
        clients,
        config,
        machine,
    }
}

fn ndjson(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn order_names(indexes: &[usize]) -> Vec<String> {
    let mut names: Vec<String> = indexes
        .iter()
        .map(|i| kinesis_consumer::order_execution_name(SHARD, &seq(*i)))
        .collect();
    names.sort();
    names
}

async fn run(batch: &KinesisBatch, clients: &Clients, config: &Config) -> BatchReport {
    process(batch, clients, config, None).await.unwrap()
}

/// The sequence numbers in every object under `prefix` (gunzipped when `.gz`), sorted,
/// duplicates kept: the end state a reader of the bucket sees.
async fn sequence_numbers(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let mut seqs = Vec::new();
    for key in list_keys(s3, bucket, prefix).await {
        let mut body = get_bytes(s3, bucket, &key).await;
        if key.ends_with(".gz") {
            body = gunzip(&body);
        }
        for line in ndjson(&body) {
            seqs.push(line["sequence_number"].as_str().unwrap().to_string());
        }
    }
    seqs.sort();
    seqs
}

fn seqs(indexes: impl IntoIterator<Item = usize>) -> Vec<String> {
    let mut v: Vec<String> = indexes.into_iter().map(seq).collect();
    v.sort();
    v
}

async fn failed_orders(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<FailedOrder> {
    let mut orders = Vec::new();
    for key in list_keys(s3, bucket, "failed-orders/").await {
        for line in ndjson(&get_bytes(s3, bucket, &key).await) {
            orders.push(serde_json::from_value(line).unwrap());
        }
    }
    orders
}

#[tokio::test]
async fn batch_is_archived_aggregated_quarantined_and_orders_start_once() {
    let Setup {
        clients,
        config,
        machine,
    } = setup().await;
    let s3 = &clients.s3;
    let bucket = config.bucket.as_str();
    let batch = mixed_batch();

    // Through the handler, as Lambda calls it: no failures at all.
    let response = handler(
        LambdaEvent::new(batch.clone(), Context::default()),
        &clients,
        &config,
    )
    .await
    .unwrap();
    assert!(
        matches!(&response, Response::Batch(r) if r.batch_item_failures.is_empty()),
        "{response:?}"
    );
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"batchItemFailures": []})
    );

    // One archive object for the whole batch, every record in it.
    let archive = list_keys(s3, bucket, "archive/").await;
    let want_key = format!(
        "archive/year=2024/month=05/day=01/hour=12/{SHARD}-{}.ndjson.gz",
        seq(0)
    );
    assert_eq!(archive, std::slice::from_ref(&want_key));
    let lines = ndjson(&gunzip(&get_bytes(s3, bucket, &want_key).await));
    assert_eq!(lines.len(), 7);
    assert_eq!(lines[0]["sequence_number"], seq(0).as_str());
    assert_eq!(lines[0]["partition_key"], "pk-0");
    assert_eq!(lines[0]["shard_id"], SHARD);
    assert_eq!(
        lines[0]["approximate_arrival_timestamp"],
        "2024-05-01T12:00:00.500Z"
    );
    assert_eq!(lines[0]["data"]["event_type"], "page_view");
    assert_eq!(lines[2]["data"]["amount"], 999.99);
    assert_eq!(
        lines[3]["data_base64"],
        base64::engine::general_purpose::STANDARD.encode("Hello World")
    );
    assert_eq!(lines[6]["data_base64"], "%%% not base64 %%%");

    // Session aggregates: (c1,s1) in the 12:00 window, (c2,s9) and (c2,null) in 12:05.
    let sessions_key = format!(
        "sessions/year=2024/month=05/day=01/hour=12/{SHARD}-{}.ndjson",
        seq(0)
    );
    assert_eq!(
        list_keys(s3, bucket, "sessions/").await,
        std::slice::from_ref(&sessions_key)
    );
    let sessions = ndjson(&get_bytes(s3, bucket, &sessions_key).await);
    assert_eq!(
        sessions,
        [
            json!({"customer_id": "c1", "session_id": "s1",
                   "window_start": "2024-05-01T12:00:00Z", "window_end": "2024-05-01T12:05:00Z",
                   "page_views": 2, "purchases": 1, "events": 3, "total_amount": 999.99,
                   "last_event_timestamp": "2024-05-01T12:02:30Z"}),
            json!({"customer_id": "c2", "session_id": null,
                   "window_start": "2024-05-01T12:05:00Z", "window_end": "2024-05-01T12:10:00Z",
                   "page_views": 0, "purchases": 1, "events": 1, "total_amount": 10.5,
                   "last_event_timestamp": "2024-05-01T12:06:00.123Z"}),
            json!({"customer_id": "c2", "session_id": "s9",
                   "window_start": "2024-05-01T12:05:00Z", "window_end": "2024-05-01T12:10:00Z",
                   "page_views": 1, "purchases": 0, "events": 1, "total_amount": 0.0,
                   "last_event_timestamp": "2024-05-01T12:06:40Z"}),
        ]
    );

    // The two malformed records, with their reasons, in one quarantine object.
    let quarantine = list_keys(s3, bucket, "quarantine/kinesis/").await;
    assert_eq!(quarantine.len(), 1, "{quarantine:?}");
    let q = ndjson(&get_bytes(s3, bucket, &quarantine[0]).await);
    let reasons: Vec<(&str, &str)> = q
        .iter()
        .map(|l| {
            (
                l["sequence_number"].as_str().unwrap(),
                l["reason"].as_str().unwrap(),
            )
        })
        .collect();
    let (s3_, s6) = (seq(3), seq(6));
    assert_eq!(
        reasons,
        [(s3_.as_str(), "not_json"), (s6.as_str(), "invalid_base64")]
    );
    assert_eq!(q[1]["data_base64"], "%%% not base64 %%%");

    // One order workflow per purchase, with the purchase as input.
    assert_eq!(
        execution_names(&clients.sfn, &machine).await,
        order_names(&[2, 5])
    );
    let exec_arn = etl_aws::sfn::execution_arn(&machine, &order_names(&[2])[0]);
    let input: Value = serde_json::from_str(
        clients
            .sfn
            .describe_execution()
            .execution_arn(&exec_arn)
            .send()
            .await
            .unwrap()
            .input()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(input["order"]["amount"], 999.99);
    assert_eq!(input["source"]["sequenceNumber"], seq(2).as_str());

    // Redelivery of the same batch: same keys (overwritten), no new executions.
    let again = run(&batch, &clients, &config).await;
    assert!(again.failed_sequence_numbers().is_empty(), "{again:?}");
    assert_eq!(again.summary.orders_started, 0);
    assert_eq!(again.summary.orders_already_started, 2);
    assert_eq!(again.summary.quarantined, 2);
    assert_eq!(
        again.summary.archive_key.as_deref(),
        Some(want_key.as_str())
    );
    assert_eq!(list_keys(s3, bucket, "archive/").await, [want_key]);
    assert_eq!(list_keys(s3, bucket, "sessions/").await, [sessions_key]);
    assert_eq!(list_keys(s3, bucket, "quarantine/").await, quarantine);
    assert!(list_keys(s3, bucket, "failed-orders/").await.is_empty());
    assert_eq!(
        execution_names(&clients.sfn, &machine).await,
        order_names(&[2, 5])
    );
}

#[tokio::test]
async fn s3_failure_reports_every_record_and_a_retry_recovers() {
    let Setup {
        clients,
        config,
        machine,
    } = setup().await;
    let batch = mixed_batch();
    let missing = Config {
        bucket: unique_name("kc-no-such-bucket"),
        ..config.clone()
    };
    let report = run(&batch, &clients, &missing).await;
    let all: Vec<String> = (0..7).map(seq).collect();
    assert_eq!(report.failed_sequence_numbers(), all);
    assert_eq!(report.summary.written, 0);
    assert_eq!(report.summary.archive_key, None);

    // Lambda retries the batch; now S3 is there. Orders started on the failed attempt are
    // not started again.
    let retry = run(&batch, &clients, &config).await;
    assert!(retry.failed_sequence_numbers().is_empty(), "{retry:?}");
    assert_eq!(retry.summary.written, 7);
    assert_eq!(
        retry.summary.orders_started + retry.summary.orders_already_started,
        2
    );
    assert_eq!(
        list_keys(&clients.s3, &config.bucket, "archive/")
            .await
            .len(),
        1
    );
    assert_eq!(
        execution_names(&clients.sfn, &machine).await,
        order_names(&[2, 5])
    );
}

#[tokio::test]
async fn unreachable_step_functions_archives_everything_and_records_the_purchases() {
    let Setup {
        clients,
        config,
        machine,
    } = setup().await;
    let conf = sdk_config().await;
    // Nothing listens on port 9 (discard): every StartExecution fails to connect.
    let broken = Clients {
        s3: clients.s3.clone(),
        sfn: aws_sdk_sfn::Client::from_conf(
            aws_sdk_sfn::config::Builder::from(&conf)
                .endpoint_url("http://127.0.0.1:9")
                .build(),
        ),
    };
    let config = Config {
        start_attempts: 2,
        ..config
    };
    let batch = mixed_batch();
    let report = run(&batch, &broken, &config).await;
    assert!(
        report.failed_sequence_numbers().is_empty(),
        "a failed start does not hold back the shard: {report:?}"
    );
    assert_eq!(report.summary.orders_recorded, 2);
    assert_eq!(report.summary.written, 7);
    let bucket = config.bucket.as_str();
    assert_eq!(
        sequence_numbers(&clients.s3, bucket, "archive/").await,
        seqs(0..7),
        "every record archived, once"
    );
    let recorded = failed_orders(&clients.s3, bucket).await;
    let recorded_seqs: Vec<&str> = recorded
        .iter()
        .map(|o| o.sequence_number.as_str())
        .collect();
    assert_eq!(recorded_seqs, [seq(2), seq(5)]);
    for (order, i) in recorded.iter().zip([2, 5]) {
        assert_eq!(order.execution_name, order_names(&[i])[0]);
        assert_eq!(order.error_type, "TransientError", "{order:?}");
        assert_eq!(order.attempts, 2, "retried START_ATTEMPTS times");
        assert_eq!(order.input["source"]["sequenceNumber"], seq(i).as_str());
        assert_eq!(order.state_machine_arn, machine);
    }
    assert!(execution_names(&clients.sfn, &machine).await.is_empty());

    // The operator's replay, through the handler, once Step Functions answers again.
    let replay = KinesisBatch {
        replay_failed_orders: Some(ReplayRequest::default()),
        ..Default::default()
    };
    let response = handler(
        LambdaEvent::new(replay, Context::default()),
        &clients,
        &config,
    )
    .await
    .unwrap();
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"objects": 1, "started": 2, "alreadyStarted": 0, "rejected": 0,
               "stillFailing": 0, "objectsDeleted": 1})
    );
    assert!(failed_orders(&clients.s3, bucket).await.is_empty());
    assert_eq!(
        execution_names(&clients.sfn, &machine).await,
        order_names(&[2, 5])
    );
}

/// Twelve records: purchases at 1, 4, 7 and 10, malformed records at 3 and 8.
fn twelve() -> (KinesisBatch, Vec<usize>, Vec<usize>) {
    let payloads: Vec<Result<String, &str>> = (0..12)
        .map(|i| match i {
            1 | 4 | 7 | 10 => purchase(
                &format!("c{i}"),
                Some("s"),
                i as f64 + 0.25,
                "2024-05-01T12:01:00Z",
            ),
            3 => Ok("not json".into()),
            8 => Err("@@ not base64 @@"),
            _ => page_view(&format!("c{}", i % 3), "s", i as i64 * 20),
        })
        .collect();
    (batch(&payloads), vec![1, 4, 7, 10], vec![3, 8])
}

/// Events counted over every sessions object: a record aggregated twice counts twice.
async fn aggregated_events(s3: &aws_sdk_s3::Client, bucket: &str) -> u64 {
    let mut events = 0;
    for key in list_keys(s3, bucket, "sessions/").await {
        for line in ndjson(&get_bytes(s3, bucket, &key).await) {
            events += line["events"].as_u64().unwrap();
        }
    }
    events
}

#[tokio::test]
async fn missing_state_machine_then_bisection_ends_with_every_record_once() {
    let Setup {
        clients, config, ..
    } = setup().await;
    // The state machine named here does not exist yet (created part-way, as after a fix).
    let name = unique_name("kc-late-orders");
    let machine = format!("arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:{name}");
    let config = Config {
        order_state_machine_arn: machine.clone(),
        ..config
    };
    let s3 = &clients.s3;
    let bucket = config.bucket.as_str();
    let (whole, purchases, malformed) = twelve();
    let valid = 12 - malformed.len() as u64;

    // 1. The whole batch: no purchase can start; everything is archived and the four
    //    purchases are recorded (StateMachineDoesNotExist is not retried: it will not pass).
    let first = run(&whole, &clients, &config).await;
    assert!(first.failed_sequence_numbers().is_empty(), "{first:?}");
    assert_eq!(first.summary.orders_recorded, 4);
    let recorded = failed_orders(s3, bucket).await;
    assert_eq!(
        recorded
            .iter()
            .map(|o| o.sequence_number.clone())
            .collect::<Vec<_>>(),
        seqs(purchases.iter().copied())
    );
    assert!(
        recorded
            .iter()
            .all(|o| o.error_type == "NotFound" && o.attempts == 1),
        "{recorded:?}"
    );
    assert_eq!(sequence_numbers(s3, bucket, "archive/").await, seqs(0..12));

    // 2. Say that invocation then timed out: Lambda bisects the batch and retries the
    //    halves. The state machine is created between the two.
    let first_half = run(&slice(&whole, 0..6), &clients, &config).await;
    assert!(first_half.failed_sequence_numbers().is_empty());
    assert_eq!(first_half.summary.orders_recorded, 2);
    clients
        .sfn
        .create_state_machine()
        .name(&name)
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/x"))
        .definition(r#"{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#)
        .send()
        .await
        .unwrap();
    let second_half = run(&slice(&whole, 6..12), &clients, &config).await;
    assert!(second_half.failed_sequence_numbers().is_empty());
    assert_eq!(second_half.summary.orders_started, 2);
    assert_eq!(second_half.summary.failed_orders_key, None);

    // Every record once in the archive, once in the quarantine or once in the aggregates.
    assert_eq!(sequence_numbers(s3, bucket, "archive/").await, seqs(0..12));
    assert_eq!(list_keys(s3, bucket, "archive/").await.len(), 2);
    assert_eq!(
        sequence_numbers(s3, bucket, "quarantine/").await,
        seqs(malformed.iter().copied())
    );
    assert_eq!(aggregated_events(s3, bucket).await, valid);
    // The purchases of the first half wait in its failed-orders object; the second
    // half's were started, and the longer first attempt's record of them is gone.
    assert_eq!(
        failed_orders(s3, bucket)
            .await
            .iter()
            .map(|o| o.sequence_number.clone())
            .collect::<Vec<_>>(),
        seqs([1, 4])
    );
    assert_eq!(
        execution_names(&clients.sfn, &machine).await,
        order_names(&[7, 10])
    );

    // 3. The replay starts the rest: every purchase started once, nothing left recorded.
    let replayed = kinesis_consumer::orders::replay_failed_orders(&clients, &config, "")
        .await
        .unwrap();
    assert_eq!((replayed.started, replayed.objects_deleted), (2, 1));
    assert!(failed_orders(s3, bucket).await.is_empty());
    assert_eq!(
        execution_names(&clients.sfn, &machine).await,
        order_names(&purchases)
    );

    // 4. A late redelivery of the second half (a stale checkpoint) changes nothing.
    let again = run(&slice(&whole, 6..12), &clients, &config).await;
    assert_eq!(again.summary.orders_already_started, 2);
    assert_eq!(sequence_numbers(s3, bucket, "archive/").await, seqs(0..12));
    assert_eq!(aggregated_events(s3, bucket).await, valid);
}

#[tokio::test]
async fn a_retry_that_grows_and_a_retry_from_a_reported_record_keep_every_record_once() {
    let Setup {
        clients,
        config,
        machine,
    } = setup().await;
    let s3 = &clients.s3;
    let (whole, purchases, _) = twelve();
    // S3 fails (the bucket is not there yet): the batch of five is reported whole.
    let bucket = unique_name("kc-late-bucket");
    let config = Config {
        bucket: bucket.clone(),
        ..config
    };
    let failed = run(&slice(&whole, 0..5), &clients, &config).await;
    assert_eq!(failed.failed_sequence_numbers(), seqs(0..5));
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    // Lambda retries from the first record, and by now more records have arrived.
    let retry = run(&slice(&whole, 0..9), &clients, &config).await;
    assert!(retry.failed_sequence_numbers().is_empty());
    // Then the next batch, starting after the checkpoint.
    let next = run(&slice(&whole, 9..12), &clients, &config).await;
    assert!(next.failed_sequence_numbers().is_empty());
    assert_eq!(sequence_numbers(s3, &bucket, "archive/").await, seqs(0..12));
    assert_eq!(list_keys(s3, &bucket, "archive/").await.len(), 2);
    assert_eq!(
        execution_names(&clients.sfn, &machine).await,
        order_names(&purchases)
    );
    assert!(failed_orders(s3, &bucket).await.is_empty());
}

#[tokio::test]
async fn near_the_deadline_purchases_are_recorded_not_attempted() {
    let Setup {
        clients,
        config,
        machine,
    } = setup().await;
    let (whole, purchases, _) = twelve();
    // Already inside the write reserve: no start is attempted, the writes still happen.
    let deadline = std::time::Instant::now() + kinesis_consumer::orders::WRITE_RESERVE;
    let report = process(&whole, &clients, &config, Some(deadline))
        .await
        .unwrap();
    assert!(report.failed_sequence_numbers().is_empty());
    assert_eq!(report.summary.orders_recorded, purchases.len());
    assert_eq!(report.summary.orders_started, 0);
    let recorded = failed_orders(&clients.s3, &config.bucket).await;
    assert!(recorded.iter().all(|o| o.attempts == 0), "{recorded:?}");
    assert_eq!(
        sequence_numbers(&clients.s3, &config.bucket, "archive/").await,
        seqs(0..12)
    );
    assert!(execution_names(&clients.sfn, &machine).await.is_empty());
}

#[tokio::test]
async fn empty_batch_is_a_no_op() {
    let Setup {
        clients, config, ..
    } = setup().await;
    let report = run(&KinesisBatch::default(), &clients, &config).await;
    assert!(report.failed_sequence_numbers().is_empty());
    assert!(list_keys(&clients.s3, &config.bucket, "").await.is_empty());
}
