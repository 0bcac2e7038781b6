//! The pipeline spec: a dataset's source, schema, steps, quality rules and output,
//! declared in YAML (`infra/pipelines/<dataset>.yaml`).
//!
//! Loading checks everything that can be checked without data (types, column references
//! through the steps, expressions, regexes, fill values), so a bad spec is refused before
//! any file is read, with the file, line and field at fault.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::error::SpecError;
use crate::types::ColumnType;

/// A dataset pipeline, as written in its YAML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// The file the spec was read from, for errors found after loading (not in the YAML).
    #[serde(skip)]
    pub file: String,
    /// Dataset name: the Glue table and the output prefix.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub source: SourceSpec,
    /// The declared input columns, in order. Values are parsed into these types at read.
    pub schema: Vec<Spanned<FieldSpec>>,
    #[serde(default)]
    pub steps: Vec<Spanned<Step>>,
    #[serde(default)]
    pub quality: QualitySpec,
    #[serde(default)]
    pub output: OutputSpec,
}

/// Where input lands and how to read it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Key prefix (in the raw bucket) that routes objects to this pipeline.
    pub prefix: String,
    #[serde(default)]
    pub format: SourceFormat,
    /// CSV field delimiter, a single byte. Defaults to `,` (`\t` for .tsv files).
    #[serde(default)]
    pub delimiter: Option<char>,
    /// Text values read as null. The empty string is always null. Set from the spec's
    /// list by [`PipelineSpec::from_yaml`]: a YAML null in it (`NULL`, `null`, `~`) is the
    /// text it was written as, not a null.
    #[serde(skip_deserializing, default = "default_null_values")]
    pub null_values: Vec<String>,
    /// `null_values` as written, with where each item stands in the spec's text.
    #[serde(rename = "null_values", default)]
    null_values_written: Option<Vec<Spanned<Option<String>>>>,
    /// What to do with input columns the schema does not declare.
    #[serde(default)]
    pub extra_columns: ExtraColumns,
    /// The largest record (a CSV record, an NDJSON line, a JSON value or array element),
    /// in bytes after decompression. A longer one refuses the file: an unclosed quote or a
    /// missing line break would otherwise be read whole into memory.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: u64,
    /// The most bytes one input may decompress to.
    #[serde(default = "default_max_decompressed_bytes")]
    pub max_decompressed_bytes: u64,
    /// The most decompressed bytes per compressed byte read, checked once an input has
    /// decompressed to [`RATIO_CHECKED_AFTER`] bytes: real data stays far below it, a
    /// decompression bomb far above.
    #[serde(default = "default_max_compression_ratio")]
    pub max_compression_ratio: u64,
}

/// Decompressed bytes below which the compression ratio is not checked: a small file of
/// repeated values can compress very well and still be harmless.
pub const RATIO_CHECKED_AFTER: u64 = 64 << 20;

pub(crate) fn default_max_record_bytes() -> u64 {
    16 << 20
}

pub(crate) fn default_max_decompressed_bytes() -> u64 {
    32 << 30
}

pub(crate) fn default_max_compression_ratio() -> u64 {
    200
}

fn default_null_values() -> Vec<String> {
    ["NULL", "null", "NA", "N/A"]
        .into_iter()
        .map(String::from)
        .collect()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// By extension (.csv, .tsv, .json, .ndjson, .jsonl; .gz/.zst stripped) and content.
    #[default]
    Auto,
    Csv,
    /// A JSON array of objects, one object, or concatenated objects.
    Json,
    /// One JSON object per line; a bad line is quarantined, the rest goes on.
    Ndjson,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtraColumns {
    /// Ignore them; the manifest lists their names.
    #[default]
    Drop,
    /// Refuse the file.
    Fail,
}

/// One declared column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// A null (or missing) value quarantines the row.
    #[serde(default)]
    pub required: bool,
    /// chrono format for date and timestamp columns (`%d/%m/%Y`).
    #[serde(default)]
    pub format: Option<String>,
}

/// A transform step. Steps run in the order written.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Drops rows equal to an earlier row (on all columns, or on `columns`); keeps the first.
    Deduplicate(DeduplicateStep),
    /// Replaces nulls: `{name: Unknown, amount: 0}`.
    FillNull(BTreeMap<String, FillValue>),
    /// Keeps rows where `where` is true; the others are quarantined with the step's name.
    Filter(FilterStep),
    /// Adds (or replaces) a column.
    Derive(DeriveStep),
    /// Left-joins a reference table on a key.
    Join(JoinStep),
    /// Converts a column to another type; a value that does not convert quarantines its row.
    Cast(CastStep),
    /// Adds the run's start time as a UTC timestamp column.
    ProcessedAt(ProcessedAtStep),
}

impl Step {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Deduplicate(_) => "deduplicate",
            Self::FillNull(_) => "fill_null",
            Self::Filter(_) => "filter",
            Self::Derive(_) => "derive",
            Self::Join(_) => "join",
            Self::Cast(_) => "cast",
            Self::ProcessedAt(_) => "processed_at",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeduplicateStep {
    /// Key columns; all columns when absent.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
}

/// A fill value, checked against the column's type at load.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum FillValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterStep {
    /// Names the reason quarantined rows carry (`filter:<name>`).
    pub name: String,
    /// A SQL boolean expression over the columns (`amount >= 0`). Null counts as false.
    #[serde(rename = "where")]
    pub condition: String,
}

/// Adds (or replaces) `column`. Exactly one of the ways to compute it is given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeriveStep {
    pub column: String,
    /// A SQL expression (`upper(country)`, `CASE WHEN ... END`): the grammar is in
    /// README's spec reference and `sql.rs`.
    #[serde(default)]
    pub sql: Option<String>,
    /// Ordered bins: the first `if` that holds gives the value, else `else`.
    #[serde(default)]
    pub case: Option<CaseSpec>,
    /// Splits a text column and keeps one part (0-based; null when missing).
    #[serde(default)]
    pub split: Option<SplitSpec>,
    /// Replaces every match of a regex in a text column.
    #[serde(default)]
    pub regex_replace: Option<RegexReplaceSpec>,
}

/// The one way a derive step computes its column.
pub enum DeriveExpr<'a> {
    Sql(&'a str),
    Case(&'a CaseSpec),
    Split(&'a SplitSpec),
    RegexReplace(&'a RegexReplaceSpec),
}

impl DeriveStep {
    /// The computation, or a message when none or several are given.
    pub fn expr(&self) -> Result<DeriveExpr<'_>, String> {
        let mut given = Vec::new();
        if let Some(s) = &self.sql {
            given.push(DeriveExpr::Sql(s));
        }
        if let Some(c) = &self.case {
            given.push(DeriveExpr::Case(c));
        }
        if let Some(s) = &self.split {
            given.push(DeriveExpr::Split(s));
        }
        if let Some(r) = &self.regex_replace {
            given.push(DeriveExpr::RegexReplace(r));
        }
        match given.len() {
            1 => Ok(given.remove(0)),
            0 => Err("needs one of `sql`, `case`, `split`, `regex_replace`".into()),
            _ => Err("give only one of `sql`, `case`, `split`, `regex_replace`".into()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSpec {
    pub when: Vec<WhenThen>,
    #[serde(rename = "else", default)]
    pub otherwise: Option<FillValue>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenThen {
    /// SQL boolean expression.
    #[serde(rename = "if")]
    pub condition: String,
    pub then: FillValue,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    pub from: String,
    pub separator: String,
    pub index: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexReplaceSpec {
    pub from: String,
    pub pattern: String,
    #[serde(default)]
    pub replacement: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinStep {
    /// A CSV or Parquet file; relative paths are taken from the spec's folder.
    pub path: String,
    /// Key column in the data.
    pub on: String,
    /// Key column in the reference table; `on` when absent.
    #[serde(default)]
    pub reference_on: Option<String>,
    /// Reference columns to add; all when absent.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Types of reference columns when the reference is CSV (default string).
    #[serde(default)]
    pub schema: Vec<FieldSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CastStep {
    pub column: String,
    pub to: ColumnType,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessedAtStep {
    #[serde(default = "default_processed_at")]
    pub column: String,
}

fn default_processed_at() -> String {
    "processed_at".into()
}

/// Data quality rules, named after Glue Data Quality's DQDL rule types.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualitySpec {
    /// Alert when the share of passed rules falls below this (0..=1).
    #[serde(default)]
    pub min_score: Option<f64>,
    #[serde(default)]
    pub rules: Vec<Spanned<RuleSpec>>,
}

/// One rule. Row-level rules (IsComplete, ColumnValues) can quarantine failing rows;
/// dataset-level rules can only fail the run or alert.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub rule: RuleKind,
    #[serde(default)]
    pub column: Option<String>,
    /// Minimum share of rows that must pass (Completeness, Uniqueness, ColumnValues,
    /// DataFreshness). Defaults to 1.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// ColumnValues: a regex every value must match.
    #[serde(default)]
    pub matches: Option<String>,
    /// ColumnValues: inclusive numeric range `[min, max]`.
    #[serde(default)]
    pub between: Option<[f64; 2]>,
    /// ColumnValues: allowed values.
    #[serde(default, rename = "in")]
    pub allowed: Option<Vec<String>>,
    /// RowCount bounds.
    #[serde(default)]
    pub min: Option<u64>,
    #[serde(default)]
    pub max: Option<u64>,
    /// DataFreshness: the oldest acceptable value, as age (`24h`, `7d`, `90m`).
    #[serde(default)]
    pub max_age: Option<String>,
    #[serde(default)]
    pub action: Option<RuleAction>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum RuleKind {
    IsComplete,
    Completeness,
    IsUnique,
    Uniqueness,
    ColumnValues,
    ColumnExists,
    RowCount,
    DataFreshness,
}

impl RuleKind {
    /// Rules decided per row, whose failing rows can be quarantined.
    pub fn is_row_level(self) -> bool {
        matches!(self, Self::IsComplete | Self::ColumnValues)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Failing rows go to quarantine (row-level rules only).
    Quarantine,
    /// The run fails; its data is not published.
    Fail,
    /// Reported, and counted in the score.
    Alert,
}

/// How the Parquet output is laid out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Hive partition columns, in path order.
    #[serde(default)]
    pub partition_by: Vec<String>,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default = "default_row_group_size")]
    pub row_group_size: usize,
}

impl Default for OutputSpec {
    fn default() -> Self {
        Self {
            partition_by: Vec::new(),
            compression: Compression::default(),
            row_group_size: default_row_group_size(),
        }
    }
}

fn default_row_group_size() -> usize {
    122_880
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Zstd,
    Snappy,
    Gzip,
    Uncompressed,
}

impl PipelineSpec {
    /// Reads and checks a spec file.
    pub fn from_file(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|e| SpecError {
            file: path.display().to_string(),
            line: None,
            field: String::new(),
            message: format!("cannot read the spec: {e}"),
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Parses and checks a spec; `file` names it in errors.
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, SpecError> {
        // The path of the field at fault, which serde-saphyr's errors do not carry.
        let mut field = String::new();
        let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
            serde_path_to_error::deserialize(de).map_err(|e| {
                field = field_path(e.path());
                e.into_inner()
            })
        });
        let mut spec: Self = parsed.map_err(|e| {
            let loc = e.location();
            let options = serde_saphyr::render_options! {
                formatter: &serde_saphyr::UserMessageFormatter,
                snippets: serde_saphyr::SnippetMode::Off,
            };
            SpecError {
                file: file.to_string(),
                line: loc.map(|l| l.line()),
                field,
                message: plain_words(&first_line_message(&e.render_with_options(options))),
            }
        })?;
        if let Some(written) = spec.source.null_values_written.take() {
            spec.source.null_values = written
                .iter()
                .map(|item| match &item.value {
                    Some(value) => value.clone(),
                    None => text_at(text, &item.defined).to_string(),
                })
                .collect();
        }
        crate::validate::check(&spec).map_err(|mut e| {
            e.file = file.to_string();
            e
        })?;
        spec.file = file.to_string();
        Ok(spec)
    }

    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.schema
            .iter()
            .map(|f| &f.value)
            .find(|f| f.name == name)
    }
}

/// The spec text a scalar was written as (empty for an empty item, or without a span).
fn text_at<'a>(text: &'a str, at: &serde_saphyr::Location) -> &'a str {
    let span = at.span();
    span.byte_offset()
        .zip(span.byte_len())
        .and_then(|(start, len)| text.get(start as usize..(start + len) as usize))
        .unwrap_or("")
}

/// `source.null_values[0]`, as a user would point at it. Spanned list items add a `value`
/// level of their own, which the spec's text does not have.
fn field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    let mut after_index = false;
    for segment in path {
        let name = match segment {
            Segment::Seq { index } => {
                out.push_str(&format!("[{index}]"));
                after_index = true;
                continue;
            }
            Segment::Map { key } if after_index && key == "value" => {
                after_index = false;
                continue;
            }
            Segment::Map { key } => key.as_str(),
            Segment::Enum { variant } => variant.as_str(),
            Segment::Unknown => "?",
        };
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(name);
        after_index = false;
    }
    out
}

/// serde names the Rust type it expected (`struct FieldSpec`, `u64`); a spec's author
/// reads YAML, so say it in YAML's words.
fn plain_words(message: &str) -> String {
    static WORDS: std::sync::LazyLock<Vec<(regex::Regex, &str)>> = std::sync::LazyLock::new(|| {
        let re = |p: &str| regex::Regex::new(p).expect("a valid pattern");
        let unsigned = r"(?:u8|u16|u32|u64|u128|usize)";
        let signed = r"(?:i8|i16|i32|i64|i128|isize)";
        let float = r"(?:f32|f64)";
        vec![
            (
                re(&format!(r"\binvalid {unsigned}\b")),
                "expected a whole number of 0 or more",
            ),
            (
                re(&format!(r"\binvalid {signed}\b")),
                "expected a whole number",
            ),
            (re(&format!(r"\binvalid {float}\b")), "expected a number"),
            (
                re(&format!(r"\b{unsigned}\b")),
                "a whole number of 0 or more",
            ),
            (re(&format!(r"\b{signed}\b")), "a whole number"),
            (re(&format!(r"\b{float}\b")), "a number"),
            (
                re(r"\b(?:tuple |unit )?struct [A-Za-z_][A-Za-z0-9_]*"),
                "a mapping",
            ),
            (
                re(r"\benum [A-Za-z_][A-Za-z0-9_]*"),
                "one of the documented forms",
            ),
            (re(r"\bOption<[^>]*>"), "an optional value"),
        ]
    });
    let mut out = message.to_string();
    for (pattern, words) in WORDS.iter() {
        out = pattern.replace_all(&out, *words).into_owned();
    }
    out
}

/// serde-saphyr renders `error: line L column C: message` and a snippet; the line
/// travels in its own field, so keep the message alone.
fn first_line_message(rendered: &str) -> String {
    let mut msg = rendered.lines().next().unwrap_or(rendered).trim();
    msg = msg.strip_prefix("error: ").unwrap_or(msg);
    if msg.starts_with("line ")
        && let Some((_, rest)) = msg.split_once(": ")
    {
        msg = rest;
    }
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}
