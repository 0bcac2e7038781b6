//! Session aggregates: per (customer_id, session_id) and 5-minute tumbling window.
//!
//! This reproduces the seed's Kinesis Analytics SQL, with two deliberate differences:
//! - the window is taken from the event's own time, not the stream's ROWTIME (arrival), so
//!   a late or retried record lands in the window it happened in;
//! - the seed's `COUNT(*) AS page_views` counted purchases too. We report `page_views`
//!   (page_view events only), `purchases`, and `events` (the seed's `COUNT(*)`).
//!
//! `total_amount` sums purchase amounts in integer cents, so it is exact like the seed's
//! `DECIMAL(10,2)`. `last_event_timestamp` is the latest event time seen (`MAX`).
//!
//! A batch only holds part of a window (windows span batches and shards), so these are
//! partial aggregates: a consumer sums them per key. Each object is keyed like its batch's
//! archive (shard and first sequence number), so a redelivered batch overwrites its own
//! aggregates instead of adding a second copy.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::record::{Event, EventType};

/// The tumbling window length.
pub const WINDOW_MS: i64 = 5 * 60 * 1000;

/// The start of the window holding `event_time_ms` (floor, also before 1970).
pub fn window_start(event_time_ms: i64) -> i64 {
    event_time_ms.div_euclid(WINDOW_MS) * WINDOW_MS
}

/// The aggregate of one (customer, session, window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionWindow {
    pub customer_id: String,
    pub session_id: Option<String>,
    pub window_start_ms: i64,
    pub page_views: u64,
    pub purchases: u64,
    pub events: u64,
    pub total_amount_cents: i64,
    pub last_event_ms: i64,
}

/// The JSON line written for a [`SessionWindow`].
#[derive(Debug, Serialize)]
pub struct SessionLine<'a> {
    pub customer_id: &'a str,
    pub session_id: Option<&'a str>,
    pub window_start: String,
    pub window_end: String,
    pub page_views: u64,
    pub purchases: u64,
    pub events: u64,
    pub total_amount: f64,
    pub last_event_timestamp: String,
}

/// RFC 3339 in UTC with milliseconds when there are any.
pub fn rfc3339_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| ms.to_string())
}

impl SessionWindow {
    pub fn line(&self) -> SessionLine<'_> {
        SessionLine {
            customer_id: &self.customer_id,
            session_id: self.session_id.as_deref(),
            window_start: rfc3339_ms(self.window_start_ms),
            window_end: rfc3339_ms(self.window_start_ms + WINDOW_MS),
            page_views: self.page_views,
            purchases: self.purchases,
            events: self.events,
            // Exact for any realistic sum: i64 cents / 100 prints with at most 2 decimals.
            total_amount: self.total_amount_cents as f64 / 100.0,
            last_event_timestamp: rfc3339_ms(self.last_event_ms),
        }
    }
}

/// Accumulates events. Lookups go through a reused key buffer, so only a new
/// (customer, session, window) allocates.
#[derive(Debug, Default)]
pub struct Aggregator {
    index: HashMap<String, usize>,
    windows: Vec<SessionWindow>,
    key: String,
}

impl Aggregator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, event: &Event<'_>) {
        let start = window_start(event.event_time_ms);
        // Length-prefixed parts, so no customer/session text can forge another's key.
        self.key.clear();
        let session = event.session_id.as_deref();
        let _ = write!(
            self.key,
            "{}:{}|{}:{}|{start}",
            event.customer_id.len(),
            event.customer_id,
            session.map_or(-1, |s| s.len() as i64),
            session.unwrap_or("")
        );
        let slot = match self.index.get(self.key.as_str()) {
            Some(&i) => i,
            None => {
                self.windows.push(SessionWindow {
                    customer_id: event.customer_id.to_string(),
                    session_id: session.map(String::from),
                    window_start_ms: start,
                    page_views: 0,
                    purchases: 0,
                    events: 0,
                    total_amount_cents: 0,
                    last_event_ms: event.event_time_ms,
                });
                let i = self.windows.len() - 1;
                self.index.insert(self.key.clone(), i);
                i
            }
        };
        let w = &mut self.windows[slot];
        w.events += 1;
        match event.event_type {
            EventType::PageView => w.page_views += 1,
            EventType::Purchase => {
                w.purchases += 1;
                w.total_amount_cents = w.total_amount_cents.saturating_add(event.amount_cents);
            }
        }
        w.last_event_ms = w.last_event_ms.max(event.event_time_ms);
    }

    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The windows, ordered by customer, session and window start (deterministic output).
    pub fn into_windows(self) -> Vec<SessionWindow> {
        let mut windows = self.windows;
        windows.sort_unstable_by(|a, b| {
            (&a.customer_id, &a.session_id, a.window_start_ms).cmp(&(
                &b.customer_id,
                &b.session_id,
                b.window_start_ms,
            ))
        });
        windows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn event(
        t: EventType,
        customer: &'static str,
        session: Option<&'static str>,
        ms: i64,
        cents: i64,
    ) -> Event<'static> {
        Event {
            event_type: t,
            customer_id: Cow::Borrowed(customer),
            session_id: session.map(Cow::Borrowed),
            event_time_ms: ms,
            amount_cents: cents,
            page: None,
        }
    }

    #[test]
    fn window_arithmetic() {
        let noon = 1_714_564_800_000; // 2024-05-01T12:00:00Z, a window boundary
        assert_eq!(window_start(noon), noon);
        assert_eq!(window_start(noon + 299_999), noon);
        assert_eq!(window_start(noon + 300_000), noon + 300_000);
        assert_eq!(window_start(noon - 1), noon - 300_000);
        assert_eq!(window_start(0), 0);
        assert_eq!(window_start(-1), -300_000, "floor, not truncation");
        assert_eq!(rfc3339_ms(noon), "2024-05-01T12:00:00Z");
        assert_eq!(rfc3339_ms(noon + 250), "2024-05-01T12:00:00.250Z");
    }

    #[test]
    fn aggregation() {
        use EventType::*;
        let noon = 1_714_564_800_000;
        let mut agg = Aggregator::new();
        agg.add(&event(PageView, "c1", Some("s1"), noon + 1_000, 0));
        agg.add(&event(PageView, "c1", Some("s1"), noon + 200_000, 0));
        agg.add(&event(Purchase, "c1", Some("s1"), noon + 100_000, 99_999));
        agg.add(&event(Purchase, "c1", Some("s1"), noon + 150_000, 1));
        // Next window, other session, null session, and a customer id that would collide
        // with ("c1", "s1") under naive concatenation.
        agg.add(&event(PageView, "c1", Some("s1"), noon + 300_000, 0));
        agg.add(&event(PageView, "c1", Some("s2"), noon, 0));
        agg.add(&event(Purchase, "c1", None, noon, 500));
        agg.add(&event(PageView, "c1s", Some("1"), noon, 0));
        assert_eq!(agg.len(), 5);
        let w = agg.into_windows();
        let keys: Vec<(&str, Option<&str>, i64)> = w
            .iter()
            .map(|w| {
                (
                    w.customer_id.as_str(),
                    w.session_id.as_deref(),
                    w.window_start_ms,
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("c1", None, noon),
                ("c1", Some("s1"), noon),
                ("c1", Some("s1"), noon + 300_000),
                ("c1", Some("s2"), noon),
                ("c1s", Some("1"), noon),
            ]
        );
        let s1 = &w[1];
        assert_eq!(
            (s1.page_views, s1.purchases, s1.events),
            (2, 2, 4),
            "{s1:?}"
        );
        assert_eq!(s1.total_amount_cents, 100_000);
        assert_eq!(s1.last_event_ms, noon + 200_000, "max, not last seen");
        let line = serde_json::to_value(s1.line()).unwrap();
        assert_eq!(
            line,
            serde_json::json!({
                "customer_id": "c1", "session_id": "s1",
                "window_start": "2024-05-01T12:00:00Z", "window_end": "2024-05-01T12:05:00Z",
                "page_views": 2, "purchases": 2, "events": 4, "total_amount": 1000.0,
                "last_event_timestamp": "2024-05-01T12:03:20Z"
            })
        );
        assert_eq!(w[0].line().total_amount, 5.0);
        assert_eq!(
            serde_json::to_value(w[0].line()).unwrap()["session_id"],
            serde_json::Value::Null
        );
    }
}
