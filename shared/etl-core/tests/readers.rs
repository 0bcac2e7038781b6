//! Reader edge cases. Every run also checks the count invariant (see common::run_with).

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

mod common;

use std::io::Write;

use common::*;
use etl_core::polars::prelude::*;
use etl_core::{EtlError, RunManifest};

const SPEC: &str = "\
name: t
source: {prefix: raw/}
schema:
  - {name: id, type: bigint, required: true}
  - {name: name, type: string}
  - {name: amount, type: double}
";

fn counts(m: &RunManifest) -> (u64, u64, u64, u64) {
    let c = &m.counts;
    (c.rows_in, c.rows_out, c.duplicates, c.quarantined)
}

fn ok(input: &[u8], name: &str) -> Run {
    run(SPEC, input, name).unwrap()
}

#[test]
fn quoted_fields_with_newlines_quotes_and_delimiters() {
    let r = ok(
        b"id,name,amount\n1,\"a, \"\"b\"\"\nc\",2.5\n2,plain,3\n",
        "x.csv",
    );
    assert_eq!(counts(&r.manifest), (2, 2, 0, 0));
    assert_eq!(
        strings(&r.output("id"), "name")[0].as_deref(),
        Some("a, \"b\"\nc")
    );
}

#[test]
fn crlf_and_bom_are_transparent() {
    let r = ok(b"\xEF\xBB\xBFid,name,amount\r\n1,a,1\r\n2,b,2\r\n", "x.csv");
    assert_eq!(counts(&r.manifest), (2, 2, 0, 0));
    assert_eq!(r.manifest.input_columns.found, ["id", "name", "amount"]);
    assert_eq!(
        strings(&r.output("id"), "name"),
        opt(&[Some("a"), Some("b")])
    );
}

#[test]
fn crlf_lines_are_numbered_as_in_the_file() {
    // Line 3 is bad, and line 4's quoted field spans lines 4 and 5.
    let input = b"id,name,amount\r\n1,a,1\r\nx,b,2\r\n3,\"c\r\nd\",3\r\n4,e,lots\r\n";
    let r = ok(input, "x.csv");
    assert_eq!(counts(&r.manifest), (4, 2, 0, 2));
    let lines: Vec<Option<u64>> = r
        .quarantine()
        .column("_source_line")
        .unwrap()
        .cast(&DataType::UInt64)
        .unwrap()
        .u64()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(lines, [Some(3), Some(6)]);
}

#[test]
fn empty_file_and_header_only_give_no_rows_and_no_files() {
    for input in [&b""[..], b"id,name,amount\n"] {
        let r = ok(input, "x.csv");
        assert_eq!(counts(&r.manifest), (0, 0, 0, 0));
        assert!(r.manifest.outputs.is_empty());
        assert!(r.manifest.quarantine.is_none());
    }
}

#[test]
fn ragged_rows_are_quarantined_with_their_raw_text() {
    let r = ok(b"id,name,amount\n1,a,1\n2,b\n3,c,3,extra\n4,d,4\n", "x.csv");
    assert_eq!(counts(&r.manifest), (4, 2, 0, 2));
    let q = r.quarantine();
    assert_eq!(
        strings(&q, "_reject_reason"),
        opt(&[
            Some("expected 3 fields, found 2"),
            Some("expected 3 fields, found 4")
        ])
    );
    assert_eq!(
        strings(&q, "_raw"),
        opt(&[Some("2,b"), Some("3,c,3,extra")])
    );
}

#[test]
fn a_ragged_row_is_quarantined_as_it_stands_in_the_file() {
    // Quoting kept (a delimiter and doubled quotes inside quotes, a line break inside
    // quotes), CRLF line ends and blank lines between records, none of them in `_raw`.
    let records = [
        "1,a,1",
        "\"x, \"\"y\"\"\",2",
        "3,c,3,\"extra\r\nline\"",
        "4,\"d\",4",
        "5;e",
    ];
    let ragged = [1, 2, 4];
    let input = format!("id,name,amount\r\n{}\r\n", records.join("\r\n\r\n"));
    let mut lines = Vec::new();
    let mut line = 2u64;
    for r in records {
        lines.push(line);
        line += r.matches('\n').count() as u64 + 2;
    }
    let r = ok(input.as_bytes(), "x.csv");
    let q = r.quarantine();
    let want: Vec<Option<String>> = ragged
        .iter()
        .map(|&i| Some(records[i].to_string()))
        .collect();
    assert_eq!(strings(&q, "_raw"), want);
    assert_eq!(
        strings(&q, "_raw")[0].as_deref(),
        Some("\"x, \"\"y\"\"\",2")
    );
    let got_lines: Vec<Option<u64>> = q
        .column("_source_line")
        .unwrap()
        .u64()
        .unwrap()
        .iter()
        .collect();
    let want_lines: Vec<Option<u64>> = ragged.iter().map(|&i| Some(lines[i])).collect();
    assert_eq!(got_lines, want_lines);
    // The records that split are read whole, wherever they stand.
    let out = r.output("id");
    assert_eq!(strings(&out, "name"), opt(&[Some("a"), Some("d")]));
}

#[test]
fn invalid_utf8_names_the_field() {
    let inputs: [(&[u8], usize); 2] = [
        (b"id,name,amount\n1,ok,1\n2,bad\xff\xfe,2\n", 3),
        // "b\xc3" and "\xa9": the record's bytes back to back read "2bé", each field alone
        // is not UTF-8.
        (b"id,name,amount\n1,ok,1\n2,b\xc3,\xa9\n", 1),
    ];
    for (input, at) in inputs {
        let r = ok(input, "x.csv");
        assert_eq!(counts(&r.manifest), (2, 1, 0, 1));
        let reason = strings(&r.quarantine(), "_reject_reason")[0].clone();
        let expected = format!("field 'name': invalid UTF-8 at byte {at}");
        assert_eq!(reason.as_deref(), Some(expected.as_str()));
    }
}

#[test]
fn wrong_types_are_rejected_never_nulled() {
    let r = ok(b"id,name,amount\n1,a,1.5\nx,b,2\n3,c,lots\n4,d,\n", "x.csv");
    assert_eq!(counts(&r.manifest), (4, 2, 0, 2));
    let q = r.quarantine();
    assert_eq!(
        strings(&q, "_reject_code"),
        opt(&[Some("invalid_value:id"), Some("invalid_value:amount")])
    );
    let out = r.output("id");
    let amounts: Vec<Option<f64>> = out
        .column("amount")
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(amounts, [Some(1.5), None], "only an empty value is null");
}

#[test]
fn all_null_column_keeps_its_type() {
    let r = ok(b"id,name,amount\n1,,\n2,,\n", "x.csv");
    let out = r.output("id");
    assert_eq!(out.column("amount").unwrap().dtype(), &DataType::Float64);
    assert_eq!(out.column("name").unwrap().null_count(), 2);
}

#[test]
fn missing_required_column_fails_the_file_naming_it() {
    let err = run(SPEC, b"name,amount\na,1\n", "in.csv").err().unwrap();
    let EtlError::Input(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.field.as_deref(), Some("id"));
    assert_eq!(e.line, Some(1));
    assert!(e.to_string().contains("in.csv"), "{e}");
}

#[test]
fn missing_optional_column_is_null_and_extra_columns_are_dropped() {
    let r = ok(b"id,color\n1,red\n", "x.csv");
    assert_eq!(r.manifest.input_columns.dropped, ["color"]);
    let out = r.output("id");
    assert_eq!(out.column("amount").unwrap().null_count(), 1);
    let strict = SPEC.replace(
        "source: {prefix: raw/}",
        "source: {prefix: raw/, extra_columns: fail}",
    );
    let err = run(&strict, b"id,color\n1,red\n", "x.csv").err().unwrap();
    assert!(err.to_string().contains("color"), "{err}");
}

#[test]
fn json_array_ndjson_and_concatenated_objects() {
    let array = br#"[{"id": 1, "name": "a", "amount": 1.5}, {"id": 2, "amount": 2}, 7]"#;
    let r = ok(array, "x.json");
    assert_eq!(counts(&r.manifest), (3, 2, 0, 1));
    assert!(
        strings(&r.quarantine(), "_reject_reason")[0]
            .as_deref()
            .unwrap()
            .contains("found a number")
    );

    let nd = b"{\"id\": 1, \"name\": \"a\"}\n\n{\"id\": 2, broken\n{\"id\": 3}\n";
    let r = ok(nd, "x.ndjson");
    assert_eq!(
        counts(&r.manifest),
        (3, 2, 0, 1),
        "a bad line does not stop the file"
    );
    let q = r.quarantine();
    assert_eq!(
        q.column("_source_line").unwrap().u64().unwrap().get(0),
        Some(3)
    );

    let concatenated = b"{\"id\": 1}\n{\n  \"id\": 2\n}\n";
    let r = ok(concatenated, "x.json");
    assert_eq!(counts(&r.manifest), (2, 2, 0, 0));
}

#[test]
fn broken_json_array_fails_with_the_line() {
    let err = run(SPEC, b"[\n{\"id\": 1},\n{\"id\": 2\n", "x.json")
        .err()
        .unwrap();
    let EtlError::Input(e) = err else {
        panic!("{err}")
    };
    assert!(e.line.is_some(), "{e}");
    assert!(e.message.contains("invalid JSON"), "{e}");
}

#[test]
fn nested_objects_flatten_to_dotted_columns() {
    let spec = "\
name: t
source: {prefix: raw/}
schema:
  - {name: id, type: bigint}
  - {name: user.name, type: string}
  - {name: user.geo.cc, type: string}
  - {name: tags, type: string}
";
    let input =
        br#"[{"id": 1, "user": {"name": "a", "geo": {"cc": "US"}, "age": 3}, "tags": ["x", "y"]}]"#;
    let r = run(spec, input, "x.json").unwrap();
    let out = r.output("id");
    assert_eq!(strings(&out, "user.geo.cc"), opt(&[Some("US")]));
    assert_eq!(strings(&out, "tags"), opt(&[Some("[\"x\",\"y\"]")]));
    assert_eq!(r.manifest.input_columns.dropped, ["user.age"]);
}

#[test]
fn gzip_and_zstd_inputs_match_plain() {
    let plain = b"id,name,amount\n1,a,1\n2,b,2\n2,b,2\n".to_vec();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    let expected = ok(&plain, "x.csv").output("id");
    assert_eq!(ok(&gz, "x.csv.gz").output("id"), expected);
    assert_eq!(ok(&zst, "x.csv.zst").output("id"), expected);
    // By magic bytes, when the name says nothing.
    assert_eq!(ok(&gz, "x.csv").output("id"), expected);
    let r = ok(&zst, "x.csv");
    assert!(r.manifest.source.bytes < plain.len() as u64 + 20);
}
