//! The transform engine of the serverless ETL functions: pure, no AWS, no network.
//!
//! A [`PipelineSpec`] (YAML) declares a dataset: its source format and schema, ordered
//! steps, quality rules and Parquet output. [`Pipeline::compile`] checks it against its
//! reference data; [`Pipeline::run`] streams one input through it and returns a
//! [`RunManifest`] whose counts add up: every input row is written, dropped as a
//! duplicate, or quarantined with its reason.

mod alloc;
mod batch;
mod chars;
pub mod error;
mod hash;
mod limits;
pub mod manifest;
mod ordered;
mod pipeline;
pub mod quality;
mod raw;
mod read;
pub mod schema;
pub mod spark;
pub mod spec;
mod sql;
mod stages;
mod steps;
pub mod types;
mod validate;
mod write;

pub use alloc::tune_allocator;
pub use error::{EtlError, InputError, SpecError, find_cause};
pub use limits::SourceFailure;
pub use manifest::{Counts, RunManifest, RunStatus, SchemaColumn};
pub use pipeline::{
    DEFAULT_BATCH_SIZE, MAX_SOURCE_ID_BYTES, Pipeline, RunOptions, fnv1a64, object_output_id,
    source_id,
};
pub use read::InputColumns;
pub use spark::{PLAN_VERSION, spark_plan};
pub use spec::PipelineSpec;
pub use steps::ReferenceLoader;
pub use write::{NULL_PARTITION, OutputFile, escape_path};

/// polars, re-exported so callers read outputs with the same version.
pub use polars;
