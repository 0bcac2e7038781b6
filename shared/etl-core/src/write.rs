//! Parquet output: hive-partitioned data files and the quarantine file. Each partition
//! buffers rows up to a row group and writes it, so memory is bounded by partitions x row
//! group size, not by the input.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use polars_arrow::array::{Array, Utf8ViewArray, View};
use polars_arrow::bitmap::{Bitmap, MutableBitmap};
use polars_arrow::datatypes::ArrowDataType;
use polars_io::parquet::write::{
    BatchedWriter, ParquetCompression, ParquetWriter, StatisticsOptions,
};
use serde::Serialize;

use crate::error::{EtlError, PolarsContext};
use crate::spec::Compression;
use crate::steps::{Reasons, Rejected};

/// Hive's name for a null partition value.
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Rows buffered across all partitions before the largest buffers are written out as
/// (smaller) row groups. Without it, many partitions that each stay under a row group
/// would hold the whole output in memory.
const MAX_BUFFERED_ROWS: usize = 262_144;

/// Above this many partitions in one input the spec is almost surely partitioning by a
/// high-cardinality column; refusing beats opening thousands of files.
pub const MAX_PARTITIONS: usize = 5_000;

/// A file the run wrote.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OutputFile {
    /// Relative to the output root, with `/` separators (`country=US/part.parquet`).
    pub path: String,
    /// Partition column -> value, as in the path.
    pub partition: BTreeMap<String, String>,
    pub rows: u64,
    pub bytes: u64,
}

pub(crate) fn parquet_compression(c: Compression) -> ParquetCompression {
    match c {
        Compression::Zstd => ParquetCompression::Zstd(None),
        Compression::Snappy => ParquetCompression::Snappy,
        Compression::Gzip => ParquetCompression::Gzip(None),
        Compression::Uncompressed => ParquetCompression::Uncompressed,
    }
}

struct Partition {
    values: Vec<String>,
    rel_path: String,
    pending: Vec<DataFrame>,
    pending_rows: usize,
    writer: Option<BatchedWriter<BufWriter<File>>>,
    rows: u64,
}

/// How every data file of a run is written.
struct FileSettings {
    root: PathBuf,
    /// The schema every data file has (partition columns excluded).
    schema: Schema,
    compression: ParquetCompression,
    row_group_size: usize,
}

pub(crate) struct PartitionedWriter {
    files: FileSettings,
    file_name: String,
    partition_by: Vec<String>,
    partitions: HashMap<Vec<String>, Partition>,
    buffered_rows: usize,
    /// Partitions flushed together are encoded on up to this many threads.
    threads: usize,
}

impl PartitionedWriter {
    pub fn new(
        root: &Path,
        source_id: &str,
        partition_by: &[String],
        compression: Compression,
        row_group_size: usize,
        output_schema: &Schema,
        threads: usize,
    ) -> Self {
        let mut schema = output_schema.clone();
        for p in partition_by {
            schema.shift_remove(p.as_str());
        }
        Self {
            files: FileSettings {
                root: root.to_path_buf(),
                schema,
                compression: parquet_compression(compression),
                row_group_size,
            },
            file_name: format!("{}.parquet", crate::pipeline::shorten_id(source_id)),
            partition_by: partition_by.to_vec(),
            partitions: HashMap::new(),
            buffered_rows: 0,
            threads: threads.max(1),
        }
    }

    pub fn write(&mut self, df: DataFrame) -> Result<(), EtlError> {
        if df.height() == 0 {
            return Ok(());
        }
        let parts = split(&df, &self.partition_by, &self.files.schema)
            .context(|| "partitioning output".to_string())?;
        for (values, data) in parts {
            if !self.partitions.contains_key(&values) {
                if self.partitions.len() >= MAX_PARTITIONS {
                    return Err(crate::error::SpecError::at(
                        None,
                        "output.partition_by",
                        format!(
                            "more than {MAX_PARTITIONS} partitions in one input: partition by \
                             lower-cardinality columns"
                        ),
                    )
                    .into());
                }
                let rel_dir: Vec<String> = self
                    .partition_by
                    .iter()
                    .zip(&values)
                    .map(|(k, v)| format!("{}={}", escape_path(k), escape_path(v)))
                    .collect();
                let mut rel_path = rel_dir.join("/");
                if !rel_path.is_empty() {
                    rel_path.push('/');
                }
                rel_path.push_str(&self.file_name);
                self.partitions.insert(
                    values.clone(),
                    Partition {
                        values: values.clone(),
                        rel_path,
                        pending: Vec::new(),
                        pending_rows: 0,
                        writer: None,
                        rows: 0,
                    },
                );
            }
            let partition = self.partitions.get_mut(&values).expect("inserted above");
            partition.pending_rows += data.height();
            self.buffered_rows += data.height();
            partition.pending.push(data);
            if partition.pending_rows >= self.files.row_group_size {
                self.buffered_rows -= partition.pending_rows;
                flush(partition, &self.files)?;
            }
        }
        if self.buffered_rows > MAX_BUFFERED_ROWS {
            self.flush_largest()?;
        }
        Ok(())
    }

    /// Writes the fullest buffers until at most half the budget is held.
    fn flush_largest(&mut self) -> Result<(), EtlError> {
        let mut by_size: Vec<&mut Partition> = self
            .partitions
            .values_mut()
            .filter(|p| p.pending_rows > 0)
            .collect();
        by_size.sort_unstable_by_key(|p| std::cmp::Reverse(p.pending_rows));
        let mut chosen = Vec::new();
        for partition in by_size {
            if self.buffered_rows <= MAX_BUFFERED_ROWS / 2 {
                break;
            }
            self.buffered_rows -= partition.pending_rows;
            chosen.push(partition);
        }
        flush_many(chosen, &self.files, self.threads)
    }

    /// Writes what is buffered and closes every file.
    pub fn finish(mut self) -> Result<Vec<OutputFile>, EtlError> {
        flush_many(
            self.partitions.values_mut().collect(),
            &self.files,
            self.threads,
        )?;
        let mut files = Vec::with_capacity(self.partitions.len());
        for partition in self.partitions.values_mut() {
            let Some(writer) = partition.writer.take() else {
                continue;
            };
            let bytes = writer
                .finish()
                .context(|| format!("closing {}", partition.rel_path))?;
            files.push(OutputFile {
                path: partition.rel_path.clone(),
                partition: self
                    .partition_by
                    .iter()
                    .cloned()
                    .zip(partition.values.iter().cloned())
                    .collect(),
                rows: partition.rows,
                bytes,
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }
}

/// Flushes partitions on up to `threads` threads. Each has its own file, so they need no
/// coordination; encoding and compressing row groups is most of a run's write time.
fn flush_many(
    mut parts: Vec<&mut Partition>,
    files: &FileSettings,
    threads: usize,
) -> Result<(), EtlError> {
    parts.retain(|p| p.pending_rows > 0);
    if threads <= 1 || parts.len() <= 1 {
        return parts.into_iter().try_for_each(|p| flush(p, files));
    }
    // Largest first, dealt round robin: the threads get similar amounts of rows.
    parts.sort_unstable_by_key(|p| std::cmp::Reverse(p.pending_rows));
    let lanes = threads.min(parts.len());
    let mut shares: Vec<Vec<&mut Partition>> = (0..lanes).map(|_| Vec::new()).collect();
    for (i, p) in parts.into_iter().enumerate() {
        shares[i % lanes].push(p);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|share| scope.spawn(move || share.into_iter().try_for_each(|p| flush(p, files))))
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(EtlError::engine("a Parquet writing thread panicked")))
        })
    })
}

/// Writes a partition's buffered rows as row groups of at most `row_group_size`.
fn flush(p: &mut Partition, files: &FileSettings) -> Result<(), EtlError> {
    if p.pending_rows == 0 {
        return Ok(());
    }
    let row_group_size = files.row_group_size;
    let path = files.root.join(&p.rel_path);
    if p.writer.is_none() {
        p.writer = Some(open_writer(&path, &files.schema, files.compression)?);
    }
    let writer = p.writer.as_mut().expect("opened above");
    let mut frames = std::mem::take(&mut p.pending).into_iter();
    let mut df = frames.next().expect("pending_rows > 0");
    for f in frames {
        df.vstack_mut_owned(f)
            .context(|| format!("buffering {}", p.rel_path))?;
    }
    let mut offset = 0usize;
    while offset < df.height() {
        let len = row_group_size.min(df.height() - offset);
        let mut chunk = df.slice(offset as i64, len);
        chunk.rechunk_mut();
        writer
            .write_batch(&chunk)
            .context(|| format!("writing {}", path.display()))?;
        offset += len;
    }
    p.rows += df.height() as u64;
    p.pending_rows = 0;
    Ok(())
}

fn open_writer(
    path: &Path,
    schema: &Schema,
    compression: ParquetCompression,
) -> Result<BatchedWriter<BufWriter<File>>, EtlError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| EtlError::io(format!("creating {}", dir.display()), e))?;
    }
    let file =
        File::create(path).map_err(|e| EtlError::io(format!("creating {}", path.display()), e))?;
    ParquetWriter::new(BufWriter::with_capacity(1 << 20, file))
        .with_compression(compression)
        // Min, max and null counts: what engines prune row groups with. Distinct counts
        // cost a cardinality estimate per column chunk and no reader here uses them.
        .with_statistics(StatisticsOptions::default())
        .batched(schema)
        .context(|| format!("starting {}", path.display()))
}

/// Splits a batch into its partitions' rows of the output columns, in input order, with
/// each partition's values as path text.
///
/// Strings are copied out of the batch into each part's own buffer: gathered views would
/// keep the whole batch's buffers alive, and a small partition buffered across many batches
/// would pin all of them. One pass over the batch in row order scatters them, so the
/// batch's bytes are read sequentially rather than once per partition.
fn split(
    df: &DataFrame,
    keys: &[String],
    schema: &Schema,
) -> PolarsResult<Vec<(Vec<String>, DataFrame)>> {
    let height = df.height();
    // Each part's rows; without keys, the whole batch is one part.
    let groups: Vec<Vec<IdxSize>> = if keys.is_empty() {
        vec![(0..height as IdxSize).collect()]
    } else {
        match df.group_by_stable(keys)?.get_groups().as_ref() {
            GroupsType::Idx(idx) => idx.all().iter().map(|g| g.to_vec()).collect(),
            GroupsType::Slice { groups, .. } => groups
                .iter()
                .map(|&[first, len]| (first..first + len).collect())
                .collect(),
        }
    };
    let values = groups
        .iter()
        .map(|rows| {
            keys.iter()
                .map(|k| partition_value(df.column(k)?, rows[0] as usize))
                .collect::<PolarsResult<Vec<_>>>()
        })
        .collect::<PolarsResult<Vec<_>>>()?;
    let lens: Vec<usize> = groups.iter().map(Vec::len).collect();
    // One part (no partition keys, or a batch of one partition): its columns are the batch's.
    let whole = groups.len() == 1;
    let mut part_of = vec![0u32; height];
    if !whole {
        for (p, rows) in groups.iter().enumerate() {
            for &r in rows {
                part_of[r as usize] = p as u32;
            }
        }
    }
    let mut columns: Vec<Vec<Column>> = lens
        .iter()
        .map(|_| Vec::with_capacity(schema.len()))
        .collect();
    for name in schema.iter_names() {
        let c = df.column(name)?;
        if c.dtype() == &DataType::String {
            let ca = c.str()?.rechunk();
            let arr = ca.downcast_iter().next().expect("rechunked into one chunk");
            for (part, arr) in columns
                .iter_mut()
                .zip(scatter_strings(arr, &part_of, &lens)?)
            {
                part.push(StringChunked::with_chunk(name.clone(), arr).into_column());
            }
        } else if whole {
            columns[0].push(c.clone());
        } else {
            for (part, rows) in columns.iter_mut().zip(&groups) {
                part.push(c.take_slice(rows)?);
            }
        }
    }
    values
        .into_iter()
        .zip(columns)
        .zip(lens)
        .map(|((v, cols), len)| Ok((v, DataFrame::new(len, cols)?)))
        .collect()
}

/// Copies a string column's rows into one array per part (`part_of[row]`, `lens[part]`
/// rows), each with one buffer of exactly its strings longer than a view's inline 12 bytes.
fn scatter_strings(
    arr: &Utf8ViewArray,
    part_of: &[u32],
    lens: &[usize],
) -> PolarsResult<Vec<Utf8ViewArray>> {
    let is_long = |v: &View| v.length > View::MAX_INLINE_SIZE;
    let mut bytes = vec![0usize; lens.len()];
    for (v, &p) in arr.views().iter().zip(part_of) {
        if is_long(v) {
            bytes[p as usize] += v.length as usize;
        }
    }
    if bytes.iter().any(|&b| u32::try_from(b).is_err()) {
        // Offsets into a buffer are u32.
        polars_bail!(ComputeError: "over 4 GiB of strings for one partition in one batch: lower the batch size");
    }
    let mut views: Vec<Vec<View>> = lens.iter().map(|&n| Vec::with_capacity(n)).collect();
    let mut data: Vec<Vec<u8>> = bytes.iter().map(|&n| Vec::with_capacity(n)).collect();
    let buffers = arr.data_buffers();
    for (v, &p) in arr.views().iter().zip(part_of) {
        let mut v = *v;
        let p = p as usize;
        if is_long(&v) {
            let (buffer, start) = (v.buffer_idx as usize, v.offset as usize);
            v.buffer_idx = 0;
            v.offset = data[p].len() as u32;
            data[p].extend_from_slice(&buffers[buffer][start..start + v.length as usize]);
        }
        views[p].push(v);
    }
    let mut validity: Vec<Option<Bitmap>> = vec![None; lens.len()];
    if let Some(bits) = arr.validity().filter(|b| b.unset_bits() > 0) {
        let mut parts: Vec<MutableBitmap> = lens
            .iter()
            .map(|&n| MutableBitmap::with_capacity(n))
            .collect();
        for (valid, &p) in bits.iter().zip(part_of) {
            parts[p as usize].push(valid);
        }
        validity = parts.into_iter().map(|b| Some(b.freeze())).collect();
    }
    Ok(views
        .into_iter()
        .zip(data)
        .zip(validity)
        .zip(bytes)
        .map(|(((views, data), validity), total)| {
            // SAFETY: each long view keeps its length and prefix and points at a copy of the
            // same (valid UTF-8) bytes in its part's one buffer; inline views are unchanged;
            // the validity has one bit per view.
            #[allow(unsafe_code)]
            unsafe {
                Utf8ViewArray::new_unchecked(
                    ArrowDataType::Utf8View,
                    views.into(),
                    vec![data.into()].into(),
                    validity,
                    None,
                    total,
                )
            }
        })
        .collect())
}

/// A partition value as its path text. Partitions hold one value each.
fn partition_value(c: &Column, row: usize) -> PolarsResult<String> {
    Ok(match c.get(row)? {
        AnyValue::Null => NULL_PARTITION.to_string(),
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        other => {
            let as_text = c.slice(row as i64, 1).cast(&DataType::String)?;
            as_text
                .str()?
                .get(0)
                .map_or_else(|| other.to_string(), String::from)
        }
    })
}

/// Escapes a partition key or value as Hive does, so `/`, `=` and friends cannot change
/// the directory structure.
pub fn escape_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if needs_escape(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '"' | '#'
                | '%'
                | '\''
                | '*'
                | '/'
                | ':'
                | '='
                | '?'
                | '\\'
                | '\x7f'
                | '{'
                | '['
                | ']'
                | '^'
        )
}

/// Every character [`escape_path`] escapes, in code point order: all are below U+00A0
/// (ASCII and the C1 controls), so the list is short enough for the Spark plan to carry.
pub fn escaped_chars() -> String {
    ('\0'..'\u{a0}').filter(|c| needs_escape(*c)).collect()
}

/// The length of [`escape_path`]'s result, without building it.
fn escaped_len(s: &str) -> usize {
    s.chars()
        .map(|c| c.len_utf8() * if needs_escape(c) { 3 } else { 1 })
        .sum()
}

/// The longest `key=value` directory name: file systems refuse names over 255 bytes.
pub const MAX_PARTITION_DIR_BYTES: usize = 255;

/// Takes out the rows whose partition directory (`key=value`, escaped) would be longer
/// than [`MAX_PARTITION_DIR_BYTES`], as rejected under `partition_value_too_long:<key>`:
/// one such value must cost its row, not the file. Only text can be that long.
pub(crate) fn reject_long_partitions(
    mut df: DataFrame,
    partition_by: &[String],
    rejected: &mut Vec<Rejected>,
) -> PolarsResult<DataFrame> {
    for key in partition_by {
        let column = df.column(key)?;
        if column.dtype() != &DataType::String {
            continue;
        }
        let room = MAX_PARTITION_DIR_BYTES - (escaped_len(key) + 1).min(MAX_PARTITION_DIR_BYTES);
        let values = column.str()?;
        // Escaping at most triples a value: most never need measuring.
        let dir_len = |v: &str| {
            if v.len() * 3 <= room {
                0
            } else {
                escaped_len(v)
            }
        };
        // Lengths first, from the views: most batches end here. (A null's view is
        // usually empty; one that is not only sends the batch to the exact check.)
        let short = |arr: &Utf8ViewArray| arr.views().iter().all(|v| v.length as usize * 3 <= room);
        if values.downcast_iter().all(short) || values.iter().flatten().all(|v| dir_len(v) <= room)
        {
            continue;
        }
        let mut reasons = Vec::new();
        let keep: BooleanChunked = values
            .iter()
            .map(|v| {
                let len = v.map_or(0, dir_len);
                if len > room {
                    reasons.push(format!(
                        "partition value of `{key}` is {len} bytes as a path ({room} fit in a \
                         {MAX_PARTITION_DIR_BYTES}-byte directory name)"
                    ));
                }
                Some(len <= room)
            })
            .collect();
        let (kept, refused) = crate::steps::split(&df, &keep)?;
        rejected.push(Rejected {
            frame: refused,
            code: format!("partition_value_too_long:{key}"),
            reasons: Reasons::PerRow(reasons),
        });
        df = kept;
    }
    Ok(df)
}

/// Rejected rows with their reason, written as Parquet: every source column as text (the
/// value as it was read), `_source_line`, `_reject_code`, `_reject_reason`, `_raw`.
pub(crate) struct QuarantineWriter {
    path: PathBuf,
    source_columns: Vec<String>,
    compression: ParquetCompression,
    pending: Vec<DataFrame>,
    /// Reader/typer rejects not yet in `pending`, kept as plain rows: a one-row frame each
    /// cost kilobytes of array buffers, and a file with 1% rejects grew RSS by ~190 bytes
    /// per input row until the flush.
    raw: Vec<RawReject>,
    pending_rows: usize,
    writer: Option<BatchedWriter<BufWriter<File>>>,
    rows: u64,
    pub by_code: BTreeMap<String, u64>,
    schema: Schema,
}

/// A rejected record: its fields as read (or the raw text of a record that could not be
/// split into fields), a reason code and a message.
pub(crate) struct RawReject {
    pub line: u64,
    pub fields: Vec<Option<String>>,
    pub raw: Option<String>,
    pub code: String,
    pub reason: String,
}

/// Rejected rows in the quarantine's columns, and how many each reason code took.
pub(crate) struct QuarantineRows {
    pub frame: DataFrame,
    pub counts: Vec<(String, u64)>,
}

const QUARANTINE_FLUSH_ROWS: usize = 65_536;

impl QuarantineWriter {
    pub fn new(path: PathBuf, source_columns: &[String], compression: Compression) -> Self {
        let mut schema = Schema::with_capacity(source_columns.len() + 4);
        for c in source_columns {
            schema.insert(c.as_str().into(), DataType::String);
        }
        for (name, dtype) in [
            ("_source_line", DataType::UInt64),
            ("_reject_code", DataType::String),
            ("_reject_reason", DataType::String),
            ("_raw", DataType::String),
        ] {
            schema.insert(name.into(), dtype);
        }
        Self {
            path,
            source_columns: source_columns.to_vec(),
            compression: parquet_compression(compression),
            pending: Vec::new(),
            raw: Vec::new(),
            pending_rows: 0,
            writer: None,
            rows: 0,
            by_code: BTreeMap::new(),
            schema,
        }
    }

    /// A rejected record: its fields as text, or its raw text.
    pub fn push_raw(&mut self, reject: RawReject) -> Result<(), EtlError> {
        let code = reject.code.clone();
        self.raw.push(reject);
        self.added(code, 1)
    }

    /// Rows a step or rule rejected, already in the quarantine's columns.
    pub fn push_rows(&mut self, rows: QuarantineRows) -> Result<(), EtlError> {
        // Rejects read before these rows come first in the file.
        self.frame_raw()?;
        for (code, n) in rows.counts {
            *self.by_code.entry(code).or_default() += n;
        }
        self.pending_rows += rows.frame.height();
        self.pending.push(rows.frame);
        if self.pending_rows >= QUARANTINE_FLUSH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Turns the buffered raw rejects into one frame in `pending` (keeping arrival order).
    fn frame_raw(&mut self) -> Result<(), EtlError> {
        if self.raw.is_empty() {
            return Ok(());
        }
        let raw = std::mem::take(&mut self.raw);
        let mut columns: Vec<Column> = Vec::with_capacity(self.schema.len());
        for (i, name) in self.source_columns.iter().enumerate() {
            let values: Vec<Option<&str>> = raw
                .iter()
                .map(|r| r.fields.get(i).and_then(|v| v.as_deref()))
                .collect();
            columns.push(Column::new(name.as_str().into(), values));
        }
        let lines: Vec<u64> = raw.iter().map(|r| r.line).collect();
        columns.push(Column::new("_source_line".into(), lines));
        let codes: Vec<&str> = raw.iter().map(|r| r.code.as_str()).collect();
        columns.push(Column::new("_reject_code".into(), codes));
        let reasons: Vec<&str> = raw.iter().map(|r| r.reason.as_str()).collect();
        columns.push(Column::new("_reject_reason".into(), reasons));
        let texts: Vec<Option<&str>> = raw.iter().map(|r| r.raw.as_deref()).collect();
        columns.push(Column::new("_raw".into(), texts));
        let df = DataFrame::new(raw.len(), columns)
            .context(|| "building quarantine rows".to_string())?;
        self.pending.push(df);
        Ok(())
    }

    /// Counts `n` rows just buffered under `code`; writes the buffer out past the flush size.
    fn added(&mut self, code: String, n: usize) -> Result<(), EtlError> {
        *self.by_code.entry(code).or_default() += n as u64;
        self.pending_rows += n;
        if self.pending_rows >= QUARANTINE_FLUSH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), EtlError> {
        if self.pending_rows == 0 {
            return Ok(());
        }
        self.frame_raw()?;
        if self.writer.is_none() {
            self.writer = Some(open_writer(&self.path, &self.schema, self.compression)?);
        }
        let mut frames = std::mem::take(&mut self.pending).into_iter();
        let mut df = frames.next().expect("pending_rows > 0");
        for f in frames {
            df.vstack_mut_owned(f)
                .context(|| "buffering quarantine rows".to_string())?;
        }
        df.rechunk_mut();
        let writer = self.writer.as_mut().expect("opened above");
        writer
            .write_batch(&df)
            .context(|| format!("writing {}", self.path.display()))?;
        self.rows += df.height() as u64;
        self.pending_rows = 0;
        Ok(())
    }

    pub fn total(&self) -> u64 {
        self.by_code.values().sum()
    }

    /// Closes the file; `None` when nothing was quarantined.
    pub fn finish(mut self) -> Result<Option<(PathBuf, u64, u64)>, EtlError> {
        self.flush()?;
        match self.writer.take() {
            None => Ok(None),
            Some(w) => {
                let bytes = w
                    .finish()
                    .context(|| format!("closing {}", self.path.display()))?;
                Ok(Some((self.path, self.rows, bytes)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_escaping_keeps_paths_flat() {
        assert_eq!(escape_path("US"), "US");
        assert_eq!(escape_path("a/b=c"), "a%2Fb%3Dc");
        assert_eq!(escape_path("100%"), "100%25");
        assert_eq!(escape_path("São Paulo"), "São Paulo");
    }

    fn long(i: usize) -> String {
        format!("a value longer than twelve bytes, number {i}")
    }

    #[test]
    fn scattered_strings_own_exactly_their_bytes() {
        let values: Vec<Option<String>> = (0..3000)
            .map(|i| match i % 3 {
                0 => Some(long(i)),
                1 => Some(format!("short {}", i % 100)),
                _ => None,
            })
            .collect();
        let ca = StringChunked::new("s".into(), &values);
        let arr = ca.downcast_iter().next().unwrap();
        let part_of: Vec<u32> = (0..3000).map(|i| (i / 7 % 4) as u32).collect();
        let lens: Vec<usize> = (0..4)
            .map(|p| part_of.iter().filter(|&&q| q == p).count())
            .collect();

        let parts = scatter_strings(arr, &part_of, &lens).unwrap();
        assert_eq!(parts.len(), 4);
        for (p, part) in parts.iter().enumerate() {
            let want: Vec<Option<&str>> = (0..3000)
                .filter(|&r| part_of[r] == p as u32)
                .map(|r| values[r].as_deref())
                .collect();
            let got: Vec<Option<&str>> = part.iter().collect();
            assert_eq!(got, want, "part {p}");
            let long_bytes: usize = want
                .iter()
                .flatten()
                .map(|v| v.len())
                .filter(|&n| n > 12)
                .sum();
            assert_eq!(part.data_buffers().len(), 1, "part {p}");
            assert_eq!(part.total_buffer_len(), long_bytes, "part {p}");
        }
    }

    #[test]
    fn escaped_chars_lists_every_escaped_character() {
        let listed = escaped_chars();
        assert!(listed.contains('%') && listed.contains('\u{85}') && !listed.contains('a'));
        // Nothing past the list's range is escaped, so the Spark runner misses nothing.
        assert!(('\u{a0}'..=char::MAX).all(|c| !needs_escape(c)));
    }

    #[test]
    fn split_gives_each_partition_its_rows_in_input_order() {
        let keys = [Some("US"), None, Some("DE"), Some("US"), None, Some("US")];
        let df = df!(
            "country" => keys,
            "id" => [1i64, 2, 3, 4, 5, 6],
            "text" => (0..6).map(long).collect::<Vec<_>>(),
        )
        .unwrap();
        let schema = Schema::from_iter([
            Field::new("id".into(), DataType::Int64),
            Field::new("text".into(), DataType::String),
        ]);

        let parts = split(&df, &["country".to_string()], &schema).unwrap();
        let got: Vec<(Vec<String>, Vec<i64>, Vec<String>)> = parts
            .iter()
            .map(|(values, part)| {
                assert_eq!(part.get_column_names(), ["id", "text"]);
                let ids = part.column("id").unwrap().i64().unwrap();
                let texts = part.column("text").unwrap().str().unwrap();
                (
                    values.clone(),
                    ids.into_no_null_iter().collect(),
                    texts.iter().map(|t| t.unwrap().to_string()).collect(),
                )
            })
            .collect();
        let part = |value: &str, ids: &[i64]| {
            let texts = ids.iter().map(|&i| long(i as usize - 1)).collect();
            (vec![value.to_string()], ids.to_vec(), texts)
        };
        assert_eq!(
            got,
            [
                part("US", &[1, 4, 6]),
                part(NULL_PARTITION, &[2, 5]),
                part("DE", &[3])
            ]
        );

        // No partition keys: one part, the whole batch.
        let whole = split(&df, &[], &schema).unwrap();
        assert_eq!(whole.len(), 1);
        assert!(whole[0].0.is_empty());
        assert_eq!(whole[0].1, df.select(["id", "text"]).unwrap());
    }
}
