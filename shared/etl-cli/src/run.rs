//! `etl run`, `etl validate`, `etl schema`.

use std::fs::File;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use chrono::Utc;
use clap::Args;
use etl_core::{
    EtlError, Pipeline, PipelineSpec, ReferenceLoader, RunManifest, RunOptions, RunStatus,
    source_id,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::exit;

#[derive(Args)]
pub struct RunArgs {
    /// The pipeline spec (YAML).
    #[arg(long)]
    spec: PathBuf,
    /// CSV, JSON or NDJSON, optionally .gz or .zst.
    #[arg(long)]
    input: PathBuf,
    /// Output root: <dataset>/ (Parquet), _quarantine/<dataset>/, _manifests/<dataset>/.
    #[arg(long)]
    output: PathBuf,
    /// Worker threads for the engine (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Output files are named after it (default: from the input file name).
    #[arg(long)]
    source_id: Option<String>,
    #[arg(long, default_value_t = etl_core::DEFAULT_BATCH_SIZE)]
    batch_size: usize,
    /// Print the manifest JSON instead of the summary.
    #[arg(long)]
    json: bool,
}

/// Resolves reference tables against the spec's folder.
struct LocalFiles {
    base: PathBuf,
}

impl ReferenceLoader for LocalFiles {
    fn load(&self, path: &str) -> Result<Vec<u8>, EtlError> {
        let full = self.base.join(path);
        std::fs::read(&full).map_err(|e| EtlError::Io {
            context: format!("reading reference table {}", full.display()),
            source: e,
        })
    }
}

fn loader_for(spec: &Path) -> LocalFiles {
    LocalFiles {
        base: spec.parent().map(Path::to_path_buf).unwrap_or_default(),
    }
}

fn code_for(e: &EtlError) -> u8 {
    match e {
        EtlError::Spec(_) => exit::BAD_SPEC,
        EtlError::Input(_) => exit::BAD_INPUT,
        _ => exit::FAILURE,
    }
}

fn fail(e: &EtlError) -> u8 {
    eprintln!("error: {e}");
    code_for(e)
}

fn compile(spec_path: &Path) -> Result<Pipeline, EtlError> {
    let spec = PipelineSpec::from_file(spec_path)?;
    Pipeline::compile(spec, &loader_for(spec_path), Utc::now())
}

pub fn validate(spec_path: &Path) -> u8 {
    match compile(spec_path) {
        Ok(p) => {
            println!(
                "{}: ok ({} steps, {} rules, {} output columns)",
                spec_path.display(),
                p.spec().steps.len(),
                p.spec().quality.rules.len(),
                p.output_schema().len()
            );
            exit::OK
        }
        Err(e) => fail(&e),
    }
}

/// Engines `etl plan` compiles for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Target {
    Spark,
}

/// Prints the plan of a spec for `target`. The spec is checked as `etl validate` checks it
/// (reference tables included), then by the target's back end.
pub fn plan(spec_path: &Path, target: Target) -> u8 {
    let pipeline = match compile(spec_path) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let plan = match target {
        Target::Spark => etl_core::spark_plan(pipeline.spec()),
    };
    match plan {
        Ok(p) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&p).expect("JSON values serialize")
            );
            exit::OK
        }
        Err(e) => fail(&EtlError::from(e)),
    }
}

pub fn schema(input: &Path, name: Option<&str>, sample_rows: usize) -> u8 {
    let file = match File::open(input) {
        Ok(f) => f,
        Err(e) => {
            return fail(&EtlError::Io {
                context: format!("opening {}", input.display()),
                source: e,
            });
        }
    };
    let dataset = name.map(String::from).unwrap_or_else(|| {
        let stem = input
            .file_name()
            .and_then(|s| s.to_str())
            .and_then(|s| s.split('.').next())
            .unwrap_or("dataset");
        stem.to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    });
    match etl_core::schema::infer(
        file,
        &input.display().to_string(),
        etl_core::spec::SourceFormat::Auto,
        sample_rows,
    ) {
        Ok((format, columns)) => {
            print!(
                "{}",
                etl_core::schema::starter_spec(&dataset, format, &columns)
            );
            exit::OK
        }
        Err(e) => fail(&e),
    }
}

pub fn run(args: RunArgs) -> u8 {
    if let Some(n) = args.threads {
        // SAFETY: nothing else runs yet (polars starts its pool lazily, after this), so no
        // thread can read the environment while it is written.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("POLARS_MAX_THREADS", n.max(1).to_string());
        }
    }
    match run_inner(&args) {
        Ok((manifest, manifest_path)) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&manifest).unwrap_or_default()
                );
            } else {
                print_summary(&manifest, &args.output, &manifest_path);
            }
            match manifest.status {
                RunStatus::Succeeded => exit::OK,
                RunStatus::QualityFailed => exit::QUALITY_FAILED,
            }
        }
        Err(e) => fail(&e),
    }
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> EtlError {
    move |source| EtlError::Io { context, source }
}

fn run_inner(args: &RunArgs) -> Result<(RunManifest, PathBuf), EtlError> {
    let pipeline = compile(&args.spec)?;
    let dataset = pipeline.spec().name.clone();
    let id = args.source_id.clone().unwrap_or_else(|| {
        source_id(
            &args
                .input
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        )
    });
    let id = source_id(&id);
    let file = File::open(&args.input).map_err(io(format!("opening {}", args.input.display())))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);

    // Data is staged and moved into place only when the run passes its quality gate.
    let data_dir = args.output.join(&dataset);
    let staging = args.output.join(".staging").join(&id);
    let quarantine_path = args
        .output
        .join("_quarantine")
        .join(&dataset)
        .join(format!("{id}.parquet"));
    let manifest_path = args
        .output
        .join("_manifests")
        .join(&dataset)
        .join(format!("{id}.json"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(format!("clearing {}", staging.display())))?;
    }
    // A rerun replaces the earlier quarantine file, or drops it when nothing is rejected now.
    if quarantine_path.exists() {
        std::fs::remove_file(&quarantine_path)
            .map_err(io(format!("removing {}", quarantine_path.display())))?;
    }
    if let Some(dir) = quarantine_path.parent() {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }

    let progress = progress_bar(size);
    let input = ProgressReader {
        inner: file,
        bar: progress.clone(),
    };
    let opts = RunOptions {
        source_name: args.input.display().to_string(),
        source_id: id.clone(),
        etag: None,
        data_dir: staging.clone(),
        quarantine_path,
        batch_size: args.batch_size,
        threads: args.threads,
    };
    let result = pipeline.run(input, &opts);
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let mut manifest = result?;

    replace_outputs(
        &data_dir,
        &staging,
        &id,
        manifest.status == RunStatus::Succeeded,
    )?;
    if manifest.status != RunStatus::Succeeded {
        manifest.outputs.clear();
        manifest.output_bytes = 0;
    }
    if let Some(dir) = manifest_path.parent() {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    std::fs::write(&manifest_path, json)
        .map_err(io(format!("writing {}", manifest_path.display())))?;
    Ok((manifest, manifest_path))
}

/// Removes this source's files from an earlier run, then moves the staged ones in (when
/// `publish`), so a rerun leaves exactly this run's files.
fn replace_outputs(
    data_dir: &Path,
    staging: &Path,
    id: &str,
    publish: bool,
) -> Result<(), EtlError> {
    let file_name = format!("{id}.parquet");
    if data_dir.exists() {
        for path in files_under(data_dir)? {
            if path.file_name().is_some_and(|n| n == file_name.as_str()) {
                std::fs::remove_file(&path).map_err(io(format!("removing {}", path.display())))?;
            }
        }
    }
    if publish && staging.exists() {
        for path in files_under(staging)? {
            let rel = path.strip_prefix(staging).unwrap_or(&path);
            let target = data_dir.join(rel);
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
            }
            std::fs::rename(&path, &target).map_err(io(format!("moving {}", target.display())))?;
        }
    }
    if staging.exists() {
        std::fs::remove_dir_all(staging).map_err(io(format!("clearing {}", staging.display())))?;
    }
    Ok(())
}

fn files_under(dir: &Path) -> Result<Vec<PathBuf>, EtlError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io(format!("listing {}", d.display())))? {
            let path = entry
                .map_err(io(format!("listing {}", d.display())))?
                .path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// Shown only on a terminal and for inputs large enough to wait for.
fn progress_bar(size: u64) -> Option<ProgressBar> {
    const WORTH_A_BAR: u64 = 32 << 20;
    if size < WORTH_A_BAR || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(bar)
}

struct ProgressReader<R> {
    inner: R,
    bar: Option<ProgressBar>,
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }
}

fn print_summary(m: &RunManifest, output: &Path, manifest_path: &Path) {
    let c = &m.counts;
    println!(
        "{}: {} ({:?}, {}) in {:.2}s",
        m.dataset,
        m.source.name,
        m.source.format,
        human_bytes(m.source.bytes),
        m.duration_ms as f64 / 1000.0
    );
    println!(
        "rows in {} = out {} + duplicates {} + quarantined {}",
        c.rows_in, c.rows_out, c.duplicates, c.quarantined
    );
    for (reason, n) in &c.quarantined_by_reason {
        println!("  quarantined {n:>8}  {reason}");
    }
    match m.status {
        RunStatus::Succeeded => println!(
            "output: {} files, {} under {}",
            m.outputs.len(),
            human_bytes(m.output_bytes),
            output.join(&m.dataset).display()
        ),
        RunStatus::QualityFailed => {
            println!("output: not published (a quality rule with action fail failed)")
        }
    }
    if let Some(q) = &m.quarantine {
        println!("quarantine: {} rows in {}", q.rows, q.path);
    }
    let passed = m.quality.rules.iter().filter(|r| r.passed).count();
    println!(
        "quality: score {:.2} ({passed}/{} rules passed){}",
        m.quality.score,
        m.quality.rules.len(),
        if m.quality.alert { " ALERT" } else { "" }
    );
    for r in &m.quality.rules {
        println!(
            "  {} {}  actual {:.4} required {:.4} [{:?}]",
            if r.passed { "pass" } else { "FAIL" },
            r.rule,
            r.actual,
            r.required,
            r.action
        );
    }
    if !m.input_columns.dropped.is_empty() {
        println!(
            "dropped input columns: {}",
            m.input_columns.dropped.join(", ")
        );
    }
    println!("manifest: {}", manifest_path.display());
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
