//! `etl run` on hostile input: broken compressed files, endless records, decompression
//! bombs and values too long for a path, all generated here. Each is refused (exit 4,
//! naming the file, line and limit) or quarantined, quickly and in bounded memory.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn etl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(args)
        .output()
        .expect("run etl")
}

fn repo() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test")).join("../..")
}

fn run(spec: &Path, input: &Path, output: &Path) -> Output {
    etl(&[
        "run",
        "--spec",
        spec.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--threads",
        "1",
    ])
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A two-column spec with `source_extra` under `source:` and `output_extra` as `output:`.
fn spec(dir: &Path, source_extra: &str, output: &str) -> PathBuf {
    let path = dir.join("limits.yaml");
    std::fs::write(
        &path,
        format!(
            "name: limits\nsource:\n  prefix: x/\n{source_extra}schema:\n  - {{name: id, type: \
             bigint}}\n  - {{name: text, type: string}}\n{output}"
        ),
    )
    .unwrap();
    path
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// With a checksum, as the zstd command line writes by default.
fn zstd(data: &[u8]) -> Vec<u8> {
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    e.include_checksum(true).unwrap();
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `head`, then `fill` repeated to `len` bytes, compressed as the name says, streamed so
/// the test itself never holds the whole text.
fn write_compressed(path: &Path, head: &[u8], fill: u8, len: usize) {
    let file = std::fs::File::create(path).unwrap();
    let mut sink: Box<dyn Write> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(
            zstd::stream::write::Encoder::new(file, 1)
                .unwrap()
                .auto_finish(),
        )
    };
    sink.write_all(head).unwrap();
    let chunk = vec![fill; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        sink.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    sink.flush().unwrap();
}

fn rows(n: usize) -> String {
    let mut csv = String::from("id,text\n");
    for i in 0..n {
        csv.push_str(&format!("{i},row number {i} of a test file\n"));
    }
    csv
}

fn manifest(out_dir: &Path, id: &str) -> serde_json::Value {
    let path = out_dir.join(format!("_manifests/limits/{id}.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

#[test]
fn broken_compressed_inputs_exit_4_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "", "");
    let csv = rows(20_000).into_bytes();
    let half = |mut v: Vec<u8>| {
        v.truncate(v.len() / 2);
        v
    };
    let flip = |mut v: Vec<u8>| {
        let mid = v.len() / 2;
        v[mid..mid + 16].iter_mut().for_each(|b| *b ^= 0x5a);
        v
    };
    // Intact, the same text reads: what fails below is the damage.
    for (name, data) in [("ok.csv.gz", gzip(&csv)), ("ok.csv.zst", zstd(&csv))] {
        let input = dir.path().join(name);
        std::fs::write(&input, data).unwrap();
        let out = run(&spec, &input, &dir.path().join("o"));
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
    }
    let cases = [
        ("truncated.csv.gz", half(gzip(&csv))),
        ("corrupt.csv.gz", flip(gzip(&csv))),
        ("truncated.csv.zst", half(zstd(&csv))),
        ("corrupt.csv.zst", flip(zstd(&csv))),
        ("plain.csv.gz", csv.clone()),
        ("plain.csv.zst", csv.clone()),
        ("zstd-inside.csv.gz", zstd(&csv)),
    ];
    for (name, data) in cases {
        let input = dir.path().join(name);
        std::fs::write(&input, data).unwrap();
        let out = run(&spec, &input, &dir.path().join("o"));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(4), "{name}: {err}");
        assert!(
            err.contains(name) && err.contains(" line "),
            "{name}: {err}"
        );
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
}

/// Refused with exit 4 in well under the time reading it whole would take.
fn assert_refused(spec: &Path, input: &Path, out_dir: &Path, wants: &[&str]) {
    let started = Instant::now();
    let out = run(spec, input, out_dir);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{}: {err}", input.display());
    let name = input.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name), "{err}");
    for want in wants {
        assert!(err.contains(want), "{name}: wanted {want:?} in {err}");
    }
    assert!(started.elapsed() < Duration::from_secs(60), "{name}: slow");
}

#[test]
fn an_endless_record_is_refused_at_the_limit_naming_where_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "  max_record_bytes: 1048576\n", "");
    let limit = "source.max_record_bytes (1048576 bytes)";
    let len = 64 << 20;
    // Three good records, then one that never ends: an unclosed quote (CSV), a line
    // without a line break (NDJSON), an array element never closed (JSON).
    let cases: [(&str, &[u8], u8, &str); 4] = [
        (
            "quote.csv.gz",
            b"id,text\n1,a\n2,b\n3,c\n4,\"an unclosed quote\nover many lines",
            b'\n',
            "line 5",
        ),
        (
            "line.ndjson.gz",
            b"{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n{\"id\":4,\"text\":\"",
            b'z',
            "line 4",
        ),
        (
            "element.json.zst",
            b"[\n{\"id\":1},\n{\"id\":2},\n{\"id\":3},\n{\"id\":4,\"text\":\"",
            b'z',
            "line 5",
        ),
        ("value.json.gz", b"{\"id\":1,\"text\":\"", b' ', "line 1"),
    ];
    for (name, head, fill, line) in cases {
        let input = dir.path().join(name);
        write_compressed(&input, head, fill, len);
        assert_refused(&spec, &input, &dir.path().join("o"), &[limit, line]);
    }
}

#[test]
fn decompressed_size_and_ratio_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("o");
    // Well-formed rows, just too many bytes of them.
    let total = spec(dir.path(), "  max_decompressed_bytes: 1000000\n", "");
    let input = dir.path().join("many.csv.gz");
    std::fs::write(&input, gzip(rows(100_000).as_bytes())).unwrap();
    assert_refused(
        &total,
        &input,
        &out_dir,
        &["source.max_decompressed_bytes (1000000 bytes)"],
    );
    // The same file under the default limit runs: the limit is what refused it.
    let defaults = spec(dir.path(), "", "");
    let out = run(&defaults, &input, &out_dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // A bomb: 160 MiB of one byte. The record limit is raised out of the way so the
    // ratio (checked past 64 MiB) is what stops it.
    let ratio = spec(dir.path(), "  max_record_bytes: 1073741824\n", "");
    let input = dir.path().join("bomb.csv.zst");
    write_compressed(&input, b"id,text\n1,", b'9', 160 << 20);
    assert_refused(
        &ratio,
        &input,
        &out_dir,
        &["source.max_compression_ratio (200)"],
    );
}

/// Peak RSS of `etl run`, in KiB, as GNU time reports it.
fn peak_rss_kib(spec: &Path, input: &Path, out_dir: &Path) -> (Output, u64) {
    let report = out_dir.with_extension("time");
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o", report.to_str().unwrap()])
        .arg(env!("CARGO_BIN_EXE_etl"))
        .args([
            "run",
            "--spec",
            spec.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            out_dir.to_str().unwrap(),
        ])
        .output()
        .expect("run /usr/bin/time");
    let text = std::fs::read_to_string(&report).unwrap();
    let kib = text
        .lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {text:?}"));
    (out, kib)
}

#[test]
fn a_gzip_bomb_of_one_line_is_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    // The customers spec as shipped: default limits.
    let spec = repo().join("infra/pipelines/customers.yaml");
    let line = 1usize << 30;
    let input = dir.path().join("bomb.csv.gz");
    write_compressed(
        &input,
        b"customer_id,name,email,country,purchase_amount,amount\n1,\"",
        b'a',
        line,
    );
    assert!(std::fs::metadata(&input).unwrap().len() < (line as u64) / 100);
    let started = Instant::now();
    let (out, kib) = peak_rss_kib(&spec, &input, &dir.path().join("o"));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("source.max_record_bytes (16777216 bytes)")
            && err.contains("the header or first record"),
        "{err}"
    );
    // Reading the line whole would need over 1 GiB; the limit keeps it to a few records'
    // worth on top of the engine itself.
    assert!(kib < 300 * 1024, "peak RSS {kib} KiB");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn over_long_partition_values_are_quarantined_with_their_own_code() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "", "output:\n  partition_by: [text]\n");
    // The longest value that fits: `text=` and the escaped value within 255 bytes.
    let values = [
        "short".to_string(),
        "x".repeat(250),
        "x".repeat(251),
        // Not escaped: 2 bytes a character.
        "é".repeat(125),
        "é".repeat(126),
        // Escaped to 3 bytes each.
        "/".repeat(83),
        "/".repeat(84),
    ];
    let escaped_len = |v: &str| -> usize {
        v.chars()
            .map(|c| if c == '/' { 3 } else { c.len_utf8() })
            .sum()
    };
    let too_long = values
        .iter()
        .filter(|v| "text=".len() + escaped_len(v) > 255)
        .count() as u64;
    assert_eq!(too_long, 3, "the cases straddle the limit");
    let mut csv = String::from("id,text\n");
    for (i, v) in values.iter().enumerate() {
        csv.push_str(&format!("{i},{v}\n"));
    }
    let input = dir.path().join("parts.csv");
    std::fs::write(&input, csv).unwrap();
    let out_dir = dir.path().join("o");
    let out = run(&spec, &input, &out_dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let m = manifest(&out_dir, "parts.csv");
    assert_eq!(m["counts"]["rows_out"], values.len() as u64 - too_long);
    assert_eq!(
        m["counts"]["quarantined_by_reason"]["partition_value_too_long:text"],
        too_long
    );
    assert_eq!(m["outputs"].as_array().unwrap().len() as u64, 4);
}

#[test]
fn long_input_names_are_shortened_by_hash_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "", "");
    let out_dir = dir.path().join("o");
    let mut ids = Vec::new();
    // Two names that differ only past the kept part must not share outputs.
    for last in ['a', 'b'] {
        let name = format!("{}{last}.csv", "n".repeat(240));
        let input = dir.path().join(&name);
        std::fs::write(&input, rows(10)).unwrap();
        let out = run(&spec, &input, &out_dir);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let manifests: Vec<PathBuf> = std::fs::read_dir(out_dir.join("_manifests/limits"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        ids = manifests;
    }
    assert_eq!(ids.len(), 2, "{ids:?}");
    for path in std::fs::read_dir(out_dir.join("limits"))
        .unwrap()
        .chain(std::fs::read_dir(out_dir.join("_manifests/limits")).unwrap())
    {
        let name = path.unwrap().file_name();
        assert!(name.len() <= 255, "{name:?}");
    }
}
