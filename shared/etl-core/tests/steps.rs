//! Every step and quality rule on small inputs.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

mod common;

use common::*;
use etl_core::polars::prelude::*;
use etl_core::spec::RuleAction;
use etl_core::{EtlError, RunStatus};

fn spec(steps: &str, rules: &str) -> String {
    format!(
        "\
name: t
source: {{prefix: raw/}}
schema:
  - {{name: id, type: bigint}}
  - {{name: email, type: string}}
  - {{name: cc, type: string}}
  - {{name: amount, type: double}}
  - {{name: day, type: date}}
  - {{name: code, type: string}}
steps:
{steps}
quality:
  rules:
{rules}
"
    )
}

const DATA: &[u8] = b"id,email,cc,amount,day,code\n\
1,a@x.com,US,10,2024-12-31,7\n\
2,b@y.org,GB,,2024-01-01,8\n\
2,b@y.org,GB,,2024-01-01,8\n\
3,c-at-z,FR,-5,2020-06-01,x\n\
3,other@z.net,JP,300,,9\n";

fn ids(r: &Run) -> Vec<Option<i64>> {
    r.output("id")
        .column("id")
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .collect()
}

#[test]
fn deduplicate_on_all_columns_or_on_keys_keeps_the_first() {
    let r = run(&spec("  - deduplicate: {}", "    []"), DATA, "x.csv").unwrap();
    assert_eq!(r.manifest.counts.duplicates, 1);
    let r = run(
        &spec("  - deduplicate: {columns: [id]}", "    []"),
        DATA,
        "x.csv",
    )
    .unwrap();
    assert_eq!(r.manifest.counts.duplicates, 2);
    assert_eq!(
        strings(&r.output("id"), "email")[2].as_deref(),
        Some("c-at-z"),
        "first kept"
    );
}

#[test]
fn fill_null_uses_the_column_type() {
    let r = run(
        &spec(
            "  - fill_null: {amount: 0, day: '1999-01-01', email: none@x.com}",
            "    []",
        ),
        DATA,
        "x.csv",
    )
    .unwrap();
    let out = r.output("id");
    assert_eq!(out.column("amount").unwrap().null_count(), 0);
    assert_eq!(out.column("amount").unwrap().dtype(), &DataType::Float64);
    assert_eq!(strings(&out, "day")[4].as_deref(), Some("1999-01-01"));
}

#[test]
fn filter_quarantines_with_the_step_name_and_null_is_false() {
    let r = run(
        &spec(
            "  - filter: {name: positive, where: 'amount > 0'}",
            "    []",
        ),
        DATA,
        "x.csv",
    )
    .unwrap();
    assert_eq!(ids(&r), [Some(1), Some(3)]);
    assert_eq!(
        r.manifest.counts.quarantined_by_reason["filter:positive"],
        3
    );
    let reason = strings(&r.quarantine(), "_reject_reason")[0]
        .clone()
        .unwrap();
    assert_eq!(reason, "filter positive: `amount > 0` is not true");
}

#[test]
fn derived_columns_by_sql_case_split_and_regex() {
    let steps = "  - derive: {column: upper_cc, sql: \"upper(cc) || '-' || cast(id as varchar)\"}
  - derive:
      column: size
      case:
        when:
          - {if: 'amount >= 100', then: big}
          - {if: 'amount >= 0', then: small}
  - derive: {column: domain, split: {from: email, separator: '@', index: 1}}
  - derive: {column: masked, regex_replace: {from: email, pattern: '^[^@]+', replacement: '***'}}
  - processed_at: {column: loaded_at}";
    let r = run(&spec(steps, "    []"), DATA, "x.csv").unwrap();
    let out = r.output("id");
    assert_eq!(strings(&out, "upper_cc")[0].as_deref(), Some("US-1"));
    assert_eq!(
        strings(&out, "size"),
        opt(&[Some("small"), None, None, None, Some("big")]),
        "no branch holds and no else: null"
    );
    assert_eq!(strings(&out, "domain")[3], None, "no '@': null part");
    assert_eq!(strings(&out, "masked")[0].as_deref(), Some("***@x.com"));
    assert!(out.column("loaded_at").is_ok());
}

#[test]
fn split_takes_one_piece_and_null_past_the_last() {
    let steps = "  - derive: {column: first, split: {from: email, separator: '@', index: 0}}
  - derive: {column: second, split: {from: email, separator: '@', index: 1}}
  - derive: {column: third, split: {from: email, separator: '::', index: 2}}
  - derive: {column: accent, split: {from: email, separator: 'é', index: 1}}";
    let data = "id,email,cc,amount,day,code\n1,a@b@c,,,,\n2,@,,,,\n3,,,,,\n4,x::y::z,,,,\n\
                5,x::y,,,,\n6,aébéc,,,,\n";
    let r = run(&spec(steps, "    []"), data.as_bytes(), "x.csv").unwrap();
    let out = r.output("id");
    let n = None;
    assert_eq!(
        strings(&out, "first"),
        opt(&[
            Some("a"),
            Some(""),
            n,
            Some("x::y::z"),
            Some("x::y"),
            Some("aébéc")
        ])
    );
    assert_eq!(
        strings(&out, "second"),
        opt(&[Some("b"), Some(""), n, n, n, n]),
        "a trailing separator leaves an empty last piece"
    );
    assert_eq!(strings(&out, "third"), opt(&[n, n, n, Some("z"), n, n]));
    assert_eq!(strings(&out, "accent"), opt(&[n, n, n, n, n, Some("b")]));
}

#[test]
fn join_adds_reference_columns_and_keeps_every_row() {
    let steps = "  - join: {path: shared/etl-core/tests/fixtures/countries.csv, on: cc, reference_on: code, columns: [country_name]}";
    let r = run(&spec(steps, "    []"), DATA, "x.csv").unwrap();
    assert_eq!(r.manifest.counts.rows_out, 5);
    let out = r.output("id");
    assert_eq!(
        strings(&out, "country_name"),
        opt(&[
            Some("United States"),
            Some("United Kingdom"),
            Some("United Kingdom"),
            None,
            Some("Japan")
        ])
    );
    assert!(out.column("region").is_err(), "only the listed columns");
}

#[test]
fn join_refuses_a_reference_with_duplicate_keys() {
    let steps = "  - join: {path: shared/etl-core/tests/fixtures/countries_dup.csv, on: cc, reference_on: code}";
    let err = run(&spec(steps, "    []"), DATA, "x.csv").err().unwrap();
    let EtlError::Spec(e) = err else {
        panic!("{err}")
    };
    assert!(e.message.contains("duplicate values in key `code`"), "{e}");
    assert!(e.line.is_some());
}

#[test]
fn cast_rejects_values_that_do_not_convert() {
    let r = run(
        &spec("  - cast: {column: code, to: bigint}", "    []"),
        DATA,
        "x.csv",
    )
    .unwrap();
    assert_eq!(
        r.manifest.counts.quarantined_by_reason["invalid_cast:code"],
        1
    );
    let q = r.quarantine();
    assert_eq!(
        strings(&q, "code"),
        opt(&[Some("x")]),
        "original value kept"
    );
    assert_eq!(
        strings(&q, "_reject_reason")[0].as_deref(),
        Some("field 'code': 'x' is not a valid bigint")
    );
    assert_eq!(
        r.output("id").column("code").unwrap().dtype(),
        &DataType::Int64
    );
}

#[test]
fn type_errors_in_expressions_are_found_before_reading_data() {
    let err = common::compile(
        &spec(
            "  - filter: {name: f, where: \"day > 'not a date' AND email + 1 > 0\"}",
            "    []",
        ),
        &repo_root(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, EtlError::Spec(_)), "{err}");
}

#[test]
fn row_level_rules_measure_then_quarantine() {
    let rules = "    - {rule: ColumnValues, column: email, matches: '[^@]+@[^@]+', threshold: 0.7}
    - {rule: ColumnValues, column: amount, between: [0, 100], action: alert}
    - {rule: ColumnValues, column: cc, in: [US, GB, JP], action: alert}
    - {rule: IsComplete, column: amount, action: alert}";
    let r = run(&spec("  - deduplicate: {}", rules), DATA, "x.csv").unwrap();
    let q = &r.manifest.quality;
    let email = &q.rules[0];
    assert_eq!((email.failing_rows, email.evaluated_rows), (1, 4));
    assert!(
        (email.actual - 0.75).abs() < 1e-9
            && email.passed
            && email.action == RuleAction::Quarantine
    );
    assert_eq!(
        r.manifest.counts.quarantined_by_reason["rule:ColumnValues:email"],
        1
    );
    // Evaluated on all four rows: nulls pass ColumnValues, -5 and 300 fail the range.
    let range = &q.rules[1];
    assert_eq!((range.failing_rows, range.passed), (2, false));
    assert_eq!(q.rules[2].failing_rows, 1, "FR not allowed");
    assert_eq!(q.rules[3].failing_rows, 1, "one null amount");
    assert_eq!(r.manifest.counts.rows_out, 3, "alert rules keep rows");
    assert!((q.score - 0.25).abs() < 1e-9);
    assert!(q.alert && q.passed);
}

#[test]
fn dataset_rules_and_fail_action() {
    let rules = "    - {rule: Completeness, column: amount, threshold: 0.5}
    - {rule: Uniqueness, column: id, threshold: 0.9, action: fail}
    - {rule: IsUnique, column: email}
    - {rule: RowCount, min: 1, max: 10}
    - {rule: ColumnExists, column: code}
    - {rule: ColumnExists, column: nope}
    - {rule: DataFreshness, column: day, max_age: 30d, threshold: 0.2}";
    let r = run(&spec("  - deduplicate: {}", rules), DATA, "x.csv").unwrap();
    let q = &r.manifest.quality;
    let by = |i: usize| (&q.rules[i].actual, q.rules[i].passed);
    assert_eq!(by(0), (&0.75, true));
    assert_eq!(by(1), (&0.75, false), "ids 1,2,3,3: 3 of 4 values unique");
    assert_eq!(by(2), (&1.0, true));
    assert_eq!(by(3), (&4.0, true));
    assert_eq!(by(4), (&1.0, true));
    assert_eq!(by(5), (&0.0, false));
    assert_eq!(
        by(6),
        (&0.25, true),
        "one of four days within 30 days of 2025-01-01"
    );
    assert!(!q.passed);
    assert_eq!(r.manifest.status, RunStatus::QualityFailed);
}

#[test]
fn uniqueness_counts_repeats_among_values_not_nulls() {
    // No dedup: ids 1,2,2,3,3 and amounts 10,null,null,-5,300.
    let rules = "    - {rule: Uniqueness, column: id}
    - {rule: Uniqueness, column: amount}";
    let r = run(&spec("  []", rules), DATA, "x.csv").unwrap();
    let q = &r.manifest.quality;
    assert_eq!(q.rules[0].actual, 0.6, "3 of 5 ids are first occurrences");
    assert_eq!(q.rules[1].actual, 1.0, "the two nulls are not a repeat");
}

#[test]
fn join_reads_a_parquet_reference_and_types_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("countries.parquet");
    let mut reference = df!("code" => ["US", "JP"], "population_m" => [335i64, 124]).unwrap();
    ParquetWriter::new(std::fs::File::create(&path).unwrap())
        .finish(&mut reference)
        .unwrap();
    let steps = format!(
        "  - join: {{path: '{}', on: cc, reference_on: code}}",
        path.display()
    );
    let r = run(&spec(&steps, "    []"), DATA, "x.csv").unwrap();
    let out = r.output("id");
    let population: Vec<Option<i64>> = out
        .column("population_m")
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(population, [Some(335), None, None, None, Some(124)]);
}
