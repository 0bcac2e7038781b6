//! Helpers for the integration tests: LocalStack up once per test binary, SDK config for
//! it, unique resource names, polling with deadlines.
//!
//! Tests talk to `http://127.0.0.1:4566` (or `ETL_LOCALSTACK_ENDPOINT`, or the port in
//! `ETL_LOCALSTACK_PORT`, as `localstack.sh` reads it) with test credentials in us-east-1.
//! When no endpoint is set, `tests/localstack/localstack.sh up` is run once (a no-op if
//! LocalStack already answers).

use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;

/// `localstack.sh`'s port when `ETL_LOCALSTACK_PORT` is unset.
pub const DEFAULT_PORT: &str = "4566";
pub const REGION: &str = "us-east-1";
/// The account LocalStack uses for test credentials.
pub const ACCOUNT: &str = "000000000000";

static LOCALSTACK: OnceLock<String> = OnceLock::new();

fn repo_root() -> PathBuf {
    // Read at run time, not env!(): binaries are reused across checkouts sharing a target dir.
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// The LocalStack endpoint, starting LocalStack first if needed (once per test binary).
pub fn localstack_endpoint() -> &'static str {
    LOCALSTACK.get_or_init(|| {
        if let Ok(endpoint) = std::env::var("ETL_LOCALSTACK_ENDPOINT")
            && !endpoint.trim().is_empty()
        {
            return endpoint.trim().to_string();
        }
        let script = repo_root().join("tests/localstack/localstack.sh");
        let status = Command::new(&script)
            .arg("up")
            .status()
            .unwrap_or_else(|e| panic!("running {} up: {e}", script.display()));
        assert!(
            status.success(),
            "{} up failed ({status}); see build/localstack/localstack.log",
            script.display()
        );
        // The port localstack.sh just used: a second checkout's instance runs on its own.
        let port = std::env::var("ETL_LOCALSTACK_PORT")
            .ok()
            .filter(|p| !p.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_PORT.to_string());
        format!("http://127.0.0.1:{}", port.trim())
    })
}

/// SDK config for LocalStack: endpoint, static test credentials, us-east-1.
pub async fn sdk_config() -> SdkConfig {
    let endpoint = localstack_endpoint();
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "integration-tests",
        ))
        .load()
        .await
}

/// A name unique to this process and call: `<prefix>-<millis>-<pid>-<n>`, lowercase,
/// valid as an S3 bucket, Glue, SNS, SQS, SSM or Step Functions name.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!(
        "{prefix}-{millis}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a bucket with a unique name and returns the name.
pub async fn new_bucket(s3: &aws_sdk_s3::Client, prefix: &str) -> String {
    let bucket = unique_name(prefix);
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating bucket {bucket}: {e:?}"));
    bucket
}

/// Polls `check` until it yields `Some` or `timeout` passes (then panics with `what`).
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Puts `keys` (small bodies) with at most `concurrency` requests in flight.
pub async fn put_many(s3: &aws_sdk_s3::Client, bucket: &str, keys: &[String], concurrency: usize) {
    use futures::StreamExt;
    futures::stream::iter(keys.iter().map(|key| {
        let s3 = s3.clone();
        let bucket = bucket.to_string();
        let key = key.clone();
        async move {
            s3.put_object()
                .bucket(&bucket)
                .key(&key)
                .body(aws_sdk_s3::primitives::ByteStream::from(
                    format!("id\n{key}\n").into_bytes(),
                ))
                .send()
                .await
                .unwrap_or_else(|e| panic!("putting s3://{bucket}/{key}: {e:?}"));
        }
    }))
    .buffer_unordered(concurrency)
    .collect::<Vec<()>>()
    .await;
}

/// An SNS topic with an SQS queue subscribed, to read published messages back.
pub struct TopicQueue {
    pub topic_arn: String,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
}

impl TopicQueue {
    pub async fn new(conf: &SdkConfig, prefix: &str) -> Self {
        let sns = aws_sdk_sns::Client::new(conf);
        let sqs = aws_sdk_sqs::Client::new(conf);
        let topic_arn = sns
            .create_topic()
            .name(unique_name(prefix))
            .send()
            .await
            .expect("create topic")
            .topic_arn
            .expect("topic arn");
        let queue_url = sqs
            .create_queue()
            .queue_name(unique_name(prefix))
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .expect("queue arn");
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(&queue_arn)
            .send()
            .await
            .expect("subscribe");
        Self {
            topic_arn,
            sqs,
            queue_url,
        }
    }

    /// The next SNS envelope (`Subject`, `Message`, ...) delivered to the queue.
    pub async fn next_message(&self, timeout: Duration) -> serde_json::Value {
        poll_until("an SNS message in SQS", timeout, || async {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive message");
            out.messages
                .unwrap_or_default()
                .first()
                .and_then(|m| m.body.as_deref())
                .map(|b| serde_json::from_str(b).expect("SNS envelope JSON"))
        })
        .await
    }
}

/// Every key under `prefix`, sorted.
pub async fn list_keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = etl_aws::s3::list_objects(s3, bucket, prefix, None, |_| true)
        .await
        .expect("list objects")
        .objects
        .into_iter()
        .map(|o| o.key)
        .collect();
    keys.sort();
    keys
}

/// An object's bytes.
pub async fn get_bytes(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    s3.get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("getting s3://{bucket}/{key}: {e:?}"))
        .body
        .collect()
        .await
        .expect("object body")
        .into_bytes()
        .to_vec()
}

/// A one-state Pass state machine (what order workflows are in these tests).
pub async fn pass_state_machine(sfn: &aws_sdk_sfn::Client, prefix: &str) -> String {
    sfn.create_state_machine()
        .name(unique_name(prefix))
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/x"))
        .definition(r#"{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#)
        .send()
        .await
        .expect("create state machine")
        .state_machine_arn
}

/// The names of a state machine's executions, sorted.
pub async fn execution_names(sfn: &aws_sdk_sfn::Client, machine: &str) -> Vec<String> {
    let mut names: Vec<String> = sfn
        .list_executions()
        .state_machine_arn(machine)
        .send()
        .await
        .expect("list executions")
        .executions()
        .iter()
        .map(|e| e.name().to_string())
        .collect();
    names.sort();
    names
}
