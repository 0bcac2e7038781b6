//! The `etl` binary end to end: exit codes, messages, files, and exact counts on
//! generated data whose defects are known.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn etl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(args)
        .output()
        .expect("run etl")
}

fn repo() -> PathBuf {
    // Read at run time, not env!(): binaries are reused across checkouts sharing a target dir.
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test")).join("../..")
}

fn customers_spec() -> String {
    repo()
        .join("infra/pipelines/customers.yaml")
        .display()
        .to_string()
}

/// `etl run` with the customers spec on `input` into `output`, plus any `extra` flags.
fn run_customers(input: &Path, output: &Path, extra: &[&str]) -> Output {
    let spec = customers_spec();
    let mut args = vec![
        "run",
        "--spec",
        &spec,
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    etl(&args)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn generated_defects_are_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("customers.csv");
    let expect = dir.path().join("expect.json");
    for format in ["csv", "ndjson"] {
        let input = input.with_extension(format);
        let out = etl(&[
            "generate",
            "--rows",
            "30000",
            "--format",
            format,
            "--seed",
            "7",
            "--output",
            input.to_str().unwrap(),
            "--expect",
            expect.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let output = dir.path().join(format!("out-{format}"));
        let out = run_customers(&input, &output, &["--batch-size", "4096"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let manifest =
            read_json(&output.join(format!("_manifests/customers/customers.{format}.json")));
        let expected = read_json(&expect);
        let counts = &manifest["counts"];
        for key in [
            "rows_in",
            "rows_out",
            "duplicates",
            "quarantined",
            "quarantined_by_reason",
        ] {
            assert_eq!(counts[key], expected[key], "{format}: {key}");
        }
        assert!(
            expected["duplicates"].as_u64().unwrap() > 1000,
            "the generator injects defects"
        );
    }
}

#[test]
fn summary_and_manifest_on_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    let sample = repo().join("infra/samples/customers.csv");
    let out = run_customers(&sample, dir.path(), &[]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("rows in 23 = out 13 + duplicates 2 + quarantined 8"),
        "{stdout}"
    );
    assert!(stdout.contains("filter:email_has_at"), "{stdout}");
    let data = files(&dir.path().join("customers"));
    assert_eq!(data.len(), 13, "one file per partition");
    assert!(
        dir.path()
            .join("_quarantine/customers/customers.csv.parquet")
            .exists()
    );
    assert!(
        !dir.path().join(".staging/customers.csv").exists(),
        "staging cleaned up"
    );
}

#[test]
fn a_rerun_leaves_exactly_one_run_of_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(
        &input,
        "customer_id,name,email,country,purchase_amount,amount\n1,a,a@x.io,US,600,1\n",
    )
    .unwrap();
    let run = || run_customers(&input, &dir.path().join("o"), &[]);
    assert!(run().status.success());
    // The same source now lands in another partition: the old file must go.
    std::fs::write(
        &input,
        "customer_id,name,email,country,purchase_amount,amount\n1,a,a@x.io,FR,600,1\n",
    )
    .unwrap();
    assert!(run().status.success());
    let data = files(&dir.path().join("o/customers"));
    assert_eq!(data.len(), 1, "{data:?}");
    assert!(data[0].to_string_lossy().contains("country=FR"));
}

#[test]
fn bad_spec_exits_3_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(customers_spec())
        .unwrap()
        .replace("amount >= 0", "amt >= 0");
    std::fs::write(&spec, text).unwrap();
    let out = etl(&["validate", "--spec", spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.yaml line 21 (steps[2].filter.where): unknown column `amt`"),
        "{stderr}"
    );
    let out = etl(&["validate", "--spec", &customers_spec()]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn plan_prints_the_spark_plan_and_refuses_what_spark_cannot_run() {
    let out = etl(&["plan", "--spec", &customers_spec(), "--target", "spark"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let spec = etl_core::PipelineSpec::from_file(Path::new(&customers_spec())).unwrap();
    assert_eq!(plan["dataset"], spec.name.as_str());
    assert_eq!(plan["steps"].as_array().unwrap().len(), spec.steps.len());
    assert_eq!(plan["schema"].as_array().unwrap().len(), spec.schema.len());
    // A join validates for the Lambda engine; the Spark plan refuses it, naming the step.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ref.csv"), "code,label\nUS,United States\n").unwrap();
    let joined = dir.path().join("joined.yaml");
    std::fs::write(
        &joined,
        "name: j\nsource: {prefix: raw/j/}\nschema:\n  - {name: country, type: string}\n\
         steps:\n  - join: {path: ref.csv, on: country, reference_on: code}\n",
    )
    .unwrap();
    let joined = joined.to_str().unwrap();
    assert_eq!(etl(&["validate", "--spec", joined]).status.code(), Some(0));
    let out = etl(&["plan", "--spec", joined, "--target", "spark"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("joined.yaml line 6 (steps[0].join)"),
        "{stderr}"
    );
}

#[test]
fn unreadable_input_exits_4_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("broken.json");
    std::fs::write(&input, "[{\"customer_id\": 1},\n{\"customer_id\": ").unwrap();
    let out = run_customers(&input, &dir.path().join("o"), &[]);
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.json line 2"), "{stderr}");
}

/// A spec of two text columns and one derived column, for expression tests.
fn expression_spec(dir: &Path, sql: &str) -> PathBuf {
    let spec = dir.join("expr.yaml");
    let text = format!(
        "name: expr\nsource: {{prefix: raw/expr/}}\nschema:\n  \
         - {{name: id, type: bigint}}\n  - {{name: c, type: string}}\n\
         steps:\n  - derive: {{column: out, sql: \"{sql}\"}}\n"
    );
    std::fs::write(&spec, text).unwrap();
    spec
}

#[test]
fn a_failing_cast_exits_4_naming_file_line_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let spec = expression_spec(dir.path(), "CAST(c AS bigint) + id");
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "id,c\n1,10\n2,11\n3,twelve\n4,13\n").unwrap();
    let out = etl(&[
        "run",
        "--spec",
        spec.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "in.csv line 4: steps[0].derive `CAST(c AS bigint) + id`: \
             CAST to bigint: 'twelve' is not a valid bigint"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("i64") && !stderr.contains("str"),
        "{stderr}"
    );
}

#[test]
fn an_expression_mixing_types_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let spec = expression_spec(dir.path(), "c > 3");
    let out = etl(&["validate", "--spec", spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "expr.yaml line 7 (steps[0].derive.sql): cannot use `c > 3`: cannot compare `c` (string) with `3` \
             (bigint); CAST one side"
        ),
        "{stderr}"
    );
}

#[test]
fn quality_failure_exits_5_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Every row fails the email filter, so RowCount >= 1 (action fail) fails.
    let input = dir.path().join("in.csv");
    std::fs::write(
        &input,
        "customer_id,name,email,country,purchase_amount,amount\n1,a,nope,US,1,1\n",
    )
    .unwrap();
    let out_dir = dir.path().join("o");
    let out = run_customers(&input, &out_dir, &[]);
    assert_eq!(out.status.code(), Some(5));
    assert!(files(&out_dir.join("customers")).is_empty());
    let manifest = read_json(&out_dir.join("_manifests/customers/in.csv.json"));
    assert_eq!(manifest["status"], "quality_failed");
    assert_eq!(manifest["counts"]["quarantined"], 1);
}

#[test]
fn schema_prints_a_starter_spec_that_validates() {
    let dir = tempfile::tempdir().unwrap();
    let out = etl(&[
        "schema",
        "--input",
        repo().join("infra/samples/customers.csv").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("{name: customer_id, type: bigint}"), "{text}");
    assert!(
        text.contains("{name: signup_date, type: string}"),
        "one bad date keeps it text: {text}"
    );
    let spec = dir.path().join("starter.yaml");
    std::fs::write(&spec, text).unwrap();
    assert_eq!(
        etl(&["validate", "--spec", spec.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn never_panics_on_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 1u64;
    for i in 0..20 {
        let bytes: Vec<u8> = (0..2000)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let b = (seed >> 33) as u8;
                // Bias towards structure characters so parsers go deep.
                match b % 8 {
                    0 => b',',
                    1 => b'"',
                    2 => b'\n',
                    3 => b'{',
                    _ => b,
                }
            })
            .collect();
        for name in ["g.csv", "g.json", "g.ndjson", "g.csv.gz"] {
            let input = dir.path().join(format!("{i}-{name}"));
            std::fs::write(&input, &bytes).unwrap();
            let out = run_customers(&input, &dir.path().join("o"), &[]);
            let code = out.status.code();
            assert!(
                matches!(code, Some(0 | 1 | 4 | 5)),
                "{name}: {code:?} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
        }
    }
}

#[test]
fn readme_null_values_example_loads_and_a_wrong_item_names_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let example = readme
        .lines()
        .find(|l| l.trim_start().starts_with("null_values:"))
        .expect("README shows null_values");
    let example = example.split('#').next().unwrap().trim_end();
    let with = |line: &str| {
        let text = std::fs::read_to_string(customers_spec())
            .unwrap()
            .replace("  format: auto\n", &format!("  format: auto\n{line}\n"));
        assert!(text.contains(line), "the customers spec has `format: auto`");
        let spec = dir.path().join("spec.yaml");
        std::fs::write(&spec, text).unwrap();
        etl(&["validate", "--spec", spec.to_str().unwrap()])
    };
    let out = with(example);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{example}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = with("  null_values: [NA, {a: 1}]");
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spec.yaml line 9 (source.null_values[1]):"),
        "{stderr}"
    );
    assert!(!stderr.contains("Option<"), "{stderr}");
}
