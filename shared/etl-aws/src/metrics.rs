//! CloudWatch metrics in the Embedded Metric Format (EMF): one JSON object per line on
//! stdout, which the Lambda log pipeline turns into metrics with no API call.
//!
//! ```text
//! {"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"ServerlessEtl",
//!   "Dimensions":[["function"]],"Metrics":[{"Name":"RowsIn","Unit":"Count"}]}]},
//!  "function":"s3-processor","RowsIn":42}
//! ```

use std::io::Write;

use serde_json::{Map, Value, json};

/// EMF allows at most 100 metrics per directive and 30 dimensions per set.
pub const MAX_METRICS: usize = 100;
const MAX_DIMENSIONS: usize = 30;

/// A CloudWatch unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
    Milliseconds,
    Seconds,
    Percent,
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
            Unit::Percent => "Percent",
            Unit::None => "None",
        }
    }
}

/// Collects metric values, then writes them as one EMF line on [`Metrics::flush`].
#[derive(Debug, Clone)]
pub struct Metrics {
    namespace: String,
    dimensions: Vec<(String, String)>,
    /// (name, unit, values) in first-put order; repeated puts of a name add values.
    values: Vec<(String, Unit, Vec<f64>)>,
    properties: Map<String, Value>,
}

impl Metrics {
    /// A collector for `namespace` (e.g. "ServerlessEtl").
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            dimensions: Vec::new(),
            values: Vec::new(),
            properties: Map::new(),
        }
    }

    /// Adds a dimension (all metrics of this collector share one dimension set).
    pub fn dimension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if self.dimensions.len() < MAX_DIMENSIONS {
            self.dimensions.push((name.into(), value.into()));
        }
        self
    }

    /// Records a value. Non-finite values are dropped (CloudWatch rejects them); metrics
    /// past [`MAX_METRICS`] distinct names are dropped with a warning.
    pub fn put(&mut self, name: &str, value: f64, unit: Unit) {
        if !value.is_finite() {
            return;
        }
        if let Some(entry) = self.values.iter_mut().find(|(n, _, _)| n == name) {
            entry.2.push(value);
        } else if self.values.len() < MAX_METRICS {
            self.values.push((name.to_string(), unit, vec![value]));
        } else {
            tracing::warn!(metric = name, "EMF metric limit reached, value dropped");
        }
    }

    /// Adds a searchable property (not a metric, not a dimension), e.g. a request id.
    pub fn property(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        self.properties.insert(name.into(), value.into());
    }

    /// Whether there is nothing to flush.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The EMF document for `timestamp_ms` (milliseconds since the epoch).
    pub fn to_emf(&self, timestamp_ms: i64) -> Value {
        let mut root = Map::new();
        for (k, v) in &self.properties {
            root.insert(k.clone(), v.clone());
        }
        for (name, value) in &self.dimensions {
            root.insert(name.clone(), Value::String(value.clone()));
        }
        let mut definitions = Vec::with_capacity(self.values.len());
        for (name, unit, values) in &self.values {
            definitions.push(json!({"Name": name, "Unit": unit.as_str()}));
            let value = match values.as_slice() {
                [one] => json!(one),
                many => json!(many),
            };
            root.insert(name.clone(), value);
        }
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|(k, _)| k.as_str()).collect();
        root.insert(
            "_aws".to_string(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [dimension_names],
                    "Metrics": definitions,
                }],
            }),
        );
        Value::Object(root)
    }

    /// Writes one EMF line to stdout and clears the values (dimensions and properties
    /// stay). Nothing is written when no value was recorded.
    pub fn flush(&mut self) {
        if self.is_empty() {
            return;
        }
        let line = self
            .to_emf(chrono::Utc::now().timestamp_millis())
            .to_string();
        let mut out = std::io::stdout().lock();
        // Metrics are best effort: a closed stdout must not fail the invocation.
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
        self.values.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_document_shape() {
        let mut m = Metrics::new("ServerlessEtl").dimension("function", "s3-processor");
        m.put("RowsIn", 42.0, Unit::Count);
        m.put("Duration", 12.5, Unit::Milliseconds);
        m.put("Duration", 7.0, Unit::Milliseconds);
        m.put("Bad", f64::NAN, Unit::Count);
        m.property("requestId", "abc");
        let doc = m.to_emf(1_700_000_000_000);
        assert_eq!(
            doc,
            json!({
                "_aws": {
                    "Timestamp": 1_700_000_000_000_i64,
                    "CloudWatchMetrics": [{
                        "Namespace": "ServerlessEtl",
                        "Dimensions": [["function"]],
                        "Metrics": [
                            {"Name": "RowsIn", "Unit": "Count"},
                            {"Name": "Duration", "Unit": "Milliseconds"}
                        ]
                    }]
                },
                "function": "s3-processor",
                "RowsIn": 42.0,
                "Duration": [12.5, 7.0],
                "requestId": "abc"
            })
        );
    }

    #[test]
    fn metric_limit() {
        let mut m = Metrics::new("N");
        for i in 0..(MAX_METRICS + 5) {
            m.put(&format!("m{i}"), 1.0, Unit::Count);
        }
        let doc = m.to_emf(0);
        let defs = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap();
        assert_eq!(defs.len(), MAX_METRICS);
        m.flush();
        assert!(m.is_empty());
    }
}
