//! api-ingester in-process: SSM parameters in LocalStack, a test API on 127.0.0.1 that
//! checks the bearer token, paginates, answers 429 / 500 and stalls once, and the landed
//! objects read back from LocalStack S3.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api_ingester::{Clients, Config, EndpointOutcome, handler, ingest};
use aws_sdk_ssm::types::ParameterType;
use integration_tests::{get_bytes, new_bucket, sdk_config, unique_name};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The client timeout the tests configure; the server's stall is longer.
const CLIENT_TIMEOUT_SECS: &str = "1";
const STALL: Duration = Duration::from_secs(3);
/// The large endpoints: 6 pages of about 1.1 MB.
const BIG_PAGES: usize = 6;
const PAGE_RECORDS: usize = 2000;

/// A tiny HTTP/1.1 API (hyper's server feature is not compiled in this workspace, and a
/// GET-only responder needs nothing more). Every response closes the connection.
struct TestApi {
    addr: SocketAddr,
    key: String,
    /// Requests per target (path and query), and every request with its arrival time.
    hits: Mutex<HashMap<String, u32>>,
    log: Mutex<Vec<(Instant, String, u16)>>,
}

struct Reply {
    status: u16,
    headers: String,
    body: String,
    stall: bool,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        headers: String::new(),
        body: body.to_string(),
        stall: false,
    }
}

impl TestApi {
    async fn start(key: &str) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = Arc::new(Self {
            addr: listener.local_addr().unwrap(),
            key: key.to_string(),
            hits: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
        });
        let server = api.clone();
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                let server = server.clone();
                tokio::spawn(async move {
                    let _ = server.serve(socket).await;
                });
            }
        });
        api
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn hits(&self, target: &str) -> u32 {
        self.hits.lock().unwrap().get(target).copied().unwrap_or(0)
    }

    async fn serve(&self, mut socket: TcpStream) -> std::io::Result<()> {
        let mut head = Vec::new();
        let mut chunk = [0_u8; 2048];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            head.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let mut lines = head.split("\r\n");
        let target = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or("/")
            .to_string();
        let auth = lines.find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
                .map(|(_, v)| v.trim().to_string())
        });
        let reply = if auth.as_deref() == Some(format!("Bearer {}", self.key).as_str()) {
            let n = {
                let mut hits = self.hits.lock().unwrap();
                let n = hits.entry(target.clone()).or_insert(0);
                *n += 1;
                *n
            };
            self.route(&target, n)
        } else {
            reply(401, json!({"error": "bad or missing bearer token"}))
        };
        self.log
            .lock()
            .unwrap()
            .push((Instant::now(), target, reply.status));
        if reply.stall {
            tokio::time::sleep(STALL).await;
        }
        let reason = match reply.status {
            200 => "OK",
            401 => "Unauthorized",
            404 => "Not Found",
            429 => "Too Many Requests",
            _ => "Internal Server Error",
        };
        let response = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n{}",
            reply.status,
            reply.body.len(),
            reply.headers,
            reply.body
        );
        socket.write_all(response.as_bytes()).await?;
        socket.shutdown().await
    }

    /// `n` is the how-many-th request for `target` this is.
    fn route(&self, target: &str, n: u32) -> Reply {
        let customers = |ids: &[u32]| -> Vec<Value> {
            ids.iter()
                .map(|i| json!({"id": i, "name": format!("customer {i}")}))
                .collect()
        };
        match target {
            // Body pagination under `data`: a relative next, then an absolute one.
            "/v1/customers" if n == 1 => Reply {
                headers: "Retry-After: 1\r\n".into(),
                ..reply(429, json!({"error": "slow down"}))
            },
            "/v1/customers" => reply(
                200,
                json!({"data": customers(&[1, 2]), "next": "/v1/customers?page=2"}),
            ),
            "/v1/customers?page=2" if n == 1 => reply(500, json!({"error": "oops"})),
            "/v1/customers?page=2" => reply(
                200,
                json!({"data": customers(&[3, 4]),
                       "next": format!("http://{}/v1/customers?page=3", self.addr)}),
            ),
            "/v1/customers?page=3" if n == 1 => Reply {
                stall: true,
                ..reply(200, json!({"data": []}))
            },
            "/v1/customers?page=3" => reply(200, json!({"data": customers(&[5]), "next": null})),
            // Link-header pagination over top-level arrays.
            "/v1/orders" => Reply {
                headers: "Link: </v1/orders?page=2>; rel=\"next\"\r\n".into(),
                ..reply(200, json!([{"order": "o1"}, {"order": "o2"}]))
            },
            "/v1/orders?page=2" => reply(200, json!([{"order": "o3"}])),
            "/v1/broken" => reply(500, json!({"error": "always"})),
            // BIG_PAGES pages of PAGE_RECORDS padded records, more than one 5 MB part in all;
            // `flaky` links one more page, which answers 404.
            t if t.starts_with("/v1/big") || t.starts_with("/v1/flaky") => {
                let (path, page) = t.split_once("?page=").unwrap_or((t, "1"));
                let page: usize = page.parse().unwrap();
                let flaky = path == "/v1/flaky";
                if flaky && page > BIG_PAGES {
                    return reply(404, json!({"error": "gone mid-way"}));
                }
                let first = (page - 1) * PAGE_RECORDS;
                let records: Vec<Value> = (first..first + PAGE_RECORDS)
                    .map(|id| json!({"id": id, "pad": "x".repeat(500)}))
                    .collect();
                let next = (page < BIG_PAGES || flaky).then(|| format!("{path}?page={}", page + 1));
                reply(200, json!({"data": records, "next": next}))
            }
            _ => reply(404, json!({"error": "no such endpoint"})),
        }
    }
}

/// Log lines written while a test runs (current-thread runtime: every task logs here).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct Setup {
    api: Arc<TestApi>,
    clients: Clients,
    config: Config,
    key: String,
}

async fn setup(endpoints: &str, extra_env: &[(&str, &str)]) -> Setup {
    let key = format!("sk-test-{}", unique_name("key"));
    let api = TestApi::start(&key).await;
    let conf = sdk_config().await;
    let ssm = aws_sdk_ssm::Client::new(&conf);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    let bucket = new_bucket(&s3, "api").await;
    let prefix = format!("/{}", unique_name("etl-api"));
    for (name, value, kind) in [
        ("base_url", api.base_url(), ParameterType::String),
        ("api_key", key.clone(), ParameterType::SecureString),
        ("endpoints", endpoints.to_string(), ParameterType::String),
    ] {
        ssm.put_parameter()
            .name(format!("{prefix}/{name}"))
            .value(value)
            .r#type(kind)
            .overwrite(true)
            .send()
            .await
            .unwrap();
    }
    let mut env: HashMap<String, String> = [
        ("RAW_BUCKET", bucket.as_str()),
        ("API_PARAM_PREFIX", prefix.as_str()),
        ("HTTP_TIMEOUT_SECONDS", CLIENT_TIMEOUT_SECS),
        ("BACKOFF_BASE_MS", "50"),
        ("BACKOFF_MAX_MS", "200"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra_env {
        env.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_source(&env).unwrap();
    let clients = Clients::new(&conf, &config).unwrap();
    Setup {
        api,
        clients,
        config,
        key,
    }
}

fn scheduled_event() -> LambdaEvent<Value> {
    LambdaEvent::new(
        json!({
            "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "000000000000", "time": "2024-05-01T12:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:000000000000:rule/api-ingest"], "detail": {}
        }),
        Context::default(),
    )
}

async fn lines(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<Value> {
    let bytes = get_bytes(s3, bucket, key).await;
    std::str::from_utf8(&bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn landed(outcome: &EndpointOutcome) -> (&str, usize, usize, u32, &str) {
    match outcome {
        EndpointOutcome::Landed {
            endpoint,
            records,
            pages,
            requests,
            key,
        } => (
            endpoint.as_str(),
            *records,
            *pages,
            *requests,
            key.as_deref().unwrap(),
        ),
        other => panic!("expected a landed endpoint, got {other:?}"),
    }
}

#[tokio::test]
async fn pages_retries_and_lands_every_endpoint_without_logging_the_key() {
    let Setup {
        api,
        clients,
        config,
        key,
    } = setup("customers, orders", &[]).await;
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let started = Instant::now();
    let report = handler(scheduled_event(), &clients, &config).await.unwrap();
    assert_eq!((report.succeeded, report.failed), (2, 0), "{report:?}");
    assert_eq!(report.run_timestamp, "2024-05-01T12:00:00Z");

    // customers: 3 pages, each answered once badly first (429, 500, a stall).
    let (name, records, pages, requests, customers_key) = landed(&report.endpoints[0]);
    assert_eq!((name, records, pages, requests), ("customers", 5, 3, 6));
    assert_eq!(
        customers_key,
        "raw-api-data/customers/year=2024/month=05/day=01/20240501T120000Z.ndjson"
    );
    let (name, records, pages, requests, orders_key) = landed(&report.endpoints[1]);
    assert_eq!((name, records, pages, requests), ("orders", 3, 2, 2));
    for target in [
        "/v1/customers",
        "/v1/customers?page=2",
        "/v1/customers?page=3",
    ] {
        assert_eq!(api.hits(target), 2, "{target}");
    }

    // The 429's Retry-After: 1 was honoured before retrying page 1.
    let log = api.log.lock().unwrap().clone();
    let first_page: Vec<&(Instant, String, u16)> = log
        .iter()
        .filter(|(_, t, _)| t == "/v1/customers")
        .collect();
    assert_eq!(first_page[0].2, 429);
    let waited = first_page[1].0 - first_page[0].0;
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the stall was cut by the client timeout"
    );

    // What landed: every page, one _ingested_at for the whole run.
    let customers = lines(&clients.s3, &config.bucket, customers_key).await;
    let ids: Vec<i64> = customers
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    for record in &customers {
        assert_eq!(record["_ingested_at"], report.ingested_at.as_str());
    }
    let orders = lines(&clients.s3, &config.bucket, orders_key).await;
    assert_eq!(orders.len(), 3);
    assert_eq!(orders[2]["order"], "o3");
    assert_eq!(orders[2]["_ingested_at"], report.ingested_at.as_str());

    // The key reached the API (the server checked it) but no log line and no Debug output.
    let logs = capture.text();
    assert!(logs.contains("endpoint ingested"), "capture works: {logs}");
    assert!(!logs.contains(&key), "the API key was logged:\n{logs}");
    assert!(!format!("{clients:?} {config:?} {report:?}").contains(&key));
    let settings = api_ingester::load_settings(&clients.params, &config)
        .await
        .unwrap();
    assert_eq!(settings.api_key.expose(), key);
    assert!(!format!("{settings:?}").contains(&key));
}

#[tokio::test]
async fn a_failing_endpoint_fails_the_run_after_the_others_landed() {
    let Setup {
        api,
        clients,
        config,
        ..
    } = setup(
        r#"["orders", "missing", "broken"]"#,
        &[("MAX_ATTEMPTS", "3")],
    )
    .await;
    let err = handler(scheduled_event(), &clients, &config)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "NotFound", "{err}");
    let message = err.to_string();
    assert!(message.contains("2 of 3 endpoints failed"), "{message}");
    assert!(message.contains("missing: NotFound"), "{message}");
    assert!(message.contains("broken: TransientError"), "{message}");
    assert_eq!(api.hits("/v1/missing"), 1, "a 404 is not retried");
    assert_eq!(
        api.hits("/v1/broken"),
        3,
        "a 500 is retried MAX_ATTEMPTS times"
    );

    // The good endpoint landed anyway.
    let orders_key = "raw-api-data/orders/year=2024/month=05/day=01/20240501T120000Z.ndjson";
    assert_eq!(
        lines(&clients.s3, &config.bucket, orders_key).await.len(),
        3
    );

    // The per-endpoint outcomes, as the report names them.
    let report = ingest(&scheduled_event().payload, &clients, &config)
        .await
        .unwrap();
    assert_eq!((report.succeeded, report.failed), (1, 2));
    let summary: Vec<(String, String)> = report
        .endpoints
        .iter()
        .map(|o| match o {
            EndpointOutcome::Landed { endpoint, key, .. } => {
                (endpoint.clone(), key.clone().unwrap())
            }
            EndpointOutcome::Failed {
                endpoint,
                error_type,
                ..
            } => (endpoint.clone(), error_type.clone()),
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("orders".to_string(), orders_key.to_string()),
            ("missing".to_string(), "NotFound".to_string()),
            ("broken".to_string(), "TransientError".to_string()),
        ]
    );
}

#[tokio::test]
async fn a_wrong_key_is_access_denied() {
    let Setup {
        clients,
        config,
        key,
        ..
    } = setup("orders", &[]).await;
    let ssm = aws_sdk_ssm::Client::new(&sdk_config().await);
    let (_, key_name, _) = config.parameter_names();
    ssm.put_parameter()
        .name(&key_name)
        .value("sk-wrong")
        .r#type(ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    // A fresh cache, as after the TTL: the rotated (wrong) key is read.
    let clients = Clients {
        params: Arc::new(etl_aws::ssm::ParameterCache::new(
            aws_sdk_ssm::Client::new(&sdk_config().await),
            Duration::from_secs(600),
        )),
        ..clients
    };
    let err = handler(scheduled_event(), &clients, &config)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "AccessDenied", "{err}");
    assert!(!err.to_string().contains("sk-wrong"), "{err}");

    // The refusal dropped the cached key, so fixing it in SSM fixes the next run at once,
    // long before the 600 s TTL.
    ssm.put_parameter()
        .name(&key_name)
        .value(&key)
        .r#type(ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let report = handler(scheduled_event(), &clients, &config).await.unwrap();
    assert_eq!((report.succeeded, report.failed), (1, 0), "{report:?}");
}

#[tokio::test]
async fn a_large_endpoint_is_streamed_as_a_multipart_upload() {
    let Setup {
        api,
        clients,
        config,
        ..
    } = setup("big", &[]).await;
    let report = handler(scheduled_event(), &clients, &config).await.unwrap();
    let (_, records, pages, _, key) = landed(&report.endpoints[0]);
    assert_eq!((records, pages), (BIG_PAGES * PAGE_RECORDS, BIG_PAGES));
    assert_eq!(api.hits("/v1/big?page=6"), 1);
    // More than one 5 MB part: the pages went up as they came, not as one buffered body.
    let head = clients
        .s3
        .head_object()
        .bucket(&config.bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let size = head.content_length.unwrap() as usize;
    assert!(size > etl_aws::s3::MIN_PART_SIZE, "{size}");
    assert!(
        head.e_tag.as_deref().unwrap_or("").ends_with("-2\""),
        "a two-part upload's ETag: {:?}",
        head.e_tag
    );
    // Every record once, in the API's order, with the run's `_ingested_at`.
    let lines = lines(&clients.s3, &config.bucket, key).await;
    let ids: Vec<u64> = lines.iter().map(|l| l["id"].as_u64().unwrap()).collect();
    assert_eq!(
        ids,
        (0..(BIG_PAGES * PAGE_RECORDS) as u64).collect::<Vec<_>>()
    );
    assert!(
        lines
            .iter()
            .all(|l| l["_ingested_at"] == report.ingested_at.as_str())
    );
}

#[tokio::test]
async fn an_endpoint_failing_mid_way_publishes_nothing() {
    let Setup {
        clients, config, ..
    } = setup("flaky", &[("MAX_ATTEMPTS", "2")]).await;
    let s3 = &clients.s3;
    // What an earlier attempt of this scheduled run left at the key stays as it was.
    let key = "raw-api-data/flaky/year=2024/month=05/day=01/20240501T120000Z.ndjson";
    let before = b"{\"id\":\"earlier\"}\n".to_vec();
    s3.put_object()
        .bucket(&config.bucket)
        .key(key)
        .body(before.clone().into())
        .send()
        .await
        .unwrap();
    let err = handler(scheduled_event(), &clients, &config)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "NotFound", "{err}");
    assert!(err.to_string().contains("/v1/flaky"), "{err}");
    assert_eq!(get_bytes(s3, &config.bucket, key).await, before);
    // The multipart upload (a 5 MB part had gone up) was aborted, not left behind.
    let uploads = s3
        .list_multipart_uploads()
        .bucket(&config.bucket)
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "{:?}", uploads.uploads());
}

#[tokio::test]
async fn a_plain_http_base_url_is_refused_before_any_request() {
    let Setup {
        api,
        clients,
        config,
        ..
    } = setup("orders", &[]).await;
    let (url_name, _, _) = config.parameter_names();
    // The same server under a non-loopback name (never resolved: refused first).
    let remote = format!("http://api.example.invalid:{}/v1", api.addr.port());
    aws_sdk_ssm::Client::new(&sdk_config().await)
        .put_parameter()
        .name(&url_name)
        .value(&remote)
        .r#type(ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let err = handler(scheduled_event(), &clients, &config)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "InvalidInput", "{err}");
    assert!(err.to_string().contains(&url_name), "{err}");
    assert!(err.to_string().contains("https"), "{err}");
    assert_eq!(api.hits("/v1/orders"), 0);
    assert!(api.log.lock().unwrap().is_empty(), "no request at all");
}
