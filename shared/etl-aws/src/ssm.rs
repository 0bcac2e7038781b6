//! SSM parameters, decrypted and cached with a TTL.
//!
//! Values are [`Secret`]s: their `Debug` is redacted and nothing here logs a value, so a
//! `tracing::debug!(?params)` cannot leak an API key.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::EtlError;

/// A parameter value that does not print itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The value. Call this only where it is used (a header, a URL), never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Something that can fetch a parameter by name (SSM, or a fake in unit tests).
pub trait ParameterSource: Send + Sync {
    fn fetch(&self, name: &str) -> impl Future<Output = Result<Secret, EtlError>> + Send;
}

impl ParameterSource for aws_sdk_ssm::Client {
    async fn fetch(&self, name: &str) -> Result<Secret, EtlError> {
        let out = self
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| EtlError::from_sdk(format!("reading SSM parameter {name}"), e))?;
        out.parameter
            .and_then(|p| p.value)
            .map(Secret::new)
            .ok_or_else(|| EtlError::not_found(format!("SSM parameter {name} has no value")))
    }
}

/// A monotonic clock, injectable for tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A TTL cache in front of a [`ParameterSource`]. Warm Lambda invocations reuse values
/// until they are `ttl` old, so a rotated key is picked up within `ttl`.
pub struct ParameterCache<S = aws_sdk_ssm::Client, C = SystemClock> {
    source: S,
    clock: C,
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Secret)>>,
}

impl<S, C> std::fmt::Debug for ParameterCache<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        f.debug_struct("ParameterCache")
            .field("ttl", &self.ttl)
            .field("cached", &names)
            .finish_non_exhaustive()
    }
}

impl<S: ParameterSource> ParameterCache<S, SystemClock> {
    pub fn new(source: S, ttl: Duration) -> Self {
        Self::with_clock(source, ttl, SystemClock)
    }
}

impl<S: ParameterSource, C: Clock> ParameterCache<S, C> {
    pub fn with_clock(source: S, ttl: Duration, clock: C) -> Self {
        Self {
            source,
            clock,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value of `name`, from the cache when fresh, else fetched (with decryption).
    pub async fn get(&self, name: &str) -> Result<Secret, EtlError> {
        let now = self.clock.now();
        if let Some((fetched, value)) = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            && now.saturating_duration_since(*fetched) < self.ttl
        {
            tracing::debug!(parameter = name, "SSM parameter from cache");
            return Ok(value.clone());
        }
        let value = self.source.fetch(name).await?;
        tracing::debug!(parameter = name, "SSM parameter fetched");
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), (self.clock.now(), value.clone()));
        Ok(value)
    }

    /// Drops every cached value (e.g. after the API rejected a key as expired).
    pub fn invalidate(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(AtomicUsize);

    impl ParameterSource for Counting {
        async fn fetch(&self, name: &str) -> Result<Secret, EtlError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Secret::new(format!("{name}#{n}")))
        }
    }

    #[derive(Clone)]
    struct ManualClock(Arc<Mutex<Instant>>);

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }

    #[tokio::test]
    async fn ttl_expiry_refetches() {
        let start = Instant::now();
        let clock = ManualClock(Arc::new(Mutex::new(start)));
        let cache = ParameterCache::with_clock(
            Counting(AtomicUsize::new(0)),
            Duration::from_secs(300),
            clock.clone(),
        );
        assert_eq!(cache.get("/etl/key").await.unwrap().expose(), "/etl/key#1");
        *clock.0.lock().unwrap() = start + Duration::from_secs(299);
        assert_eq!(cache.get("/etl/key").await.unwrap().expose(), "/etl/key#1");
        *clock.0.lock().unwrap() = start + Duration::from_secs(300);
        assert_eq!(cache.get("/etl/key").await.unwrap().expose(), "/etl/key#2");
        assert_eq!(
            cache.get("/etl/other").await.unwrap().expose(),
            "/etl/other#3"
        );
        cache.invalidate();
        assert_eq!(cache.get("/etl/key").await.unwrap().expose(), "/etl/key#4");
    }

    #[test]
    fn debug_redacts() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        let cache = ParameterCache::new(Counting(AtomicUsize::new(0)), Duration::from_secs(1));
        assert!(!format!("{cache:?}").contains("hunter2"));
    }
}
