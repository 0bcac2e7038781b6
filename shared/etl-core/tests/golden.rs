//! The customers spec on the committed sample, read back value by value.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

mod common;

use common::*;
use etl_core::polars::prelude::*;

fn customers_run(batch_size: usize) -> Run {
    let root = repo_root();
    let spec = std::fs::read_to_string(root.join("infra/pipelines/customers.yaml")).unwrap();
    let input = std::fs::read(root.join("infra/samples/customers.csv")).unwrap();
    run_with(&spec, &input, "infra/samples/customers.csv", batch_size).unwrap()
}

#[test]
fn customers_sample_counts_add_up_with_every_reason() {
    let run = customers_run(4);
    let c = &run.manifest.counts;
    assert_eq!(
        (c.rows_in, c.rows_out, c.duplicates, c.quarantined),
        (23, 13, 2, 8)
    );
    let reasons: Vec<(&str, u64)> = c
        .quarantined_by_reason
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        reasons,
        [
            ("filter:email_has_at", 2),
            ("filter:non_negative_amount", 1),
            ("invalid_value:purchase_amount", 1),
            ("invalid_value:signup_date", 1),
            ("malformed_record", 1),
            ("rule:ColumnValues:email", 1),
            ("rule:IsComplete:customer_id", 1),
        ]
    );
    assert_eq!(run.manifest.outputs.iter().map(|f| f.rows).sum::<u64>(), 13);
    assert_eq!(run.manifest.quarantine.as_ref().unwrap().rows, 8);
}

#[test]
fn customers_sample_output_matches_value_by_value() {
    let run = customers_run(5);
    let df = run.output("customer_id");
    let ids: Vec<Option<i64>> = df
        .column("customer_id")
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(
        ids,
        [
            1001, 1002, 1003, 1004, 1005, 1008, 1009, 1012, 1013, 1016, 1017, 1018, 1020
        ]
        .map(Some)
    );
    assert_eq!(
        strings(&df, "customer_segment"),
        opt(&[
            "High", "Medium", "Low", "High", "Medium", "High", "Low", "Medium", "Medium", "High",
            "Medium", "Low", "High"
        ]
        .map(Some))
    );
    assert_eq!(
        strings(&df, "amount_category"),
        opt(&[
            "medium", "low", "low", "high", "low", "medium", "low", "low", "high", "medium",
            "medium", "medium", "high"
        ]
        .map(Some))
    );
    assert_eq!(
        strings(&df, "country"),
        opt(&[
            Some("US"),
            Some("US"),
            Some("ES"),
            Some("GB"),
            Some("GB"),
            Some("JP"),
            Some("PT"),
            Some("IE"),
            Some("IT"),
            Some("MX"),
            None,
            Some("US"),
            Some("IN")
        ])
    );
    let names = strings(&df, "name");
    assert_eq!(names[3].as_deref(), Some("Unknown"), "null name filled");
    let amounts: Vec<Option<f64>> = df.column("amount").unwrap().f64().unwrap().iter().collect();
    assert_eq!(amounts[4], Some(0.0), "null amount filled with 0");
    assert_eq!(amounts[0], Some(120.5));
    assert_eq!(
        strings(&df, "email_domain"),
        opt(&[
            "example.com",
            "example.org",
            "correo.es",
            "example.com",
            "example.com",
            "example.jp",
            "example.pt",
            "example.ie",
            "example.it",
            "example.mx",
            "example.com",
            "example.com",
            "example.in"
        ]
        .map(Some))
    );
    assert_eq!(
        strings(&df, "clean_description"),
        opt(&[
            "Premium plan annual",
            "Basic plan monthly",
            "Starter kit 3",
            "Enterprise seats x10",
            "Addon extra storage",
            "Team plan  5 users",
            "Multilinedescription here",
            "He said great",
            "Boundary values",
            "ncd ame",
            "No country",
            "Exactly one hundred",
            "Large order",
        ]
        .map(Some))
    );
    assert_eq!(
        strings(&df, "description")[6].as_deref(),
        Some("Multi-line\ndescription here"),
        "quoted newline kept in the raw column"
    );
    assert_eq!(
        strings(&df, "signup_date")[0].as_deref(),
        Some("2024-01-15")
    );
    // Types Athena reads: bigint, double, date, timestamp(us, UTC).
    assert_eq!(df.column("customer_id").unwrap().dtype(), &DataType::Int64);
    assert_eq!(df.column("signup_date").unwrap().dtype(), &DataType::Date);
    let processed = df.column("processed_at").unwrap();
    assert_eq!(
        processed.dtype(),
        &DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
    );
    let us = processed.to_physical_repr();
    assert!(
        us.i64()
            .unwrap()
            .iter()
            .all(|v| v == Some(now().timestamp_micros()))
    );
}

#[test]
fn customers_quarantine_names_line_and_reason() {
    let run = customers_run(3);
    let q = run.quarantine();
    let q = q
        .sort(["_source_line"], SortMultipleOptions::default())
        .unwrap();
    let lines: Vec<Option<u64>> = q
        .column("_source_line")
        .unwrap()
        .u64()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(lines, [7, 8, 13, 14, 16, 18, 19, 23].map(Some));
    assert_eq!(
        strings(&q, "_reject_code"),
        opt(&[
            "filter:non_negative_amount",
            "filter:email_has_at",
            "rule:ColumnValues:email",
            "invalid_value:purchase_amount",
            "rule:IsComplete:customer_id",
            "filter:email_has_at",
            "malformed_record",
            "invalid_value:signup_date",
        ]
        .map(Some))
    );
    let reasons = strings(&q, "_reject_reason");
    assert_eq!(
        reasons[3].as_deref(),
        Some("field 'purchase_amount': 'abc' is not a valid double")
    );
    assert_eq!(reasons[6].as_deref(), Some("expected 8 fields, found 7"));
    // Values are kept as read, so a fixed row can be replayed.
    assert_eq!(strings(&q, "amount")[0].as_deref(), Some("-25.00"));
    assert_eq!(strings(&q, "purchase_amount")[3].as_deref(), Some("abc"));
    assert!(
        strings(&q, "_raw")[6]
            .as_deref()
            .unwrap()
            .starts_with("1015,Olivia Green")
    );
}

#[test]
fn partitions_follow_hive_layout_and_batching_does_not_change_results() {
    let small = customers_run(2);
    let large = customers_run(10_000);
    let paths = |r: &Run| {
        r.manifest
            .outputs
            .iter()
            .map(|f| f.path.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(paths(&small), paths(&large));
    assert!(paths(&small).contains(
        &"country=US/customer_segment=High/infra_samples_customers.csv.parquet".to_string()
    ));
    assert!(
        paths(&small)
            .iter()
            .any(|p| p.starts_with("country=__HIVE_DEFAULT_PARTITION__/"))
    );
    assert_eq!(small.output("customer_id"), large.output("customer_id"));
    // Partition columns live in the path, not in the files.
    let first = parquet_files(&small.data_dir())[0].clone();
    let df = ParquetReader::new(std::fs::File::open(first).unwrap())
        .finish()
        .unwrap();
    assert!(df.column("country").is_err());
    // The manifest lists them as partition columns with Glue types.
    let schema = &small.manifest.schema;
    let last_two: Vec<(&str, bool)> = schema[schema.len() - 2..]
        .iter()
        .map(|c| (c.name.as_str(), c.partition))
        .collect();
    assert_eq!(last_two, [("country", true), ("customer_segment", true)]);
    assert!(
        schema
            .iter()
            .any(|c| c.name == "processed_at" && c.glue_type == "timestamp")
    );
}

#[test]
fn a_rerun_rewrites_the_same_files_with_the_same_bytes() {
    let a = customers_run(4);
    let b = customers_run(4);
    let files_a = parquet_files(&a.data_dir());
    let files_b = parquet_files(&b.data_dir());
    assert_eq!(files_a.len(), files_b.len());
    for (fa, fb) in files_a.iter().zip(&files_b) {
        assert_eq!(
            fa.strip_prefix(a.data_dir()).unwrap(),
            fb.strip_prefix(b.data_dir()).unwrap()
        );
        assert_eq!(std::fs::read(fa).unwrap(), std::fs::read(fb).unwrap());
    }
}

#[test]
fn workers_change_neither_the_files_nor_their_order() {
    let root = repo_root();
    // Dedup last, on keys that a slow row and a fast row share.
    let spec = std::fs::read_to_string(root.join("infra/pipelines/customers.yaml"))
        .unwrap()
        .replacen("  - deduplicate: {}\n", "", 1)
        .replacen(
            "  - processed_at: {}\n",
            "  - processed_at: {}\n  - deduplicate: {columns: [customer_id, clean_description]}\n",
            1,
        );
    assert!(spec.contains("{}\n  - deduplicate: {columns"));
    let sample = std::fs::read_to_string(root.join("infra/samples/customers.csv")).unwrap();
    // One row per batch, each row followed by a copy that differs only in punctuation the
    // steps strip from the description: the first copy has 20,000 more characters to clean,
    // so the worker on the second reaches dedup first. Dedup must still keep the first.
    // The sample's defective rows come last, so the quarantine file has every reason.
    let (header, body) = sample.split_once('\n').unwrap();
    let mut input = format!("{header}\n");
    let line = |i: usize, noise: &str| {
        format!(
            "{i},Name {i},user{i}@example.com,{},{}.5,{}.25,item {i}{noise},2024-01-{:02}\n",
            ["US", "DE", "JP", ""][i % 4],
            (i * 37) % 900,
            (i * 53) % 1500,
            1 + i % 28
        )
    };
    let noise = "!".repeat(20_000);
    for i in 0..300 {
        input.push_str(&line(i, &noise));
        input.push_str(&line(i, ""));
    }
    input.push_str(body);
    let run =
        |threads| run_threads(&spec, input.as_bytes(), "pairs.csv", 1, Some(threads)).unwrap();
    let (one, four) = (run(1), run(4));
    assert_eq!(one.manifest.counts, four.manifest.counts);
    assert_eq!(one.manifest.counts.duplicates, 300 + 2);
    // Every file, byte for byte (as a digest, to keep a failure readable).
    let digest = |path: &std::path::Path| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::fs::read(path).unwrap().hash(&mut h);
        h.finish()
    };
    let files = |r: &Run| {
        let mut files: Vec<_> = parquet_files(&r.data_dir())
            .into_iter()
            .map(|p| {
                (
                    p.strip_prefix(r.data_dir()).unwrap().to_path_buf(),
                    digest(&p),
                )
            })
            .collect();
        files.push(("quarantine".into(), digest(&r.quarantine_path())));
        files
    };
    assert_eq!(files(&one), files(&four));
}

#[test]
fn a_failing_batch_stops_every_worker_with_its_error() {
    // `code` is text; a strict SQL cast of it fails on the first batch holding a letter.
    // Workers with later batches wait at dedup for that batch's turn: the failure must
    // wake them, and the run must end with the cast's error, not hang or publish files.
    let spec = "\
name: t
source: {prefix: raw/}
schema:
  - {name: id, type: bigint}
  - {name: code, type: string}
steps:
  - derive: {column: n, sql: \"CAST(code AS BIGINT)\"}
  - deduplicate: {}
";
    let mut input = String::from("id,code\n");
    for i in 0..400 {
        input.push_str(&format!(
            "{i},{}\n",
            if i == 150 { "x".into() } else { i.to_string() }
        ));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = run_threads(spec, input.as_bytes(), "codes.csv", 3, Some(4));
        tx.send(result.err().map(|e| e.to_string())).unwrap();
    });
    let error = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the run hung after a worker failed")
        .expect("the run must fail");
    // The file, line, step and value that failed (a runtime error, not the dry run's).
    assert_eq!(
        error,
        "bad input codes.csv line 152: steps[0].derive `CAST(code AS BIGINT)`: \
         CAST to bigint: 'x' is not a valid bigint"
    );
}

#[test]
fn the_error_reported_is_the_first_in_the_file_whatever_worker_meets_it() {
    // Bad codes in many batches: a worker with a later batch often fails first. The run
    // still names the first bad record, as a run with one worker would, every time.
    let spec = "\
name: t
source: {prefix: raw/}
schema:
  - {name: id, type: bigint}
  - {name: code, type: string}
steps:
  - deduplicate: {}
  - derive: {column: n, sql: \"CAST(code AS BIGINT) + id\"}
";
    let mut input = String::from("id,code\n");
    for i in 0..600 {
        let bad = i >= 150 && i % 7 == 3;
        input.push_str(&format!(
            "{i},{}\n",
            if bad { format!("x{i}") } else { i.to_string() }
        ));
    }
    let first = (150..).find(|i| i % 7 == 3).unwrap();
    let expected = format!(
        "bad input codes.csv line {}: steps[1].derive `CAST(code AS BIGINT) + id`: \
         CAST to bigint: 'x{first}' is not a valid bigint",
        first + 2
    );
    for _ in 0..25 {
        let result = run_threads(spec, input.as_bytes(), "codes.csv", 5, Some(4));
        assert_eq!(result.err().map(|e| e.to_string()), Some(expected.clone()));
    }
}
