//! Schema inference from a sample of an input, for `etl schema` and starter specs.

use std::io::{BufRead, Read};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use serde::Serialize;
use serde_json::Value;

use crate::error::{EtlError, InputError};
use crate::limits::{self, Guarded, Limits, Source};
use crate::read::{self, JsonSplitter};
use crate::spec::SourceFormat;
use crate::types::{self, ColumnType};

/// A column as inferred from the sample.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InferredColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// No value in the sample was null.
    pub complete: bool,
}

/// Infers column names and the narrowest type every sampled value parses as.
pub fn infer(
    input: impl Read,
    name: &str,
    format: SourceFormat,
    sample_rows: usize,
) -> Result<(SourceFormat, Vec<InferredColumn>), EtlError> {
    let count = Arc::new(AtomicU64::new(0));
    let source = Source {
        inner: input,
        count: Arc::clone(&count),
    };
    let decoded = read::decompress(source, name).map_err(|e| limits::classify(e, name))?;
    // Sampling marks no record boundaries: only the whole input is limited.
    let limits = Limits {
        max_record_bytes: u64::MAX,
        max_decompressed_bytes: crate::spec::default_max_decompressed_bytes(),
        max_compression_ratio: crate::spec::default_max_compression_ratio(),
    };
    let mut decoded = Guarded::new(decoded, limits, count, true);
    let format =
        read::resolve_format(format, name, &mut decoded).map_err(|e| limits::classify(e, name))?;
    let (names, rows) = match format {
        SourceFormat::Json | SourceFormat::Ndjson => {
            sample_json(&mut decoded, name, format, sample_rows)
        }
        SourceFormat::Csv | SourceFormat::Auto => sample_csv(&mut decoded, name, sample_rows),
    }
    .map_err(|e| limits::classify(e, name))?;
    let columns = names
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let values: Vec<Option<&str>> = rows
                .iter()
                .map(|r| r.get(i).and_then(|v| v.as_deref()))
                .collect();
            InferredColumn {
                name: n,
                ty: narrowest(&values),
                complete: values.iter().all(|v| v.is_some_and(|s| !s.is_empty())),
            }
        })
        .collect();
    Ok((format, columns))
}

fn narrowest(values: &[Option<&str>]) -> ColumnType {
    let present: Vec<&str> = values
        .iter()
        .flatten()
        .copied()
        .filter(|s| !s.is_empty())
        .collect();
    if present.is_empty() {
        return ColumnType::String;
    }
    let all = |f: &dyn Fn(&str) -> bool| present.iter().all(|v| f(v));
    if all(&|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "false")) {
        ColumnType::Boolean
    } else if all(&|v| types::parse_bigint(v).is_ok()) {
        ColumnType::Bigint
    } else if all(&|v| types::parse_double(v).is_ok()) {
        ColumnType::Double
    } else if all(&|v| v.len() == 10 && types::parse_date(v, None).is_ok()) {
        ColumnType::Date
    } else if all(&|v| types::parse_timestamp(v, None).is_ok()) {
        ColumnType::Timestamp
    } else {
        ColumnType::String
    }
}

type Sample = (Vec<String>, Vec<Vec<Option<String>>>);

fn sample_csv(input: &mut dyn BufRead, name: &str, limit: usize) -> Result<Sample, EtlError> {
    let head = input
        .fill_buf()
        .map_err(|e| EtlError::io(format!("reading {name}"), e))?;
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        input.consume(3);
    }
    let delimiter = if name.to_ascii_lowercase().contains(".tsv") {
        b'\t'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(input);
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| InputError::new(name, e.to_string()).at_line(1))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut rows = Vec::new();
    for record in reader.records().take(limit) {
        let record = record.map_err(|e| InputError::new(name, e.to_string()))?;
        rows.push(record.iter().map(|v| Some(v.to_string())).collect());
    }
    Ok((names, rows))
}

fn sample_json(
    input: &mut dyn BufRead,
    name: &str,
    format: SourceFormat,
    limit: usize,
) -> Result<Sample, EtlError> {
    let mut objects = Vec::new();
    if format == SourceFormat::Ndjson {
        for line in input.lines().take(limit) {
            let line = line.map_err(|e| EtlError::io(format!("reading {name}"), e))?;
            if let Ok(Value::Object(o)) = serde_json::from_str(&line) {
                objects.push(o);
            }
        }
    } else {
        let mut splitter = JsonSplitter::new(input, name);
        while let Some((_, bytes)) = splitter.next_value()? {
            if let Ok(Value::Object(o)) = serde_json::from_slice(&bytes) {
                objects.push(o);
            }
            if objects.len() >= limit {
                break;
            }
        }
    }
    let mut names: Vec<String> = Vec::new();
    let flat: Vec<Vec<(String, Option<String>)>> = objects
        .iter()
        .map(|o| {
            let mut out = Vec::new();
            flatten(o, "", &mut out);
            for (k, _) in &out {
                if !names.contains(k) {
                    names.push(k.clone());
                }
            }
            out
        })
        .collect();
    let rows = flat
        .into_iter()
        .map(|pairs| {
            names
                .iter()
                .map(|n| {
                    pairs
                        .iter()
                        .find(|(k, _)| k == n)
                        .and_then(|(_, v)| v.clone())
                })
                .collect()
        })
        .collect();
    Ok((names, rows))
}

/// Nested objects become `parent.child` columns, as pandas' json_normalize does.
fn flatten(
    o: &serde_json::Map<String, Value>,
    prefix: &str,
    out: &mut Vec<(String, Option<String>)>,
) {
    for (k, v) in o {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(inner) => flatten(inner, &key, out),
            Value::Null => out.push((key, None)),
            Value::String(s) => out.push((key, Some(s.clone()))),
            other => out.push((key, Some(other.to_string()))),
        }
    }
}

/// A starter spec for the inferred columns.
pub fn starter_spec(dataset: &str, format: SourceFormat, columns: &[InferredColumn]) -> String {
    let mut s = format!(
        "# Starter spec inferred from a sample: check the types, then add steps and rules.\n\
         name: {dataset}\nsource:\n  prefix: raw-data/{dataset}/\n  format: {}\nschema:\n",
        serde_json::to_value(format)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_else(|| "auto".into())
    );
    for c in columns {
        s.push_str(&format!(
            "  - {{name: {}, type: {}{}}}\n",
            yaml_key(&c.name),
            c.ty,
            if c.complete { ", required: true" } else { "" }
        ));
    }
    s.push_str("steps:\n  - deduplicate: {}\nquality:\n  rules:\n    - {rule: RowCount, min: 1}\noutput:\n  compression: zstd\n");
    s
}

fn yaml_key(name: &str) -> String {
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !name.is_empty()
    {
        name.to_string()
    } else {
        format!("{name:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_types_are_the_narrowest_that_fit() {
        let csv = "id,amount,ok,day,at,name\n1,2.5,true,2024-01-01,2024-01-01T00:00:00Z,a\n2,3,false,2024-01-02,2024-01-02 10:00:00,\n";
        let (format, cols) = infer(csv.as_bytes(), "x.csv", SourceFormat::Auto, 100).unwrap();
        assert_eq!(format, SourceFormat::Csv);
        let types: Vec<String> = cols.iter().map(|c| c.ty.to_string()).collect();
        assert_eq!(
            types,
            ["bigint", "double", "boolean", "date", "timestamp", "string"]
        );
        assert!(cols[0].complete && !cols[5].complete);
        let spec = starter_spec("t", format, &cols);
        let parsed = crate::spec::PipelineSpec::from_yaml(&spec, "starter").unwrap();
        assert_eq!(parsed.schema.len(), 6);
    }

    #[test]
    fn nested_json_is_flattened() {
        let json = r#"[{"id": 1, "user": {"name": "a", "geo": {"cc": "US"}}}, {"id": 2}]"#;
        let (format, cols) = infer(json.as_bytes(), "x.json", SourceFormat::Auto, 100).unwrap();
        assert_eq!(format, SourceFormat::Json);
        let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "user.name", "user.geo.cc"]);
        assert_eq!(cols[0].ty, ColumnType::Bigint);
    }
}
