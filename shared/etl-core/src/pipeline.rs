//! Runs a compiled pipeline over one input: read, type, steps, quality, write.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use polars::prelude::*;

use crate::batch::{RECORD_COLUMN, Typer};
use crate::error::{EtlError, PolarsContext, SpecError};
use crate::limits::{self, Guarded, Limits, MarkBoundaries, Source};
use crate::manifest::{
    Counts, MANIFEST_VERSION, QuarantineFile, RunManifest, RunStatus, SchemaColumn, SourceInfo,
};
use crate::quality::Quality;
use crate::read::{self, ReadOptions};
use crate::spec::{FieldSpec, PipelineSpec, SourceFormat};
use crate::stages::{self, Stages};
use crate::steps::{self, CompiledStep, Outcome, ReferenceLoader};
use crate::types::glue_type;
use crate::write::{PartitionedWriter, QuarantineWriter};

/// Rows typed before the steps run on them. Large enough that per-batch overhead
/// stays small, small enough to keep memory flat with a few batches in flight per
/// worker (65,536 cost 80 MB more at 10M rows for 5% less time on one core).
pub const DEFAULT_BATCH_SIZE: usize = 32_768;

/// A spec made ready to run: steps compiled, reference tables loaded, and the output
/// schema known (the steps were run once on an empty batch, which also surfaces type
/// errors in expressions before any data is read).
pub struct Pipeline {
    spec: PipelineSpec,
    steps: Vec<CompiledStep>,
    output_schema: Schema,
    now: DateTime<Utc>,
}

/// Where and how one run writes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Names the input in errors and in the manifest (a path, `s3://bucket/key`).
    pub source_name: String,
    /// Output file names derive from it, so a rerun of the same source rewrites the same
    /// files. Keep it to `[A-Za-z0-9._-]` (see [`source_id`]).
    pub source_id: String,
    pub etag: Option<String>,
    /// Root of the hive-partitioned data files.
    pub data_dir: PathBuf,
    /// The quarantine Parquet file (written only when a row is rejected).
    pub quarantine_path: PathBuf,
    pub batch_size: usize,
    /// Workers (and Parquet encoding threads); `None`: `POLARS_MAX_THREADS`, else the cores
    /// this process may run on. Results do not depend on it.
    pub threads: Option<usize>,
}

/// A file-name-safe id from any text: `raw/customers 2024.csv` -> `raw_customers_2024.csv`.
pub fn source_id(text: &str) -> String {
    let id: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    shorten_id(id.trim_matches('_'))
}

/// The id a source object's outputs are named by (`<id>.parquet`, `<id>.json`): its file
/// name's [`source_id`], cut to leave room, then `-` and the FNV-1a 64 hash of
/// `bucket/key` as 16 hex digits, so two objects with the same file name in different
/// folders or buckets never collide. At most [`MAX_SOURCE_ID_BYTES`]. s3-processor and the
/// Glue job (`infra/glue/etl_spark/ids.py`) both name outputs by it; `etl output-id`
/// prints it.
pub fn object_output_id(bucket: &str, key: &str) -> String {
    let name = key.rsplit('/').next().unwrap_or(key);
    let hash = fnv1a64(format!("{bucket}/{key}").as_bytes());
    // The hash stays last and whole (source-data-checker finds manifests by it); the stem
    // is cut instead. `source_id` gives ASCII only, so any cut is a character boundary.
    let stem = source_id(name);
    let keep = stem.len().min(MAX_SOURCE_ID_BYTES - 17);
    format!("{}-{hash:016x}", &stem[..keep])
}

/// FNV-1a 64: stable across releases and languages (etl-aws's `stable_hash` is the same
/// function; etl-aws does not depend on this crate).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The longest id kept as it is: file names derive from ids (`<id>.parquet`), and file
/// systems refuse names over 255 bytes.
pub const MAX_SOURCE_ID_BYTES: usize = 200;

/// An id of at most [`MAX_SOURCE_ID_BYTES`]: a longer one keeps its start and ends with a
/// hash of the whole, so long ids that share a start stay apart.
pub(crate) fn shorten_id(id: &str) -> String {
    if id.len() <= MAX_SOURCE_ID_BYTES {
        return id.to_string();
    }
    let hash = xxhash_rust::xxh3::xxh3_64(id.as_bytes());
    let mut keep = MAX_SOURCE_ID_BYTES - 17;
    while !id.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}-{hash:016x}", &id[..keep])
}

impl Pipeline {
    /// `now` is the run's clock: processed_at and freshness rules use it.
    pub fn compile(
        spec: PipelineSpec,
        loader: &dyn ReferenceLoader,
        now: DateTime<Utc>,
    ) -> Result<Self, EtlError> {
        let named = |e: EtlError| match e {
            EtlError::Spec(mut bad) if bad.file.is_empty() => {
                bad.file.clone_from(&spec.file);
                EtlError::Spec(bad)
            }
            other => other,
        };
        let steps = steps::compile(&spec, now.timestamp_micros(), loader).map_err(named)?;
        let fields: Vec<FieldSpec> = spec.schema.iter().map(|f| f.value.clone()).collect();
        let mut empty = Typer::new(&fields, &[], 0)
            .finish()
            .context(|| "building the input schema".to_string())?;
        let mut outcome = Outcome::default();
        for step in &steps {
            empty = step
                .apply(empty, &mut outcome, None)
                .map_err(|e| match e {
                    EtlError::Engine { source, .. } => step.spec_error(source.to_string()).into(),
                    other => other,
                })
                .map_err(named)?;
        }
        let mut output_schema = empty.schema().as_ref().clone();
        output_schema.shift_remove(RECORD_COLUMN);
        for p in &spec.output.partition_by {
            // The key and a null's name must leave most of a directory name to values.
            if crate::write::escape_path(p).len() > 128 {
                return Err(SpecError::at(
                    None,
                    "output.partition_by",
                    format!("`{p}` is too long for a partition directory: at most 128 bytes"),
                )
                .into());
            }
            if output_schema.get(p).is_none() {
                return Err(SpecError::at(
                    None,
                    "output.partition_by",
                    format!("`{p}` is not an output column"),
                )
                .into());
            }
        }
        // The dry run saw no rows, so the steps' state (dedup's seen set) is still empty.
        Ok(Self {
            spec,
            steps,
            output_schema,
            now,
        })
    }

    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    /// The columns of the output, partition columns included.
    pub fn output_schema(&self) -> &Schema {
        &self.output_schema
    }

    /// The output columns with their Glue types, partition columns last (as Glue wants
    /// them apart).
    pub fn schema_columns(&self) -> Vec<SchemaColumn> {
        let partition_by = &self.spec.output.partition_by;
        let mut cols: Vec<SchemaColumn> = self
            .output_schema
            .iter()
            .filter(|(n, _)| !partition_by.iter().any(|p| p == n.as_str()))
            .map(|(n, t)| schema_column(n, t, false))
            .collect();
        for p in partition_by {
            if let Some(t) = self.output_schema.get(p) {
                cols.push(schema_column(p, t, true));
            }
        }
        cols
    }

    /// Runs over one input. The pipeline is used up: its dedup state belongs to this input.
    pub fn run(self, input: impl Read, opts: &RunOptions) -> Result<RunManifest, EtlError> {
        let started_at = Utc::now();
        let clock = Instant::now();
        let name = &opts.source_name;
        let bytes_read = Arc::new(AtomicU64::new(0));
        let source = Source {
            inner: input,
            count: Arc::clone(&bytes_read),
        };
        let decoded = read::decompress(source, name).map_err(|e| limits::classify(e, name))?;
        let mut decoded = Guarded::new(
            decoded,
            Limits::of(&self.spec.source),
            Arc::clone(&bytes_read),
            // Decided below, from the name and first bytes; CSV is the fallback.
            true,
        );
        let format = read::resolve_format(self.spec.source.format, name, &mut decoded)
            .map_err(|e| limits::classify(e, name))?;
        decoded.set_reads_ahead(matches!(format, SourceFormat::Csv | SourceFormat::Auto));
        let progress = decoded.progress();
        let fields: Vec<FieldSpec> = self.spec.schema.iter().map(|f| f.value.clone()).collect();
        let source_columns: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
        let schema_columns = self.schema_columns();
        let output = &self.spec.output;
        let threads = opts.threads.unwrap_or_else(engine_threads).max(1);
        let stages = Stages {
            steps: &self.steps,
            quality: Quality::new(
                &self
                    .spec
                    .quality
                    .rules
                    .iter()
                    .map(|r| r.value.clone())
                    .collect::<Vec<_>>(),
                self.spec.quality.min_score,
                self.now.timestamp_micros(),
            ),
            output_schema: &self.output_schema,
            partition_by: &output.partition_by,
            writer: PartitionedWriter::new(
                &opts.data_dir,
                &opts.source_id,
                &output.partition_by,
                output.compression,
                output.row_group_size,
                &self.output_schema,
                threads,
            ),
            quarantine: QuarantineWriter::new(
                opts.quarantine_path.clone(),
                &source_columns,
                output.compression,
            ),
            typer: Typer::new(&fields, &self.spec.source.null_values, opts.batch_size),
            batch_size: opts.batch_size,
            workers: threads,
        };
        let delimiter = match self.spec.source.delimiter {
            Some(d) => d as u8,
            None if opts.source_name.to_ascii_lowercase().contains(".tsv") => b'\t',
            None => b',',
        };
        let read_opts = ReadOptions {
            name: &opts.source_name,
            schema: &fields,
            delimiter,
            extra_columns: self.spec.source.extra_columns,
        };
        let (columns, finished) = stages::run(stages, |reader| {
            let reader = &mut MarkBoundaries {
                inner: reader,
                progress,
            };
            match format {
                SourceFormat::Csv | SourceFormat::Auto => {
                    read::read_csv(&mut decoded, &read_opts, reader)
                }
                SourceFormat::Json => read::read_json(&mut decoded, &read_opts, reader),
                SourceFormat::Ndjson => read::read_ndjson(&mut decoded, &read_opts, reader),
            }
            .map_err(|e| limits::classify(e, name))
        })
        .map_err(|e| match e {
            // A step refused a value: the step knew the line, the run knows the file.
            EtlError::Input(mut bad) if bad.input.is_empty() => {
                bad.input.clone_from(&opts.source_name);
                EtlError::Input(bad)
            }
            other => other,
        })?;
        drop(decoded);
        let stages::Finished {
            written:
                stages::Written {
                    outputs,
                    quarantine,
                    rows_out,
                    duplicates,
                },
            quality,
            rows_in,
        } = finished;
        let quarantined_by_reason = quarantine.by_code.clone();
        let quarantined = quarantine.total();
        let quarantine_file = quarantine
            .finish()?
            .map(|(path, rows, bytes)| QuarantineFile {
                path: path.display().to_string(),
                rows,
                bytes,
            });
        let mut known_columns = columns.found.clone();
        known_columns.extend(self.output_schema.iter_names().map(|n| n.to_string()));
        let quality = quality.finish(rows_out, &known_columns);
        let counts = Counts {
            rows_in,
            rows_out,
            duplicates,
            quarantined,
            quarantined_by_reason,
        };
        if !counts.balanced() {
            // A bug, never a data problem: refuse to report numbers that do not add up.
            return Err(EtlError::Engine {
                context: format!("row accounting does not balance: {counts:?}"),
                source: PolarsError::ComputeError("unbalanced counts".into()),
            });
        }
        let finished_at = Utc::now();
        Ok(RunManifest {
            manifest_version: MANIFEST_VERSION,
            dataset: self.spec.name.clone(),
            source: SourceInfo {
                name: opts.source_name.clone(),
                id: opts.source_id.clone(),
                etag: opts.etag.clone(),
                version_id: None,
                last_modified: None,
                format,
                bytes: bytes_read.load(Ordering::Relaxed),
            },
            status: if quality.passed {
                RunStatus::Succeeded
            } else {
                RunStatus::QualityFailed
            },
            started_at: started_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            finished_at: finished_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            duration_ms: clock.elapsed().as_millis() as u64,
            output_bytes: outputs.iter().map(|f| f.bytes).sum(),
            outputs,
            counts,
            quarantine: quarantine_file,
            schema: schema_columns,
            input_columns: columns.into(),
            quality,
        })
    }
}

fn schema_column(name: &str, dtype: &DataType, partition: bool) -> SchemaColumn {
    SchemaColumn {
        name: name.to_string(),
        dtype: dtype.to_string(),
        glue_type: glue_type(dtype).unwrap_or_else(|| "string".into()),
        partition,
    }
}

/// Workers, and threads for encoding: as many as polars may use (`--threads` sets it),
/// else the cores this process may run on.
fn engine_threads() -> usize {
    std::env::var("POLARS_MAX_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1)
}

#[cfg(test)]
mod id_tests {
    use super::*;

    #[test]
    fn object_output_ids_keep_the_whole_key_hash_last() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        let id = object_output_id("raw", "raw-data/customers/a b.csv");
        let hash = fnv1a64(b"raw/raw-data/customers/a b.csv");
        assert_eq!(id, format!("a_b.csv-{hash:016x}"));
        let long = object_output_id("raw", &format!("p/{}.csv", "é".repeat(150)));
        assert!(long.len() <= MAX_SOURCE_ID_BYTES, "{long}");
        assert_eq!(long, source_id(&long));
    }
}
