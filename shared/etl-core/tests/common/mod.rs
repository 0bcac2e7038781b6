//! Test helpers shared by the engine's integration tests.
// Not every test binary uses every helper; a panic is the failure report.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use etl_core::polars::prelude::*;
use etl_core::{EtlError, Pipeline, PipelineSpec, ReferenceLoader, RunManifest, RunOptions};
use tempfile::TempDir;

/// The fixed clock of every test run: 2025-01-01T00:00:00Z.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
}

pub fn repo_root() -> PathBuf {
    // Read at run time: a test binary built in another checkout (a shared target dir) must
    // not look there.
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test")).join("../..")
}

/// Loads reference tables from a folder.
pub struct Dir(pub PathBuf);

impl ReferenceLoader for Dir {
    fn load(&self, path: &str) -> Result<Vec<u8>, EtlError> {
        let full = self.0.join(path);
        std::fs::read(&full).map_err(|e| EtlError::Io {
            context: full.display().to_string(),
            source: e,
        })
    }
}

pub struct Run {
    pub manifest: RunManifest,
    pub dir: TempDir,
}

impl Run {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn quarantine_path(&self) -> PathBuf {
        self.dir.path().join("quarantine.parquet")
    }

    /// All data files read back, partition columns restored from the paths, sorted by
    /// `sort_by`.
    pub fn output(&self, sort_by: &str) -> DataFrame {
        read_tree(&self.data_dir(), sort_by)
    }

    pub fn quarantine(&self) -> DataFrame {
        let file = std::fs::File::open(self.quarantine_path()).expect("quarantine file");
        ParquetReader::new(file).finish().unwrap()
    }
}

pub fn compile(spec_yaml: &str, refs: &Path) -> Result<Pipeline, EtlError> {
    let spec = PipelineSpec::from_yaml(spec_yaml, "test.yaml")?;
    Pipeline::compile(spec, &Dir(refs.to_path_buf()), now())
}

/// Runs a spec on bytes named `name` (the name picks format and compression).
pub fn run(spec_yaml: &str, input: &[u8], name: &str) -> Result<Run, EtlError> {
    run_with(spec_yaml, input, name, 3)
}

/// Same, with a small batch size so that batch boundaries are exercised.
pub fn run_with(
    spec_yaml: &str,
    input: &[u8],
    name: &str,
    batch_size: usize,
) -> Result<Run, EtlError> {
    run_threads(spec_yaml, input, name, batch_size, None)
}

/// Same, with a given number of workers.
pub fn run_threads(
    spec_yaml: &str,
    input: &[u8],
    name: &str,
    batch_size: usize,
    threads: Option<usize>,
) -> Result<Run, EtlError> {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = compile(spec_yaml, &repo_root())?;
    let opts = RunOptions {
        source_name: name.to_string(),
        source_id: etl_core::source_id(name),
        etag: None,
        data_dir: dir.path().join("data"),
        quarantine_path: dir.path().join("quarantine.parquet"),
        batch_size,
        threads,
    };
    let manifest = pipeline.run(input, &opts)?;
    assert!(
        manifest.counts.balanced(),
        "counts must add up: {:?}",
        manifest.counts
    );
    Ok(Run { manifest, dir })
}

pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub fn read_tree(dir: &Path, sort_by: &str) -> DataFrame {
    let mut frames = Vec::new();
    for file in parquet_files(dir) {
        let mut df = ParquetReader::new(std::fs::File::open(&file).unwrap())
            .finish()
            .unwrap();
        let rel = file.strip_prefix(dir).unwrap();
        for part in rel.parent().into_iter().flat_map(|p| p.components()) {
            let s = part.as_os_str().to_string_lossy();
            let (k, v) = s.split_once('=').expect("hive dir");
            let value = (v != etl_core::NULL_PARTITION).then(|| v.to_string());
            df.with_column(Column::new(k.into(), vec![value; df.height()]))
                .unwrap();
        }
        frames.push(df);
    }
    let mut all = frames
        .into_iter()
        .reduce(|mut a, b| {
            a.vstack_mut_owned(b).unwrap();
            a
        })
        .expect("at least one output file");
    all.sort_in_place(
        [sort_by],
        SortMultipleOptions::default().with_maintain_order(true),
    )
    .unwrap();
    all
}

/// A string column as Vec<Option<String>>.
pub fn strings(df: &DataFrame, name: &str) -> Vec<Option<String>> {
    df.column(name)
        .unwrap()
        .cast(&DataType::String)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.map(String::from))
        .collect()
}

pub fn opt(v: &[Option<&str>]) -> Vec<Option<String>> {
    v.iter().map(|s| s.map(String::from)).collect()
}
