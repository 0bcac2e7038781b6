//! The run manifest: what a run read, wrote, rejected and measured. Its counts add up:
//! `rows_in = rows_out + duplicates + quarantined`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::quality::QualityReport;
use crate::read::InputColumns;
use crate::spec::SourceFormat;
use crate::write::OutputFile;

pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunManifest {
    pub manifest_version: u32,
    pub dataset: String,
    pub source: SourceInfo,
    pub status: RunStatus,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    pub counts: Counts,
    pub outputs: Vec<OutputFile>,
    pub output_bytes: u64,
    pub quarantine: Option<QuarantineFile>,
    pub schema: Vec<SchemaColumn>,
    pub input_columns: InputColumnsReport,
    pub quality: QualityReport,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SourceInfo {
    /// The file or object as named to the run (`s3://bucket/key`).
    pub name: String,
    /// The id output file names derive from.
    pub id: String,
    /// The object's ETag or version, when the caller knows it.
    pub etag: Option<String>,
    /// The object version that was read, when the caller knows it (versioned buckets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// When that version was written (RFC 3339), when the caller knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    pub format: SourceFormat,
    /// Bytes read from the source, before decompression.
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Succeeded,
    /// A quality rule with action `fail` failed: the data must not be published.
    QualityFailed,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub rows_in: u64,
    pub rows_out: u64,
    pub duplicates: u64,
    pub quarantined: u64,
    /// Stable reason code -> rows (`invalid_value:amount`, `filter:valid_email`).
    pub quarantined_by_reason: BTreeMap<String, u64>,
}

impl Counts {
    /// Every input row is accounted for exactly once.
    pub fn balanced(&self) -> bool {
        self.rows_in == self.rows_out + self.duplicates + self.quarantined
            && self.quarantined == self.quarantined_by_reason.values().sum::<u64>()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QuarantineFile {
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
}

/// An output column: its type in the spec's words and in Glue's.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SchemaColumn {
    pub name: String,
    /// polars' name for the type (`i64`, `str`, `datetime[μs, UTC]`).
    pub dtype: String,
    pub glue_type: String,
    /// A hive partition column (in the path, not in the files).
    pub partition: bool,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct InputColumnsReport {
    pub found: Vec<String>,
    pub dropped: Vec<String>,
}

impl From<InputColumns> for InputColumnsReport {
    fn from(c: InputColumns) -> Self {
        Self {
            found: c.found,
            dropped: c.dropped,
        }
    }
}
