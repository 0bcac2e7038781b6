//! Quarantine files hold the text that was read, whichever stage rejected the row.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

mod common;

use common::*;
use etl_core::polars::prelude::*;

/// Typing changes every column here: `NA` is null and then filled, the date has a format,
/// the decimal gets its scale, the code is cast.
const SPEC: &str = "\
name: t
source: {prefix: raw/, null_values: [NA]}
schema:
  - {name: id, type: bigint}
  - {name: name, type: string}
  - {name: day, type: date, format: '%d/%m/%Y'}
  - {name: amount, type: 'decimal(8,2)'}
  - {name: code, type: string}
steps:
  - fill_null: {name: anonymous}
  - filter: {name: positive, where: 'amount >= 0'}
  - cast: {column: code, to: bigint}
quality:
  rules:
    - {rule: ColumnValues, column: name, matches: '(?s)[A-Z].*', action: quarantine}
";

const COLUMNS: [&str; 5] = ["id", "name", "day", "amount", "code"];

/// Each row's fields as text, and the code it is quarantined with (None: kept).
const ROWS: [([&str; 5], Option<&str>); 7] = [
    (["1", "Ann", "25/05/2023", "12.5", "7"], None),
    (
        ["2", "NA", "25/05/2023", "-1", "8"],
        Some("filter:positive"),
    ),
    (
        ["3", "Smith, \"Jo\"", "01/02/2024", "3", "x"],
        Some("invalid_cast:code"),
    ),
    (
        ["4", "NA", "03/04/2024", "4.5", "9"],
        Some("rule:ColumnValues:name"),
    ),
    (["5", "Zoë", "29/02/2024", "0", "10"], None),
    (
        ["6", "Line\nbreak", "01/01/2000", "-0.5", "11"],
        Some("filter:positive"),
    ),
    // Rejected while typing: it was always quarantined as read.
    (
        ["7", "Zoe", "31/02/2024", "1", "12"],
        Some("invalid_value:day"),
    ),
];

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A JSON object of a row: numbers where the text is one, so the JSON text of the value is
/// the same text.
fn json_object(row: &[&str; 5]) -> String {
    let fields: Vec<String> = COLUMNS
        .iter()
        .zip(row)
        .map(|(c, v)| {
            let value = match (*c, v.parse::<f64>()) {
                ("id" | "amount", Ok(_)) => v.to_string(),
                _ => serde_json::Value::String(v.to_string()).to_string(),
            };
            format!("\"{c}\":{value}")
        })
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// The inputs, by name, and each row's line in it.
fn inputs() -> Vec<(&'static str, String, Vec<u64>)> {
    let mut csv = format!("{}\n", COLUMNS.join(","));
    let mut csv_lines = Vec::new();
    let mut line = 2;
    for (row, _) in &ROWS {
        csv_lines.push(line);
        let record: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
        let record = record.join(",");
        line += record.matches('\n').count() as u64 + 1;
        csv.push_str(&record);
        csv.push('\n');
    }
    let objects: Vec<String> = ROWS.iter().map(|(r, _)| json_object(r)).collect();
    let ndjson = objects.join("\n");
    // Minified: every value starts on line 1, so a line cannot tell the records apart.
    let array = format!("[{}]", objects.join(","));
    vec![
        ("rows.csv", csv, csv_lines),
        ("rows.ndjson", ndjson, (1..=ROWS.len() as u64).collect()),
        ("rows.json", array, vec![1; ROWS.len()]),
    ]
}

type QuarantineRow = (Option<String>, Option<u64>, Vec<Option<String>>);

#[test]
fn rows_rejected_by_steps_and_rules_keep_the_text_that_was_read() {
    for (name, input, lines) in inputs() {
        // Small batches on two workers: rejects come from several batches.
        let r = run_threads(SPEC, input.as_bytes(), name, 2, Some(2)).unwrap();
        let q = r.quarantine();
        let codes = strings(&q, "_reject_code");
        let source_lines: Vec<Option<u64>> = q
            .column("_source_line")
            .unwrap()
            .u64()
            .unwrap()
            .iter()
            .collect();
        let mut got: Vec<QuarantineRow> = (0..q.height())
            .map(|i| {
                let fields = COLUMNS.iter().map(|c| strings(&q, c)[i].clone()).collect();
                (codes[i].clone(), source_lines[i], fields)
            })
            .collect();
        let mut want: Vec<QuarantineRow> = ROWS
            .iter()
            .zip(&lines)
            .filter_map(|((row, code), line)| {
                let fields = row.iter().map(|f| Some(f.to_string())).collect();
                code.map(|c| (Some(c.to_string()), Some(*line), fields))
            })
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{name}");
        assert_eq!(
            strings(&q, "_raw"),
            vec![None; q.height()],
            "{name}: rows split into fields have no _raw"
        );
        let kept = r.output("id");
        assert_eq!(
            kept.height(),
            ROWS.iter().filter(|(_, code)| code.is_none()).count(),
            "{name}"
        );
        assert_eq!(kept.column("code").unwrap().dtype(), &DataType::Int64);
    }
}

#[test]
fn a_join_and_dedup_before_the_rejecting_step_do_not_mix_up_records() {
    // Dedup removes rows and the join reorders nothing but adds columns: the rows a later
    // filter rejects must still find their own records.
    let spec = "\
name: t
source: {prefix: raw/}
schema:
  - {name: id, type: bigint}
  - {name: country, type: string}
  - {name: amount, type: double}
steps:
  - deduplicate: {columns: [id]}
  - join: {path: shared/etl-core/tests/fixtures/countries.csv, on: country, reference_on: code, columns: [country_name]}
  - filter: {name: small, where: 'amount < 50'}
";
    let mut input = String::from("id,country,amount\n");
    let mut want = Vec::new();
    for i in 0..40u64 {
        let amount = format!("{}.{}0", (i * 7) % 100, i % 10);
        // Every fifth id comes twice; the copy has other text that must not show.
        input.push_str(&format!("{i},US,{amount}\n"));
        if i % 5 == 0 {
            input.push_str(&format!("{i},DE,{amount}9\n"));
        }
        if amount.parse::<f64>().unwrap() >= 50.0 {
            want.push(vec![Some(i.to_string()), Some("US".into()), Some(amount)]);
        }
    }
    let r = run_threads(spec, input.as_bytes(), "dups.csv", 4, Some(3)).unwrap();
    let q = r.quarantine();
    let mut got: Vec<Vec<Option<String>>> = (0..q.height())
        .map(|i| {
            ["id", "country", "amount"]
                .iter()
                .map(|c| strings(&q, c)[i].clone())
                .collect()
        })
        .collect();
    got.sort();
    want.sort();
    assert!(!want.is_empty());
    assert_eq!(got, want);
}
