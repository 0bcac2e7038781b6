//! The bytes of a batch's records as they stood in the input, kept beside the typed batch
//! so that rows a step or rule rejects are quarantined with the text that was read, not
//! their typed values. Only rejected rows are split again; the others cost one copy of
//! their bytes.

use std::sync::Arc;

use polars::prelude::*;

use crate::batch::RECORD_COLUMN;
use crate::error::{EtlError, PolarsContext};
use crate::read::Layout;
use crate::steps::{Reasons, Rejected};
use crate::write::QuarantineRows;

/// The records of one batch, in the order typed: record `key` is at `key - first`.
pub(crate) struct RawRecords {
    first: u64,
    lines: Vec<u64>,
    /// End of each record in `bytes`; it starts where the one before ended.
    ends: Vec<usize>,
    bytes: Vec<u8>,
    layout: Option<Arc<Layout>>,
}

impl RawRecords {
    /// Room for `records` records of `bytes` bytes, the first keyed `first`.
    pub fn new(first: u64, records: usize, bytes: usize) -> Self {
        Self {
            first,
            lines: Vec::with_capacity(records),
            ends: Vec::with_capacity(records),
            bytes: Vec::with_capacity(bytes),
            layout: None,
        }
    }

    /// Adds the record keyed `first + len()`.
    pub fn push(&mut self, line: u64, raw: &[u8]) {
        self.bytes.extend_from_slice(raw);
        self.ends.push(self.bytes.len());
        self.lines.push(line);
    }

    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// The key the next record gets.
    pub fn next_key(&self) -> u64 {
        self.first + self.lines.len() as u64
    }

    pub fn set_layout(&mut self, layout: Option<Arc<Layout>>) {
        self.layout = layout;
    }

    /// Index of the record keyed `key`.
    fn index(&self, key: u64) -> Result<usize, EtlError> {
        key.checked_sub(self.first)
            .map(|i| i as usize)
            .filter(|&i| i < self.lines.len())
            .ok_or_else(|| EtlError::engine(&format!("row {key} is not in its batch")))
    }

    /// A step's error about the record keyed `record` names its line instead.
    pub fn locate(&self, e: EtlError) -> EtlError {
        match e {
            EtlError::Input(mut bad) if bad.line.is_none() => {
                if let Some(i) = bad.record.and_then(|k| self.index(k).ok()) {
                    bad.line = Some(self.lines[i]);
                    bad.record = None;
                }
                EtlError::Input(bad)
            }
            other => other,
        }
    }

    fn record(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    /// Quarantine rows for the rows this batch's steps and rules refused: every source
    /// column as the text that was read, and the record's line. Built as one frame, not a
    /// row at a time: a filter may reject most of a batch.
    pub fn quarantine(&self, rejected: Vec<Rejected>) -> Result<Option<QuarantineRows>, EtlError> {
        let n: usize = rejected.iter().map(|r| r.frame.height()).sum();
        if n == 0 {
            return Ok(None);
        }
        let layout = self
            .layout
            .as_deref()
            .ok_or_else(|| EtlError::engine("records arrived before their layout"))?;
        let mut indices = Vec::with_capacity(n);
        for r in &rejected {
            let keys = r
                .frame
                .column(RECORD_COLUMN)
                .and_then(|c| c.u64().cloned())
                .context(|| "quarantining rows".to_string())?;
            for key in keys.iter() {
                let key = key.ok_or_else(|| EtlError::engine("a row lost its record key"))?;
                indices.push(self.index(key)?);
            }
        }
        let records: Vec<&[u8]> = indices.iter().map(|&i| self.record(i)).collect();
        let mut builders: Vec<StringChunkedBuilder> = layout
            .names()
            .iter()
            .map(|name| StringChunkedBuilder::new(name.as_str().into(), n))
            .collect();
        layout.split_each(&records, |col, text| match text {
            Some(t) => builders[col].append_value(t),
            None => builders[col].append_null(),
        });
        let mut columns: Vec<Column> = builders
            .into_iter()
            .map(|b| b.finish().into_column())
            .collect();
        let lines: Vec<u64> = indices.iter().map(|&i| self.lines[i]).collect();
        columns.push(Column::new("_source_line".into(), lines));
        let mut codes: Vec<&str> = Vec::with_capacity(n);
        let mut reasons: Vec<&str> = Vec::with_capacity(n);
        let mut counts = Vec::with_capacity(rejected.len());
        for r in &rejected {
            let height = r.frame.height();
            codes.extend(std::iter::repeat_n(r.code.as_str(), height));
            match &r.reasons {
                Reasons::Same(s) => reasons.extend(std::iter::repeat_n(s.as_str(), height)),
                Reasons::PerRow(v) => reasons.extend(v.iter().map(String::as_str)),
            }
            counts.push((r.code.clone(), height as u64));
        }
        columns.push(Column::new("_reject_code".into(), codes));
        columns.push(Column::new("_reject_reason".into(), reasons));
        columns.push(Column::full_null("_raw".into(), n, &DataType::String));
        let frame =
            DataFrame::new(n, columns).context(|| "building quarantine rows".to_string())?;
        Ok(Some(QuarantineRows { frame, counts }))
    }
}
