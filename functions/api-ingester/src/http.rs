//! Fetching one endpoint: retries with full-jitter backoff, 429 Retry-After, pagination.
//!
//! # Response shapes
//! A page's JSON body is either
//! - a top-level array of records, or
//! - an object whose records are the array under `data`, `items` or `results` (the first
//!   present, in that order); an object with none of them is one record (the seed did the
//!   same for non-list responses).
//!
//! # Pagination
//! The next page's URL comes from, in order:
//! 1. an RFC 8288 (ex-5988) `Link` header entry with `rel="next"`;
//! 2. the body's `next`, `next_url` or `links.next` (objects only), a string URL.
//!
//! Relative URLs resolve against the current page's URL. A next URL on another origin
//! (scheme, host, port) than the API's base URL is refused: the bearer token is only ever
//! sent to the API. Pagination stops at a missing/null/empty next, and fails on a URL seen
//! before (a server loop) or past `max_pages`.
//!
//! # Retries
//! Connection errors, timeouts (the whole request, body included), 408, 429 and 5xx are
//! retried up to `max_attempts` per page. The wait is full jitter, `random(0, min(cap,
//! base * 2^(attempt-1)))`, except that a 429 with `Retry-After` (delta-seconds or an HTTP
//! date) waits what the server asked, capped at `retry_after_cap`. Other 4xx fail at once.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use etl_aws::ssm::Secret;
use etl_aws::{ErrorKind, EtlError};
use reqwest::header::{HeaderMap, LINK, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde_json::Value;

/// Retry and pagination limits.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    pub retry_after_cap: Duration,
    pub max_pages: usize,
}

/// The full-jitter backoff before retry number `attempt` (1 = first retry), given a random
/// fraction `unit` in [0, 1].
pub fn backoff(policy: &RetryPolicy, attempt: u32, unit: f64) -> Duration {
    let exp = policy
        .base
        .saturating_mul(2_u32.saturating_pow(attempt.saturating_sub(1)));
    exp.min(policy.cap).mul_f64(unit.clamp(0.0, 1.0))
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP date (relative to `now`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `rel="next"` target of a `Link` header value, e.g.
/// `<https://api/x?page=2>; rel="next", <https://api/x?page=9>; rel="last"`.
pub fn link_next(value: &str) -> Option<&str> {
    for part in value.split(',') {
        let mut pieces = part.split(';');
        let target = pieces.next()?.trim();
        let target = target.strip_prefix('<')?.strip_suffix('>')?;
        let is_next = pieces.any(|p| {
            let p = p.trim();
            p.strip_prefix("rel=").is_some_and(|rel| {
                rel.trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
            })
        });
        if is_next {
            return Some(target);
        }
    }
    None
}

/// Splits a page body into its records and the body's next link, if any.
pub fn split_page(body: Value) -> (Vec<Value>, Option<String>) {
    match body {
        Value::Array(records) => (records, None),
        Value::Object(mut map) => {
            let next = ["next", "next_url"]
                .iter()
                .find_map(|k| map.get(*k).and_then(Value::as_str).map(String::from))
                .or_else(|| {
                    map.get("links")
                        .and_then(|l| l.get("next"))
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .filter(|s| !s.trim().is_empty());
            for field in ["data", "items", "results"] {
                if let Some(Value::Array(_)) = map.get(field)
                    && let Some(Value::Array(records)) = map.remove(field)
                {
                    return (records, next);
                }
            }
            (vec![Value::Object(map)], next)
        }
        other => (vec![other], None),
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Counters of a [`Pager`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PageStats {
    pub pages: usize,
    /// Requests sent, retries included.
    pub requests: u32,
}

enum Attempt {
    Done(Vec<u8>, HeaderMap),
    Retry(Option<Duration>, EtlError),
    Fail(EtlError),
}

fn status_error(url: &Url, status: StatusCode) -> EtlError {
    let kind = match status.as_u16() {
        401 | 403 => ErrorKind::AccessDenied,
        404 | 410 => ErrorKind::NotFound,
        s if s == 408 || s == 429 || s >= 500 => ErrorKind::Transient,
        _ => ErrorKind::InvalidInput,
    };
    EtlError::new(kind, format!("GET {} answered {status}", redact(url)))
}

/// The URL without its query (which may carry tokens of the API's own).
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_password(None);
    u.to_string()
}

async fn attempt(http: &reqwest::Client, url: &Url, key: &Secret) -> Attempt {
    let response = match http
        .get(url.clone())
        .bearer_auth(key.expose())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let err = EtlError::transient(format!("GET {} failed: {}", redact(url), describe(&e)));
            return if e.is_timeout() || e.is_connect() || e.is_request() {
                Attempt::Retry(None, err)
            } else {
                Attempt::Fail(EtlError::internal(err.message().to_string()))
            };
        }
    };
    let status = response.status();
    if status.is_success() {
        let headers = response.headers().clone();
        return match response.bytes().await {
            Ok(body) => Attempt::Done(body.to_vec(), headers),
            // A stall or reset mid-body is as transient as one before the headers.
            Err(e) => Attempt::Retry(
                None,
                EtlError::transient(format!(
                    "reading the body of GET {}: {}",
                    redact(url),
                    describe(&e)
                )),
            ),
        };
    }
    let err = status_error(url, status);
    if !err.kind().is_retryable() {
        return Attempt::Fail(err);
    }
    let retry_after = (status == StatusCode::TOO_MANY_REQUESTS)
        .then(|| response.headers().get(RETRY_AFTER))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    Attempt::Retry(retry_after, err)
}

fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request error"
    };
    // reqwest's Display carries the URL with its query; the source chain says why.
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        what.to_string()
    } else {
        format!("{what} ({cause})")
    }
}

/// One page, with retries.
async fn get_page(
    http: &reqwest::Client,
    url: &Url,
    key: &Secret,
    policy: &RetryPolicy,
    requests: &mut u32,
) -> Result<(Vec<u8>, HeaderMap), EtlError> {
    let mut tries = 0;
    loop {
        tries += 1;
        *requests += 1;
        let (retry_after, err) = match attempt(http, url, key).await {
            Attempt::Done(body, headers) => return Ok((body, headers)),
            Attempt::Fail(err) => return Err(err),
            Attempt::Retry(after, err) => (after, err),
        };
        if tries >= policy.max_attempts {
            return Err(EtlError::new(
                err.kind(),
                format!("{} (gave up after {tries} attempts)", err.message()),
            ));
        }
        let wait = match retry_after {
            Some(after) => after.min(policy.retry_after_cap),
            None => backoff(policy, tries, fastrand::f64()),
        };
        tracing::debug!(url = %redact(url), attempt = tries, wait_ms = wait.as_millis() as u64, error = %err, "retrying");
        tokio::time::sleep(wait).await;
    }
}

/// Walks an endpoint's pages one at a time, so a caller can hand each page on (to S3)
/// before the next is fetched and never holds more than one.
pub struct Pager<'a> {
    http: &'a reqwest::Client,
    key: &'a Secret,
    policy: &'a RetryPolicy,
    origin: Url,
    seen: HashSet<String>,
    next: Option<Url>,
    pub stats: PageStats,
}

impl<'a> Pager<'a> {
    pub fn new(
        http: &'a reqwest::Client,
        start: Url,
        key: &'a Secret,
        policy: &'a RetryPolicy,
    ) -> Self {
        Self {
            http,
            key,
            policy,
            origin: start.clone(),
            seen: HashSet::new(),
            next: Some(start),
            stats: PageStats::default(),
        }
    }

    /// The next page's records; `None` after the last page.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Value>>, EtlError> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        if !self.seen.insert(url.to_string()) {
            return Err(EtlError::invalid_input(format!(
                "pagination loops: {} was already fetched",
                redact(&url)
            )));
        }
        if self.stats.pages >= self.policy.max_pages {
            return Err(EtlError::invalid_input(format!(
                "more than {} pages from {}; raise MAX_PAGES if that is expected",
                self.policy.max_pages,
                redact(&self.origin)
            )));
        }
        let (body, headers) = get_page(
            self.http,
            &url,
            self.key,
            self.policy,
            &mut self.stats.requests,
        )
        .await?;
        let value: Value = serde_json::from_slice(&body).map_err(|e| {
            EtlError::invalid_input(format!(
                "GET {} returned a body that is not JSON: {e}",
                redact(&url)
            ))
        })?;
        self.stats.pages += 1;
        let (records, body_next) = split_page(value);
        let link = headers
            .get_all(LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| link_next(v).map(String::from));
        if let Some(target) = link.or(body_next) {
            let resolved = url.join(target.trim()).map_err(|e| {
                EtlError::invalid_input(format!(
                    "next page link {target:?} from {} is not a URL: {e}",
                    redact(&url)
                ))
            })?;
            if !same_origin(&self.origin, &resolved) {
                return Err(EtlError::invalid_input(format!(
                    "next page {} is not on the API's origin {}; refusing to send the key there",
                    redact(&resolved),
                    self.origin.origin().ascii_serialization()
                )));
            }
            self.next = Some(resolved);
        }
        Ok(Some(records))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            retry_after_cap: Duration::from_secs(30),
            max_pages: 10,
        }
    }

    #[test]
    fn full_jitter_backoff() {
        let p = policy();
        assert_eq!(backoff(&p, 1, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(&p, 3, 1.0), Duration::from_millis(400));
        assert_eq!(backoff(&p, 3, 0.5), Duration::from_millis(200));
        assert_eq!(backoff(&p, 3, 0.0), Duration::ZERO);
        assert_eq!(backoff(&p, 10, 1.0), Duration::from_secs(2), "capped");
        assert_eq!(backoff(&p, 200, 1.0), Duration::from_secs(2), "no overflow");
    }

    #[test]
    fn retry_after_forms() {
        let now = httpdate::parse_http_date("Wed, 01 May 2024 12:00:00 GMT").unwrap();
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now),
            Some(Duration::ZERO),
            "a past date means now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn link_headers() {
        assert_eq!(
            link_next(r#"<https://a/x?page=2>; rel="next", <https://a/x?page=9>; rel="last""#),
            Some("https://a/x?page=2")
        );
        assert_eq!(
            link_next(r#"<https://a/x?page=1>; rel="prev", </x?page=3>; rel=next"#),
            Some("/x?page=3")
        );
        assert_eq!(
            link_next(r#"<https://a/x?p=2>; title="n"; rel="next last""#),
            Some("https://a/x?p=2")
        );
        assert_eq!(link_next(r#"<https://a/x?page=1>; rel="prev""#), None);
        assert_eq!(link_next("garbage"), None);
    }

    #[test]
    fn page_shapes() {
        let (r, n) = split_page(json!([{"id": 1}, {"id": 2}]));
        assert_eq!((r.len(), n), (2, None));
        let (r, n) = split_page(json!({"data": [{"id": 1}], "next": "/x?page=2"}));
        assert_eq!(r, [json!({"id": 1})]);
        assert_eq!(n.as_deref(), Some("/x?page=2"));
        let (r, n) = split_page(json!({"items": [1, 2, 3], "links": {"next": "p3"}}));
        assert_eq!((r.len(), n.as_deref()), (3, Some("p3")));
        let (r, n) = split_page(json!({"results": [], "next_url": null, "next": ""}));
        assert_eq!((r.len(), n), (0, None));
        let (r, _) = split_page(json!({"data": "not a list", "id": 7}));
        assert_eq!(r, [json!({"data": "not a list", "id": 7})], "one record");
        let (r, _) = split_page(json!(42));
        assert_eq!(r, [json!(42)]);
    }

    #[test]
    fn status_classes() {
        let url = Url::parse("https://api.example/v1/x?token=abc").unwrap();
        let e = status_error(&url, StatusCode::NOT_FOUND);
        assert_eq!(e.error_type(), "NotFound");
        assert_eq!(
            e.to_string(),
            "GET https://api.example/v1/x answered 404 Not Found"
        );
        assert_eq!(
            status_error(&url, StatusCode::UNAUTHORIZED).error_type(),
            "AccessDenied"
        );
        assert_eq!(
            status_error(&url, StatusCode::BAD_GATEWAY).error_type(),
            "TransientError"
        );
        assert_eq!(
            status_error(&url, StatusCode::TOO_MANY_REQUESTS).error_type(),
            "TransientError"
        );
        assert_eq!(
            status_error(&url, StatusCode::BAD_REQUEST).error_type(),
            "InvalidInput"
        );
        assert!(same_origin(&url, &url.join("/other").unwrap()));
        assert!(!same_origin(
            &url,
            &Url::parse("https://evil.example/v1/x").unwrap()
        ));
        assert!(!same_origin(
            &url,
            &Url::parse("http://api.example/v1/x").unwrap()
        ));
    }
}
