//! The event schema, and the classification of one decoded record.
//!
//! # Schema
//!
//! Each Kinesis record's data is one JSON object (UTF-8, base64 in the Lambda event):
//!
//! | field | type | required | notes |
//! | --- | --- | --- | --- |
//! | `event_type` | string | yes | `page_view` or `purchase`; anything else is quarantined |
//! | `customer_id` | string or integer | yes | non-empty; integers are kept as their decimal text |
//! | `session_id` | string or integer | no | the seed's purchase events carry none: they aggregate under a `null` session, as `GROUP BY` groups NULLs |
//! | `timestamp` | string or number | yes | RFC 3339 (`2024-05-01T12:00:00.5+02:00`), or ISO 8601 without an offset (`2024-05-01T12:00:00.123456`, Python's `isoformat()`, read as UTC), or epoch seconds / milliseconds (number or numeric string; magnitudes of 10^11 and above are milliseconds) |
//! | `amount` | number or numeric string | purchases | finite and not negative; summed in cents (the seed's `DECIMAL(10,2)`) |
//! | `page`, `page_url`, `url` | string | no | page views; the first present is kept |
//!
//! Other fields (`user_agent`, `product_id`, `quantity`, ...) are allowed and kept in the
//! archive and the order workflow's input; producers may add fields without breaking us.
//!
//! A record that breaks this schema is a [`Rejection`] with a stable reason, named like the
//! engine's `_reject_reason` values (`missing_required:<field>`, `invalid_value:<field>`).
//!
//! Parsing borrows from the decoded bytes: a record costs no allocation unless its strings
//! contain JSON escapes.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, NaiveDateTime};
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The two event types the stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    PageView,
    Purchase,
}

/// A valid event, borrowing from the decoded record.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub event_type: EventType,
    pub customer_id: Cow<'a, str>,
    pub session_id: Option<Cow<'a, str>>,
    /// Event time, milliseconds since the Unix epoch (UTC).
    pub event_time_ms: i64,
    /// Purchase amount in cents; 0 for page views.
    pub amount_cents: i64,
    pub page: Option<Cow<'a, str>>,
}

/// Why a record was quarantined. [`Rejection::reason`] is the stable string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The record's data is not valid base64.
    InvalidBase64,
    /// The decoded data is not JSON (or not UTF-8).
    NotJson(String),
    /// The JSON is not an object, or an object serde refuses (duplicate keys).
    NotAnObject(String),
    /// `event_type` is neither `page_view` nor `purchase`.
    UnknownEventType(String),
    MissingRequired(&'static str),
    InvalidValue(&'static str, String),
    /// Step Functions refused the order (not throttling: e.g. the input is too large).
    OrderRejected(String),
}

impl Rejection {
    /// The stable reason, e.g. `missing_required:customer_id`.
    pub fn reason(&self) -> Cow<'static, str> {
        match self {
            Self::InvalidBase64 => "invalid_base64".into(),
            Self::NotJson(_) => "not_json".into(),
            Self::NotAnObject(_) => "not_an_object".into(),
            Self::UnknownEventType(_) => "unknown_event_type".into(),
            Self::MissingRequired(f) => format!("missing_required:{f}").into(),
            Self::InvalidValue(f, _) => format!("invalid_value:{f}").into(),
            Self::OrderRejected(_) => "order_rejected".into(),
        }
    }

    /// A human-readable detail (the offending value or the parser's message).
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::InvalidBase64 | Self::MissingRequired(_) => None,
            Self::NotJson(d)
            | Self::NotAnObject(d)
            | Self::UnknownEventType(d)
            | Self::InvalidValue(_, d)
            | Self::OrderRejected(d) => Some(d),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.detail() {
            Some(d) => write!(f, "{}: {d}", self.reason()),
            None => f.write_str(&self.reason()),
        }
    }
}

/// Any JSON value, keeping scalars (borrowed where possible) and skipping containers, so a
/// field of the wrong type becomes our own `invalid_value:<field>` instead of a serde error
/// that does not name the field.
#[derive(Debug, Clone, PartialEq)]
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Container,
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ScalarVisitor<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Container)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Container)
            }
        }
        deserializer.deserialize_any(ScalarVisitor(std::marker::PhantomData))
    }
}

impl Scalar<'_> {
    fn describe(&self) -> String {
        match self {
            Scalar::Str(s) => format!("{s:?}"),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Null => "null".into(),
            Scalar::Container => "an object or array".into(),
        }
    }
}

/// The wire shape: every field optional and loosely typed; [`classify`] validates.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default)]
    event_type: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    customer_id: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    session_id: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    timestamp: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    amount: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    page: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    page_url: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    url: Option<Scalar<'a>>,
}

/// Epoch values at or above this magnitude are milliseconds (10^11 s is the year 5138;
/// 10^11 ms is March 1973).
const MILLIS_THRESHOLD: f64 = 1e11;

/// Classifies one decoded record.
pub fn classify(data: &[u8]) -> Result<Event<'_>, Rejection> {
    // Checked first because serde would read a struct from a JSON array positionally.
    if data.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(match serde_json::from_slice::<IgnoredAny>(data) {
            Ok(_) => Rejection::NotAnObject("the record is JSON but not an object".into()),
            Err(e) => Rejection::NotJson(e.to_string()),
        });
    }
    let wire: Wire<'_> = serde_json::from_slice(data).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => Rejection::NotAnObject(e.to_string()),
        _ => Rejection::NotJson(e.to_string()),
    })?;
    let event_type = match wire.event_type {
        None | Some(Scalar::Null) => return Err(Rejection::MissingRequired("event_type")),
        Some(Scalar::Str(s)) if s == "page_view" => EventType::PageView,
        Some(Scalar::Str(s)) if s == "purchase" => EventType::Purchase,
        Some(other) => return Err(Rejection::UnknownEventType(other.describe())),
    };
    let customer_id = match identifier(wire.customer_id, "customer_id")? {
        Some(id) => id,
        None => return Err(Rejection::MissingRequired("customer_id")),
    };
    let session_id = identifier(wire.session_id, "session_id")?;
    let event_time_ms = match wire.timestamp {
        None | Some(Scalar::Null) => return Err(Rejection::MissingRequired("timestamp")),
        Some(ts) => parse_timestamp(&ts)
            .ok_or_else(|| Rejection::InvalidValue("timestamp", ts.describe()))?,
    };
    let amount_cents = match (event_type, wire.amount) {
        (EventType::Purchase, None | Some(Scalar::Null)) => {
            return Err(Rejection::MissingRequired("amount"));
        }
        (EventType::Purchase, Some(a)) => {
            parse_cents(&a).ok_or_else(|| Rejection::InvalidValue("amount", a.describe()))?
        }
        // A page view's amount is not part of the aggregate (the seed's SQL sums amounts of
        // purchases only), so it is not validated either.
        (EventType::PageView, _) => 0,
    };
    let page = [wire.page, wire.page_url, wire.url]
        .into_iter()
        .flatten()
        .find_map(|s| match s {
            Scalar::Str(s) => Some(s),
            _ => None,
        });
    Ok(Event {
        event_type,
        customer_id,
        session_id,
        event_time_ms,
        amount_cents,
        page,
    })
}

/// A string or integer identifier; empty strings and null are absent.
fn identifier<'a>(
    value: Option<Scalar<'a>>,
    field: &'static str,
) -> Result<Option<Cow<'a, str>>, Rejection> {
    match value {
        None | Some(Scalar::Null) => Ok(None),
        Some(Scalar::Str(s)) if s.trim().is_empty() => Ok(None),
        Some(Scalar::Str(s)) => Ok(Some(s)),
        Some(Scalar::Int(i)) => Ok(Some(Cow::Owned(i.to_string()))),
        Some(other) => Err(Rejection::InvalidValue(field, other.describe())),
    }
}

fn epoch_to_ms(v: f64) -> Option<i64> {
    if !v.is_finite() {
        return None;
    }
    let ms = if v.abs() >= MILLIS_THRESHOLD {
        v
    } else {
        v * 1000.0
    };
    let ms = ms.round();
    // Keep within what chrono can format (years -262143..262142) with a wide margin.
    (ms.abs() < 8.0e15).then_some(ms as i64)
}

/// Parses an event time to epoch milliseconds (see the module docs for the formats).
pub fn parse_timestamp_str(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(s, format) {
            return Some(naive.and_utc().timestamp_millis());
        }
    }
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return s.parse::<f64>().ok().and_then(epoch_to_ms);
    }
    None
}

fn parse_timestamp(value: &Scalar<'_>) -> Option<i64> {
    match value {
        Scalar::Str(s) => parse_timestamp_str(s),
        Scalar::Int(i) => epoch_to_ms(*i as f64),
        Scalar::Float(f) => epoch_to_ms(*f),
        _ => None,
    }
}

fn parse_cents(value: &Scalar<'_>) -> Option<i64> {
    let amount = match value {
        Scalar::Int(i) => *i as f64,
        Scalar::Float(f) => *f,
        Scalar::Str(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    // Cents as i64 hold ~9.2e16; refuse anything near that rather than saturate.
    (0.0..1e15)
        .contains(&amount)
        .then(|| (amount * 100.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(json: &str) -> Event<'_> {
        classify(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    fn reason(json: &str) -> String {
        classify(json.as_bytes()).unwrap_err().reason().into_owned()
    }

    #[test]
    fn page_view_and_purchase() {
        let e = ok(
            r#"{"event_type":"page_view","customer_id":"12345","page_url":"/products/laptop",
                "timestamp":"2024-05-01T12:03:00.250Z","user_agent":"Mozilla","session_id":"sess_abc123"}"#,
        );
        assert_eq!(e.event_type, EventType::PageView);
        assert_eq!(e.customer_id, "12345");
        assert!(matches!(e.customer_id, Cow::Borrowed(_)), "no allocation");
        assert_eq!(e.session_id.as_deref(), Some("sess_abc123"));
        assert_eq!(e.page.as_deref(), Some("/products/laptop"));
        assert_eq!(e.event_time_ms, 1_714_564_980_250);
        assert_eq!(e.amount_cents, 0);

        // The seed's purchase: no session, numeric amount, Python isoformat() time.
        let e = ok(
            r#"{"event_type":"purchase","customer_id":12345,"product_id":"P001","quantity":1,
                "amount":999.99,"timestamp":"2024-05-01T12:03:00.123456"}"#,
        );
        assert_eq!(e.event_type, EventType::Purchase);
        assert_eq!(e.customer_id, "12345");
        assert_eq!(e.session_id, None);
        assert_eq!(e.amount_cents, 99_999);
        assert_eq!(e.event_time_ms, 1_714_564_980_123);
        assert_eq!(
            ok(r#"{"event_type":"purchase","customer_id":"c","amount":"0.1","timestamp":1}"#)
                .amount_cents,
            10
        );
    }

    #[test]
    fn timestamps() {
        let base = 1_714_564_800_000; // 2024-05-01T12:00:00Z
        for (input, want) in [
            ("2024-05-01T12:00:00Z", base),
            ("2024-05-01T14:00:00+02:00", base),
            ("2024-05-01T12:00:00", base),
            ("2024-05-01 12:00:00.5", base + 500),
            ("1714564800", base),
            ("1714564800000", base),
        ] {
            assert_eq!(parse_timestamp_str(input), Some(want), "{input}");
        }
        assert_eq!(parse_timestamp(&Scalar::Int(1_714_564_800)), Some(base));
        assert_eq!(parse_timestamp(&Scalar::Int(1_714_564_800_000)), Some(base));
        assert_eq!(
            parse_timestamp(&Scalar::Float(1_714_564_800.25)),
            Some(base + 250)
        );
        for bad in ["yesterday", "", "2024-13-01T00:00:00Z", "12:00"] {
            assert_eq!(parse_timestamp_str(bad), None, "{bad}");
        }
        assert_eq!(parse_timestamp(&Scalar::Float(f64::NAN)), None);
        assert_eq!(parse_timestamp(&Scalar::Bool(true)), None);
    }

    #[test]
    fn malformed_records() {
        let cases = [
            ("Hello World", "not_json"),
            ("{\"event_type\":", "not_json"),
            ("[1,2]", "not_an_object"),
            ("\"page_view\"", "not_an_object"),
            (
                r#"{"event_type":"page_view","event_type":"purchase"}"#,
                "not_an_object",
            ),
            (
                r#"{"customer_id":"c","timestamp":1}"#,
                "missing_required:event_type",
            ),
            (
                r#"{"event_type":"click","customer_id":"c","timestamp":1}"#,
                "unknown_event_type",
            ),
            (
                r#"{"event_type":7,"customer_id":"c","timestamp":1}"#,
                "unknown_event_type",
            ),
            (
                r#"{"event_type":"page_view","timestamp":1}"#,
                "missing_required:customer_id",
            ),
            (
                r#"{"event_type":"page_view","customer_id":"  ","timestamp":1}"#,
                "missing_required:customer_id",
            ),
            (
                r#"{"event_type":"page_view","customer_id":{"id":1},"timestamp":1}"#,
                "invalid_value:customer_id",
            ),
            (
                r#"{"event_type":"page_view","customer_id":"c","session_id":1.5,"timestamp":1}"#,
                "invalid_value:session_id",
            ),
            (
                r#"{"event_type":"page_view","customer_id":"c"}"#,
                "missing_required:timestamp",
            ),
            (
                r#"{"event_type":"page_view","customer_id":"c","timestamp":"soon"}"#,
                "invalid_value:timestamp",
            ),
            (
                r#"{"event_type":"purchase","customer_id":"c","timestamp":1}"#,
                "missing_required:amount",
            ),
            (
                r#"{"event_type":"purchase","customer_id":"c","timestamp":1,"amount":-5}"#,
                "invalid_value:amount",
            ),
            (
                r#"{"event_type":"purchase","customer_id":"c","timestamp":1,"amount":"ten"}"#,
                "invalid_value:amount",
            ),
        ];
        for (json, want) in cases {
            assert_eq!(reason(json), want, "{json}");
        }
        let err =
            classify(br#"{"event_type":"click","customer_id":"c","timestamp":1}"#).unwrap_err();
        assert_eq!(err.to_string(), "unknown_event_type: \"click\"");
        assert_eq!(
            classify(&[0xff, 0xfe]).unwrap_err().reason(),
            "not_json",
            "not UTF-8"
        );
    }
}
