//! The three ways an object reaches the processor: an S3 notification, an EventBridge
//! "Object Created" event, or a Step Functions Map item. All become [`ObjectRef`]s.

use aws_lambda_events::event::s3::S3Event;
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::Value;

/// One object to process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    /// The real key (notifications URL-encode it; this is decoded).
    pub key: String,
    pub etag: Option<String>,
    pub version_id: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error(
        "unrecognised event: expected an S3 notification (Records), an EventBridge Object Created event (detail.bucket.name) or a Map item {{bucket, key}}"
    )]
    Unrecognised,
    #[error("malformed {kind} event: {message}")]
    Malformed { kind: &'static str, message: String },
}

/// A Step Functions Map item (or a direct invocation).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MapItem {
    bucket: String,
    key: String,
    #[serde(default, alias = "eTag", alias = "ETag")]
    etag: Option<String>,
    #[serde(default)]
    version_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct EventBridgeDetail {
    bucket: EventBridgeBucket,
    object: EventBridgeObject,
}

#[derive(Debug, Deserialize)]
struct EventBridgeBucket {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct EventBridgeObject {
    key: String,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    version_id: Option<String>,
}

/// The objects an event names, in order.
pub fn objects(event: &Value) -> Result<Vec<ObjectRef>, EventError> {
    if event.get("Records").is_some() {
        let parsed: S3Event =
            serde_json::from_value(event.clone()).map_err(|e| EventError::Malformed {
                kind: "S3 notification",
                message: e.to_string(),
            })?;
        return parsed
            .records
            .into_iter()
            .filter(|r| {
                r.event_name
                    .as_deref()
                    .is_none_or(|n| n.starts_with("ObjectCreated"))
            })
            .map(|r| {
                let bucket =
                    r.s3.bucket
                        .name
                        .ok_or_else(|| malformed_s3("bucket.name"))?;
                let raw = r.s3.object.key.ok_or_else(|| malformed_s3("object.key"))?;
                Ok(ObjectRef {
                    bucket,
                    key: decode_key(&raw),
                    etag: r.s3.object.e_tag.filter(|e| !e.is_empty()),
                    version_id: r.s3.object.version_id.filter(|v| !v.is_empty()),
                })
            })
            .collect();
    }
    if let Some(detail) = event.get("detail").filter(|d| d.get("bucket").is_some()) {
        let d: EventBridgeDetail =
            serde_json::from_value(detail.clone()).map_err(|e| EventError::Malformed {
                kind: "EventBridge Object Created",
                message: e.to_string(),
            })?;
        return Ok(vec![ObjectRef {
            bucket: d.bucket.name,
            key: d.object.key,
            etag: d.object.etag,
            version_id: d.object.version_id,
        }]);
    }
    if event.get("bucket").is_some() && event.get("key").is_some() {
        let item: MapItem =
            serde_json::from_value(event.clone()).map_err(|e| EventError::Malformed {
                kind: "Map item",
                message: e.to_string(),
            })?;
        return Ok(vec![ObjectRef {
            bucket: item.bucket,
            key: item.key,
            etag: item.etag,
            version_id: item.version_id,
        }]);
    }
    Err(EventError::Unrecognised)
}

fn malformed_s3(field: &str) -> EventError {
    EventError::Malformed {
        kind: "S3 notification",
        message: format!("record without s3.{field}"),
    }
}

/// S3 notification keys are form-encoded: `+` is a space and the rest is percent-encoded.
pub fn decode_key(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_s3_event_of_aws_lambda_events_parses() {
        let sample = include_str!("../tests/fixtures/example-s3-event.json");
        let objects = objects(&serde_json::from_str(sample).unwrap()).unwrap();
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].bucket, "sourcebucket");
        assert_eq!(objects[0].key, "Happy Face.jpg");
    }

    #[test]
    fn keys_are_decoded_once() {
        assert_eq!(
            decode_key("raw-data/customers/my+file%2B1.csv"),
            "raw-data/customers/my file+1.csv"
        );
        assert_eq!(decode_key("caf%C3%A9%20%C3%BC.csv"), "café ü.csv");
        assert_eq!(decode_key("plain.csv"), "plain.csv");
    }

    #[test]
    fn several_records_and_non_create_events() {
        let event = serde_json::json!({"Records": [
            record("ObjectCreated:Put", "a+b.csv"),
            record("ObjectRemoved:Delete", "gone.csv"),
            record("ObjectCreated:CompleteMultipartUpload", "x%C3%A9.json"),
        ]});
        let keys: Vec<String> = objects(&event)
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["a b.csv", "xé.json"]);
    }

    #[test]
    fn eventbridge_and_map_items() {
        let eb = serde_json::json!({
            "version": "0", "detail-type": "Object Created", "source": "aws.s3",
            "detail": {"bucket": {"name": "raw"}, "object": {"key": "raw-data/a b.csv", "etag": "e1", "size": 3}}
        });
        assert_eq!(
            objects(&eb).unwrap(),
            [ObjectRef {
                bucket: "raw".into(),
                key: "raw-data/a b.csv".into(),
                etag: Some("e1".into()),
                version_id: None
            }]
        );
        let item = serde_json::json!({"bucket": "raw", "key": "k.csv"});
        assert_eq!(objects(&item).unwrap()[0].key, "k.csv");
        assert_eq!(
            objects(&serde_json::json!({"hello": 1})),
            Err(EventError::Unrecognised)
        );
    }

    fn record(name: &str, key: &str) -> Value {
        serde_json::json!({
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2024-01-01T00:00:00.000Z", "eventName": name,
            "userIdentity": {"principalId": "x"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "c",
                   "bucket": {"name": "raw", "ownerIdentity": {"principalId": "x"}, "arn": "arn:aws:s3:::raw"},
                   "object": {"key": key, "size": 1, "eTag": "abc", "sequencer": "1"}}
        })
    }
}
