//! Publishing under interruption, against LocalStack: s3-processor stopped part-way through
//! a publish, then run again, leaves the processed bucket exactly as one clean run does.
//!
//! The interruption is real: the function's S3 requests go through a small proxy to
//! LocalStack that lets the first N writes to the processed bucket through and holds the
//! next one; the invocation is then dropped where it waits, as a killed Lambda leaves it (no
//! cleanup code runs), and the writes already in flight are let land. Every kill point of
//! a publish is tried, for the same version retried and for a newer version landing in
//! other partitions. The deadline case releases the held write only once the invocation is
//! inside its margin. The last test does both to the real `s3-processor` binary, run as
//! Lambda runs it (a Runtime API here hands it the event and the deadline): SIGKILL at a
//! held write, and the deadline reached mid-upload.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etl_core::polars::prelude::*;
use integration_tests::{get_bytes, list_keys, localstack_endpoint, new_bucket, sdk_config};
use lambda_runtime::{Context, LambdaEvent};
use s3_processor::{Clients, Config, handler, intent_key, output_id};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const HEADER: &str =
    "customer_id,name,email,country,purchase_amount,amount,description,signup_date";
const KEY: &str = "raw-data/customers/daily.csv";

/// A CSV of one row per (country, purchase amount); the amount picks the segment
/// (over 500 High, over 100 Medium, else Low), so the rows pick the partitions.
fn csv(rows: &[(&str, u32)], bad_email: bool) -> String {
    let mut out = format!("{HEADER}\n");
    for (i, (country, purchase)) in rows.iter().enumerate() {
        out.push_str(&format!(
            "{},Name {i},n{i}@example.com,{country},{purchase},{},row {i},2024-01-{:02}\n",
            1000 + i,
            10 + i,
            1 + i
        ));
    }
    if bad_email {
        out.push_str("1999,Bad,no-at-sign,US,50,5,bad,2024-02-01\n");
    }
    out
}

fn first_version() -> String {
    // Ten good rows in US/High, US/Low, GB/Medium, DE/Low; one rejected row.
    let rows = [
        ("US", 900),
        ("US", 800),
        ("US", 20),
        ("US", 30),
        ("GB", 200),
        ("GB", 300),
        ("DE", 10),
        ("DE", 40),
        ("DE", 60),
        ("US", 700),
    ];
    csv(&rows, true)
}

fn second_version() -> String {
    // Other partitions only (FR/High, NZ/Low), nothing rejected.
    csv(&[("FR", 600), ("FR", 650), ("NZ", 5)], false)
}

fn third_version() -> String {
    csv(&[("JP", 150), ("ES", 900)], false)
}

/// Ten partitions: more files than are uploaded at once.
fn wide_version() -> String {
    let mut rows = Vec::new();
    for country in ["US", "GB", "DE", "FR", "NZ"] {
        rows.push((country, 900));
        rows.push((country, 50));
    }
    csv(&rows, false)
}

// ---------------------------------------------------------------- the proxy

/// A TCP proxy to LocalStack that counts the writes (PUT, POST, DELETE) to one bucket and
/// holds those past a limit.
struct Gate {
    url: String,
    state: Arc<GateState>,
}

#[derive(Default)]
struct GateState {
    armed: Mutex<Option<Arm>>,
    /// Writes to the armed bucket seen since it was armed (held ones included).
    writes: AtomicUsize,
    /// Writes held so far.
    held: AtomicUsize,
    /// Writes forwarded whose response has not started.
    in_flight: AtomicUsize,
}

#[derive(Clone)]
struct Arm {
    bucket: String,
    /// Writes let through before holding.
    allowed: usize,
    /// When a held write goes on; `None`: never.
    release_at: Option<Instant>,
}

impl Gate {
    async fn start() -> Self {
        let upstream = localstack_endpoint()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let state = Arc::new(GateState::default());
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let (client, _) = listener.accept().await.unwrap();
                let (state, upstream) = (shared.clone(), upstream.clone());
                tokio::spawn(async move {
                    // A dropped client ends its connection; nothing to report.
                    let _ = relay(client, &upstream, state).await;
                });
            }
        });
        Self {
            url: format!("http://{addr}"),
            state,
        }
    }

    fn arm(&self, arm: Arm) {
        self.state.writes.store(0, Ordering::SeqCst);
        self.state.held.store(0, Ordering::SeqCst);
        *self.state.armed.lock().unwrap() = Some(arm);
    }

    fn disarm(&self) {
        *self.state.armed.lock().unwrap() = None;
    }

    fn writes(&self) -> usize {
        self.state.writes.load(Ordering::SeqCst)
    }

    async fn until_held(&self) {
        while self.state.held.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until every forwarded write has been answered (or its connection closed),
    /// so the bucket is what a killed function leaves once S3 has finished its requests.
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.state.in_flight.load(Ordering::SeqCst) > 0 {
            assert!(
                Instant::now() < deadline,
                "writes still in flight after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Clients whose requests go through the gate, on a connection pool of their own.
    async fn clients(&self) -> Clients {
        let conf = sdk_config()
            .await
            .into_builder()
            .endpoint_url(&self.url)
            .build();
        Clients::new(&conf)
    }
}

impl GateState {
    /// Lets a request go on, or holds it; says whether it is a counted write.
    async fn admit(&self, request_line: &str) -> bool {
        let mut words = request_line.split(' ');
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let Some(arm) = self.armed.lock().unwrap().clone() else {
            return false;
        };
        let in_bucket = target
            .strip_prefix('/')
            .and_then(|t| t.strip_prefix(arm.bucket.as_str()))
            .is_some_and(|rest| rest.starts_with('/') || rest.starts_with('?'));
        if !(in_bucket && matches!(method, "PUT" | "POST" | "DELETE")) {
            return false;
        }
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if n > arm.allowed {
            self.held.fetch_add(1, Ordering::SeqCst);
            match arm.release_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending::<()>().await,
            }
        }
        true
    }
}

/// Forwards one client connection, request by request (HTTP/1.1 with Content-Length
/// bodies, as the SDK sends them), so each request passes the gate.
async fn relay(client: TcpStream, upstream: &str, state: Arc<GateState>) -> std::io::Result<()> {
    let upstream = TcpStream::connect(upstream).await?;
    let (client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let awaiting = Arc::new(AtomicBool::new(false));
    let back = {
        let (state, awaiting) = (state.clone(), awaiting.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = upstream_read.read(&mut buf).await.unwrap_or(0);
                // The first byte of the answer: S3 has applied the write.
                if awaiting.swap(false, Ordering::SeqCst) {
                    state.in_flight.fetch_sub(1, Ordering::SeqCst);
                }
                if n == 0 || client_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut client_read = BufReader::new(client_read);
    let result = async {
        loop {
            let mut head = String::new();
            if client_read.read_line(&mut head).await? == 0 {
                return Ok(());
            }
            let request_line = head.clone();
            let mut length = 0u64;
            loop {
                let mut line = String::new();
                if client_read.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    let name = name.trim();
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap();
                    }
                    assert!(
                        !name.eq_ignore_ascii_case("transfer-encoding"),
                        "the gate reads Content-Length bodies only: {request_line}"
                    );
                }
            }
            if state.admit(&request_line).await {
                state.in_flight.fetch_add(1, Ordering::SeqCst);
                awaiting.store(true, Ordering::SeqCst);
            }
            upstream_write.write_all(head.as_bytes()).await?;
            let mut body = (&mut client_read).take(length);
            tokio::io::copy(&mut body, &mut upstream_write).await?;
        }
    }
    .await;
    // The client is gone: S3 finishes (or drops) what it was sent, then closes.
    let _ = upstream_write.shutdown().await;
    let _ = back.await;
    result
}

// ---------------------------------------------------------------- the function

struct Env {
    direct: Clients,
    gate: Gate,
    raw: String,
    work: tempfile::TempDir,
}

impl Env {
    async fn new() -> Self {
        let direct = Clients::new(&sdk_config().await);
        let raw = new_bucket(&direct.s3, "raw").await;
        Self {
            gate: Gate::start().await,
            raw,
            direct,
            work: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self, lake: &str, margin_seconds: u64) -> Config {
        let vars: std::collections::HashMap<String, String> = [
            ("PROCESSED_BUCKET", lake.to_string()),
            ("WORK_DIR", self.work.path().display().to_string()),
            ("DEADLINE_MARGIN_SECONDS", margin_seconds.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Config::from_source(&vars).unwrap()
    }

    async fn put(&self, body: &str) {
        self.direct
            .s3
            .put_object()
            .bucket(&self.raw)
            .key(KEY)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }

    fn event(&self) -> Value {
        json!({"bucket": self.raw, "key": KEY})
    }

    /// One uninterrupted run.
    async fn run(&self, lake: &str) {
        handler(
            LambdaEvent::new(self.event(), Context::default()),
            &self.direct,
            &self.config(lake, 60),
        )
        .await
        .unwrap();
    }

    /// A run through the gate with `allowed` writes let through: `true` when it was
    /// killed at the next one, `false` when it finished first (it had no more writes).
    async fn killed_after(&self, lake: &str, allowed: usize) -> bool {
        self.gate.arm(Arm {
            bucket: lake.to_string(),
            allowed,
            release_at: None,
        });
        let (clients, config, event) = (
            self.gate.clients().await,
            self.config(lake, 60),
            self.event(),
        );
        let mut run = tokio::spawn(async move {
            handler(
                LambdaEvent::new(event, Context::default()),
                &clients,
                &config,
            )
            .await
        });
        let killed = tokio::select! {
            () = self.gate.until_held() => {
                run.abort();
                assert!(run.await.unwrap_err().is_cancelled());
                true
            }
            done = &mut run => {
                done.unwrap().unwrap();
                false
            }
        };
        self.gate.settle().await;
        self.gate.disarm();
        killed
    }

    /// Writes one clean run makes (counted at the gate).
    async fn writes_of_a_run(&self, lake: &str) -> usize {
        assert!(!self.killed_after(lake, usize::MAX).await);
        self.gate.writes()
    }

    fn id(&self) -> String {
        output_id(&self.raw, KEY)
    }

    fn manifest_key(&self) -> String {
        format!("manifests/customers/{}.json", self.id())
    }

    fn intent_key(&self) -> String {
        intent_key("manifests/", "customers", &self.id())
    }

    /// Every object in `lake`, comparable across buckets and runs: Parquet as its rows
    /// (without `processed_at`, the run's clock), JSON without run times and file sizes
    /// (Parquet encodes the clock), the bucket's name replaced.
    async fn snapshot(&self, lake: &str) -> BTreeMap<String, Content> {
        let mut out = BTreeMap::new();
        for key in list_keys(&self.direct.s3, lake, "").await {
            let bytes = get_bytes(&self.direct.s3, lake, &key).await;
            let content = if key.ends_with(".parquet") {
                let mut df = ParquetReader::new(std::io::Cursor::new(bytes))
                    .finish()
                    .unwrap();
                if df.column("processed_at").is_ok() {
                    df = df.drop("processed_at").unwrap();
                }
                Content::Rows(df)
            } else {
                let text = String::from_utf8(bytes).unwrap().replace(lake, "<lake>");
                let mut json: Value = serde_json::from_str(&text).unwrap();
                scrub(&mut json);
                Content::Json(json)
            };
            out.insert(key, content);
        }
        out
    }

    async fn new_lake(&self) -> String {
        new_bucket(&self.direct.s3, "lake").await
    }
}

fn scrub(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for field in [
                "started_at",
                "finished_at",
                "duration_ms",
                "bytes",
                "output_bytes",
                // The source's upload time: the tests upload the same bytes again.
                "last_modified",
            ] {
                if map.contains_key(field) {
                    map.insert(field.into(), Value::Null);
                }
            }
            map.values_mut().for_each(scrub);
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

#[derive(Debug)]
enum Content {
    Rows(DataFrame),
    Json(Value),
}

impl PartialEq for Content {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Rows(a), Self::Rows(b)) => a.equals_missing(b),
            (Self::Json(a), Self::Json(b)) => a == b,
            _ => false,
        }
    }
}

fn assert_same(got: &BTreeMap<String, Content>, want: &BTreeMap<String, Content>, what: &str) {
    let (got_keys, want_keys): (Vec<_>, Vec<_>) = (got.keys().collect(), want.keys().collect());
    assert_eq!(
        got_keys, want_keys,
        "{what}: the keys differ from a clean run's"
    );
    for (key, content) in want {
        assert_eq!(
            &got[key], content,
            "{what}: {key} differs from a clean run's"
        );
    }
}

// ---------------------------------------------------------------- the tests

#[tokio::test]
async fn a_run_killed_at_any_write_is_finished_by_its_retry() {
    let e = Env::new().await;
    e.put(&first_version()).await;
    let clean = e.new_lake().await;
    e.run(&clean).await;
    let want = e.snapshot(&clean).await;
    assert!(
        want.len() >= 6,
        "data files, quarantine, manifest: {want:?}"
    );
    assert!(
        !want.contains_key(&e.intent_key()),
        "a finished run leaves no intent record"
    );

    let writes = e.writes_of_a_run(&e.new_lake().await).await;
    // Intent, four data files, quarantine, manifest, intent removed.
    assert_eq!(writes, 8);
    for allowed in 0..writes {
        let lake = e.new_lake().await;
        assert!(
            e.killed_after(&lake, allowed).await,
            "killed after {allowed} writes"
        );
        let left = e.snapshot(&lake).await;
        if allowed == 0 {
            assert!(left.is_empty(), "nothing written before the intent record");
        } else {
            assert!(
                left.contains_key(&e.intent_key()),
                "killed after {allowed}: {left:?}"
            );
        }
        assert_eq!(
            left.contains_key(&e.manifest_key()),
            allowed >= writes - 1,
            "the manifest is written last (killed after {allowed})"
        );
        e.run(&lake).await;
        assert_same(
            &e.snapshot(&lake).await,
            &want,
            &format!("killed after {allowed} writes, rerun"),
        );
    }
}

#[tokio::test]
async fn a_new_version_in_other_partitions_leaves_nothing_of_an_interrupted_one() {
    let e = Env::new().await;
    e.put(&second_version()).await;
    let clean = e.new_lake().await;
    e.run(&clean).await;
    let want = e.snapshot(&clean).await;
    assert!(
        want.keys()
            .all(|k| !k.contains("country=US") && !k.starts_with("quarantine/")),
        "{want:?}"
    );

    e.put(&first_version()).await;
    let writes = e.writes_of_a_run(&e.new_lake().await).await;
    for allowed in 1..writes {
        let lake = e.new_lake().await;
        e.put(&first_version()).await;
        assert!(e.killed_after(&lake, allowed).await);
        e.put(&second_version()).await;
        e.run(&lake).await;
        assert_same(
            &e.snapshot(&lake).await,
            &want,
            &format!("first version killed after {allowed} writes, second version run"),
        );
    }
}

#[tokio::test]
async fn an_interrupted_replacement_is_finished_by_the_next_version() {
    // A published first version, the second killed part-way (its record carries the first
    // version's files to retire), then a third in yet other partitions.
    let e = Env::new().await;
    e.put(&third_version()).await;
    let clean = e.new_lake().await;
    e.run(&clean).await;
    let want = e.snapshot(&clean).await;

    let counted = e.new_lake().await;
    e.put(&first_version()).await;
    e.run(&counted).await;
    e.put(&second_version()).await;
    let writes = e.writes_of_a_run(&counted).await;
    // Intent, two data files, one DeleteObjects of the first version's files, manifest,
    // intent removed.
    assert_eq!(writes, 6);
    for allowed in 1..writes {
        let lake = e.new_lake().await;
        e.put(&first_version()).await;
        e.run(&lake).await;
        e.put(&second_version()).await;
        assert!(e.killed_after(&lake, allowed).await);
        e.put(&third_version()).await;
        e.run(&lake).await;
        assert_same(
            &e.snapshot(&lake).await,
            &want,
            &format!("second version killed after {allowed} writes, third version run"),
        );
    }
}

#[tokio::test]
async fn a_run_near_its_deadline_stops_as_transient_and_the_retry_finishes() {
    let e = Env::new().await;
    e.put(&wide_version()).await;
    let clean = e.new_lake().await;
    e.run(&clean).await;
    let want = e.snapshot(&clean).await;

    let epoch_ms = |at: std::time::SystemTime| {
        at.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let margin = 10;

    // Already inside the margin: nothing is read or written.
    let lake = e.new_lake().await;
    let mut context = Context::default();
    context.deadline = epoch_ms(std::time::SystemTime::now() + Duration::from_secs(margin - 1));
    let err = handler(
        LambdaEvent::new(e.event(), context),
        &e.direct,
        &e.config(&lake, margin),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type(), "TransientError", "{err}");
    assert!(err.message().contains("DEADLINE_MARGIN_SECONDS"), "{err}");
    assert!(e.snapshot(&lake).await.is_empty());

    // The intent record and one data file go through; the uploads started with it are held
    // until the margin is reached, so the rest find no time left and never start.
    let lake = e.new_lake().await;
    let started = std::time::SystemTime::now();
    let deadline = started + Duration::from_secs(2 * margin);
    let mut context = Context::default();
    context.deadline = epoch_ms(deadline);
    e.gate.arm(Arm {
        bucket: lake.clone(),
        allowed: 2,
        release_at: Some(Instant::now() + Duration::from_secs(margin) + Duration::from_millis(500)),
    });
    let err = handler(
        LambdaEvent::new(e.event(), context),
        &e.gate.clients().await,
        &e.config(&lake, margin),
    )
    .await
    .unwrap_err();
    e.gate.settle().await;
    e.gate.disarm();
    assert_eq!(err.error_type(), "TransientError", "{err}");
    assert!(err.message().contains("Lambda deadline"), "{err}");
    let left = e.snapshot(&lake).await;
    assert!(
        left.contains_key(&e.intent_key()),
        "the intent record stays for the retry"
    );
    assert!(
        !left.contains_key(&e.manifest_key()),
        "no manifest: the run did not commit"
    );
    let data = left.keys().filter(|k| k.starts_with("processed/")).count();
    let want_data = want.keys().filter(|k| k.starts_with("processed/")).count();
    assert!(
        data < want_data,
        "stopped part-way: {data} of {want_data} data files"
    );

    e.run(&lake).await;
    assert_same(&e.snapshot(&lake).await, &want, "timed out, rerun");
}

#[tokio::test]
async fn a_corrupt_manifest_or_intent_record_stops_the_run_and_names_it() {
    let e = Env::new().await;
    e.put(&first_version()).await;
    for (key, body) in [
        (
            e.manifest_key(),
            "{\"outputs\": \"not a list\"}".to_string(),
        ),
        (e.manifest_key(), "not json".to_string()),
        (e.intent_key(), "{\"intent_version\": 1}".to_string()),
        // A record naming a file that is not this source's is never acted on.
        (
            e.manifest_key(),
            json!({"outputs": [{"path": "s3://other-bucket/processed/customers/x.parquet"}]})
                .to_string(),
        ),
    ] {
        let lake = e.new_lake().await;
        e.direct
            .s3
            .put_object()
            .bucket(&lake)
            .key(&key)
            .body(body.into_bytes().into())
            .send()
            .await
            .unwrap();
        let err = handler(
            LambdaEvent::new(e.event(), Context::default()),
            &e.direct,
            &e.config(&lake, 60),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), "InternalError", "{err}");
        assert!(err.message().contains(&key), "{key}: {err}");
        assert_eq!(
            list_keys(&e.direct.s3, &lake, "").await,
            [key.as_str()],
            "nothing published"
        );
    }
}

#[tokio::test]
async fn the_version_the_event_names_is_read_and_recorded() {
    let e = Env::new().await;
    e.direct
        .s3
        .put_bucket_versioning()
        .bucket(&e.raw)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let put = |body: String| {
        let s3 = e.direct.s3.clone();
        let raw = e.raw.clone();
        async move {
            let out = s3
                .put_object()
                .bucket(&raw)
                .key(KEY)
                .body(body.into_bytes().into())
                .send()
                .await
                .unwrap();
            let etag = out.e_tag.unwrap().trim_matches('"').to_string();
            (etag, out.version_id.unwrap())
        }
    };
    let (etag1, version1) = put(first_version()).await;
    // Overwritten after the event was sent, in a later second (S3 times versions to the
    // second).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (etag2, version2) = put(second_version()).await;
    assert_ne!(etag1, etag2);
    assert_ne!(version1, version2);

    // The event as S3 sends it for the first version.
    let notification = |etag: &str, version: Option<&str>| {
        let mut object = json!({"key": KEY, "size": 1, "eTag": etag, "sequencer": "1"});
        if let Some(v) = version {
            object["versionId"] = json!(v);
        }
        json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2025-01-01T00:00:00.000Z", "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "x"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "raw",
                   "bucket": {"name": e.raw, "ownerIdentity": {"principalId": "x"}, "arn": "arn:aws:s3:::raw"},
                   "object": object}
        }]})
    };
    let read = |lake: String, event: Value| {
        let e = &e;
        async move {
            let out = handler(
                LambdaEvent::new(event, Context::default()),
                &e.direct,
                &e.config(&lake, 60),
            )
            .await
            .unwrap();
            let manifest: Value =
                serde_json::from_slice(&get_bytes(&e.direct.s3, &lake, &e.manifest_key()).await)
                    .unwrap();
            let data = list_keys(&e.direct.s3, &lake, "processed/").await;
            (out.objects[0].status.clone(), manifest, data)
        }
    };

    let first = e.new_lake().await;
    let (status, manifest, data) = read(first.clone(), notification(&etag1, Some(&version1))).await;
    assert_eq!(status, "processed");
    assert_eq!(manifest["source"]["etag"], json!(etag1), "{manifest}");
    assert_eq!(manifest["source"]["version_id"], json!(version1));
    assert_eq!(
        manifest["counts"]["rows_in"], 11,
        "the first version's rows"
    );
    assert!(data.iter().any(|k| k.contains("country=US/")), "{data:?}");
    assert!(!data.iter().any(|k| k.contains("country=FR/")), "{data:?}");
    // The second version's own event then replaces it.
    let (status, manifest, data) = read(first, notification(&etag2, Some(&version2))).await;
    assert_eq!(status, "processed");
    assert_eq!(
        manifest["source"]["version_id"],
        json!(version2),
        "{manifest}"
    );
    assert!(data.iter().all(|k| !k.contains("country=US/")), "{data:?}");

    // Without a version id the current version is read, and the manifest names what was
    // read, not the ETag the event carried.
    let current = e.new_lake().await;
    let (_, manifest, data) = read(current.clone(), notification(&etag1, None)).await;
    assert_eq!(manifest["source"]["etag"], json!(etag2), "{manifest}");
    assert_eq!(manifest["source"]["version_id"], json!(version2));
    assert_eq!(manifest["counts"]["rows_in"], 3);
    assert!(data.iter().all(|k| !k.contains("country=US/")), "{data:?}");

    // The first version's event arriving late (or retried) after the second version was
    // published changes nothing: the old rows do not come back.
    let before = e.snapshot(&current).await;
    let (status, _, _) = read(current.clone(), notification(&etag1, Some(&version1))).await;
    assert_eq!(status, "skipped");
    assert_same(
        &e.snapshot(&current).await,
        &before,
        "a late event of an older version",
    );

    // A version that no longer exists is NotFound, not another version.
    e.direct
        .s3
        .delete_object()
        .bucket(&e.raw)
        .key(KEY)
        .version_id(&version1)
        .send()
        .await
        .unwrap();
    let err = handler(
        LambdaEvent::new(notification(&etag1, Some(&version1)), Context::default()),
        &e.direct,
        &e.config(&e.new_lake().await, 60),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type(), "NotFound", "{err}");
    assert!(err.message().contains(&version1), "{err}");
}

// ---------------------------------------------------------------- the real binary

/// Lambda's Runtime API, enough for one invocation: hands out `event` once, with a
/// deadline, and keeps what the function answers.
struct RuntimeApi {
    addr: SocketAddr,
    answer: Arc<Mutex<Option<(String, Value)>>>,
}

impl RuntimeApi {
    async fn start(event: Value, deadline_ms: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(Mutex::new(None));
        let served = Arc::new(AtomicBool::new(false));
        let shared = answer.clone();
        tokio::spawn(async move {
            loop {
                let (conn, _) = listener.accept().await.unwrap();
                let (event, answer, served) = (event.clone(), shared.clone(), served.clone());
                tokio::spawn(async move {
                    let _ = runtime_request(conn, event, deadline_ms, answer, served).await;
                });
            }
        });
        Self { addr, answer }
    }

    /// `("response" | "error", body)` once the function has answered.
    async fn answer(&self, timeout: Duration) -> (String, Value) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(a) = self.answer.lock().unwrap().clone() {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "no answer from the function in {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One request per connection (answered with `Connection: close`).
async fn runtime_request(
    conn: TcpStream,
    event: Value,
    deadline_ms: u64,
    answer: Arc<Mutex<Option<(String, Value)>>>,
    served: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).await?;
    let path = request_line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let (status, headers, reply) = if path.ends_with("/invocation/next") {
        if served.swap(true, Ordering::SeqCst) {
            // One invocation per process: the next poll waits until the process ends.
            std::future::pending::<()>().await;
        }
        (
            "200 OK",
            format!(
                "Lambda-Runtime-Aws-Request-Id: request-1\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline_ms}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:000000000000:function:s3-processor\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\n"
            ),
            event.to_string(),
        )
    } else {
        let kind = if path.ends_with("/response") {
            "response"
        } else {
            "error"
        };
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        *answer.lock().unwrap() = Some((kind.to_string(), body));
        ("202 Accepted", String::new(), "{}".to_string())
    };
    let conn = reader.get_mut();
    conn.write_all(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{reply}",
            reply.len()
        )
        .as_bytes(),
    )
    .await?;
    conn.shutdown().await
}

impl Env {
    /// The s3-processor binary as Lambda runs it: one invocation of `event` from a Runtime
    /// API, its S3 requests through the gate.
    async fn spawn_binary(
        &self,
        lake: &str,
        deadline: std::time::SystemTime,
        margin_seconds: u64,
    ) -> (std::process::Child, RuntimeApi) {
        let deadline_ms = deadline
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let api = RuntimeApi::start(self.event(), deadline_ms).await;
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_s3-processor"))
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "s3-processor")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_ENDPOINT_URL", &self.gate.url)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("PROCESSED_BUCKET", lake)
            .env("WORK_DIR", self.work.path())
            .env("DEADLINE_MARGIN_SECONDS", margin_seconds.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        (child, api)
    }
}

/// Stops a process this test started and reaps it.
fn kill(mut child: std::process::Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn the_binary_killed_mid_publish_or_timed_out_is_finished_by_the_next_run() {
    let e = Env::new().await;
    let far = std::time::SystemTime::now() + Duration::from_secs(600);

    // SIGKILL while the first version's data files go up; the second version, in other
    // partitions, is run by the binary too and leaves exactly what a clean run leaves.
    e.put(&second_version()).await;
    let clean = e.new_lake().await;
    e.run(&clean).await;
    let want = e.snapshot(&clean).await;
    let lake = e.new_lake().await;
    e.put(&first_version()).await;
    e.gate.arm(Arm {
        bucket: lake.clone(),
        allowed: 3,
        release_at: None,
    });
    let (child, _api) = e.spawn_binary(&lake, far, 60).await;
    tokio::time::timeout(Duration::from_secs(60), e.gate.until_held())
        .await
        .expect("the binary reaches its fourth write");
    kill(child);
    e.gate.settle().await;
    e.gate.disarm();
    let left = e.snapshot(&lake).await;
    assert!(left.contains_key(&e.intent_key()), "{left:?}");
    assert!(!left.contains_key(&e.manifest_key()), "{left:?}");
    e.put(&second_version()).await;
    let (child, api) = e.spawn_binary(&lake, far, 60).await;
    let (kind, body) = api.answer(Duration::from_secs(60)).await;
    kill(child);
    assert_eq!(kind, "response", "{body}");
    assert_eq!(body["objects"][0]["status"], "processed", "{body}");
    assert_same(
        &e.snapshot(&lake).await,
        &want,
        "binary killed, next version run",
    );

    // The deadline from the Runtime API: the uploads held past it, the run reports
    // TransientError to Lambda and the next invocation finishes.
    e.put(&wide_version()).await;
    let clean = e.new_lake().await;
    e.run(&clean).await;
    let want = e.snapshot(&clean).await;
    let lake = e.new_lake().await;
    let margin = 10;
    e.gate.arm(Arm {
        bucket: lake.clone(),
        allowed: 2,
        release_at: Some(Instant::now() + Duration::from_millis(margin * 1000 + 500)),
    });
    let deadline = std::time::SystemTime::now() + Duration::from_secs(2 * margin);
    let (child, api) = e.spawn_binary(&lake, deadline, margin).await;
    let (kind, body) = api.answer(Duration::from_secs(60)).await;
    kill(child);
    e.gate.settle().await;
    e.gate.disarm();
    assert_eq!(kind, "error", "{body}");
    assert_eq!(body["errorType"], "TransientError", "{body}");
    let left = e.snapshot(&lake).await;
    assert!(left.contains_key(&e.intent_key()), "{left:?}");
    assert!(!left.contains_key(&e.manifest_key()), "{left:?}");
    let (child, api) = e.spawn_binary(&lake, far, margin).await;
    let (kind, body) = api.answer(Duration::from_secs(60)).await;
    kill(child);
    assert_eq!(kind, "response", "{body}");
    assert_same(&e.snapshot(&lake).await, &want, "binary timed out, rerun");
}
