//! Glue Data Catalog sync, so Athena sees new data without a crawler run.
//!
//! - the database and table are created when missing (Parquet, as Athena expects);
//! - new data columns are appended (UpdateTable with the VersionId we read, re-read and
//!   retried on ConcurrentModificationException, so concurrent writers never lose a column);
//! - a column whose type changes, or changed partition keys, are refused: Athena would
//!   fail reading the older files;
//! - partitions are added with BatchCreatePartition; ones that exist already are fine.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_glue::error::ProvideErrorMetadata;
use aws_sdk_glue::types::{
    Column, DatabaseInput, PartitionInput, SerDeInfo, StorageDescriptor, Table, TableInput,
};

use crate::error::{ErrorKind, EtlError, Service, classify_code_status};

pub const PARQUET_INPUT_FORMAT: &str =
    "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
pub const PARQUET_OUTPUT_FORMAT: &str =
    "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
pub const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
/// BatchCreatePartition accepts at most 100 partitions per call.
pub const PARTITION_BATCH: usize = 100;
const UPDATE_ATTEMPTS: u32 = 5;

/// A column: name and Glue/Hive type (`string`, `bigint`, `double`, `decimal(10,2)`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    pub name: String,
    pub glue_type: String,
}

impl ColumnSpec {
    pub fn new(name: impl Into<String>, glue_type: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            glue_type: glue_type.into(),
        }
    }
}

/// The table the data needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub database: String,
    pub table: String,
    /// `s3://bucket/prefix/` holding the table's partition directories.
    pub location: String,
    pub columns: Vec<ColumnSpec>,
    pub partition_keys: Vec<ColumnSpec>,
}

/// What [`sync_table`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncAction {
    Created,
    Updated,
    Unchanged,
}

/// The result of [`sync_table`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    pub action: SyncAction,
    /// Columns appended by this call.
    pub added_columns: Vec<String>,
}

/// What has to change in a table's data columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaPlan {
    /// The full column list to store: the existing columns in order, then the new ones.
    pub columns: Vec<ColumnSpec>,
    pub added: Vec<String>,
}

fn normalize_type(t: &str) -> String {
    t.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Plans the evolution of `table` from `existing` to `desired` columns. Columns are matched
/// by name without case (Athena lowercases names). Existing columns are kept in place (older
/// files still have them, even when the new data does not); new ones are appended; a type
/// change or a changed partition key list is an [`ErrorKind::InvalidInput`] error.
pub fn plan_schema(
    table: &str,
    existing: &[ColumnSpec],
    existing_partition_keys: &[ColumnSpec],
    desired: &TableSpec,
) -> Result<SchemaPlan, EtlError> {
    let same_keys = existing_partition_keys.len() == desired.partition_keys.len()
        && existing_partition_keys
            .iter()
            .zip(&desired.partition_keys)
            .all(|(a, b)| {
                a.name.eq_ignore_ascii_case(&b.name)
                    && normalize_type(&a.glue_type) == normalize_type(&b.glue_type)
            });
    if !same_keys {
        let show = |keys: &[ColumnSpec]| {
            keys.iter()
                .map(|c| format!("{} {}", c.name, c.glue_type))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(EtlError::invalid_input(format!(
            "table {table}: partition keys are [{}] in the catalog but [{}] in the data; \
             partition keys cannot change, write to a new table",
            show(existing_partition_keys),
            show(&desired.partition_keys)
        )));
    }
    let mut columns = existing.to_vec();
    let mut added = Vec::new();
    for want in &desired.columns {
        match columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(&want.name))
        {
            Some(have) if normalize_type(&have.glue_type) == normalize_type(&want.glue_type) => {}
            Some(have) => {
                return Err(EtlError::invalid_input(format!(
                    "table {table}: column {} is {} in the catalog but {} in the data; \
                     Athena could not read the existing files with the new type. Cast it \
                     back in the pipeline spec, or write the new type under a new column name",
                    have.name, have.glue_type, want.glue_type
                )));
            }
            None => {
                columns.push(want.clone());
                added.push(want.name.clone());
            }
        }
    }
    Ok(SchemaPlan { columns, added })
}

/// Escapes a partition key or value the way Hive (and etl-core's partition directories)
/// do, so the partition location matches the directory the data was written to.
pub fn escape_partition_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let escape = c.is_control()
            || matches!(
                c,
                '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '{' | '[' | ']' | '^'
            );
        if escape {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The S3 location of a partition: `<table location>/k1=v1/k2=v2/`.
pub fn partition_location(spec: &TableSpec, values: &[String]) -> String {
    let mut loc = spec.location.trim_end_matches('/').to_string();
    for (key, value) in spec.partition_keys.iter().zip(values) {
        loc.push('/');
        loc.push_str(&escape_partition_value(&key.name));
        loc.push('=');
        loc.push_str(&escape_partition_value(value));
    }
    loc.push('/');
    loc
}

fn to_columns(specs: &[ColumnSpec]) -> Result<Vec<Column>, EtlError> {
    specs
        .iter()
        .map(|c| {
            Column::builder()
                .name(&c.name)
                .r#type(&c.glue_type)
                .build()
                .map_err(|e| EtlError::internal(format!("building Glue column {}: {e}", c.name)))
        })
        .collect()
}

fn from_columns(columns: &[Column]) -> Vec<ColumnSpec> {
    columns
        .iter()
        .map(|c| ColumnSpec::new(c.name(), c.r#type().unwrap_or_default()))
        .collect()
}

fn storage_descriptor(
    columns: &[ColumnSpec],
    location: &str,
) -> Result<StorageDescriptor, EtlError> {
    Ok(StorageDescriptor::builder()
        .set_columns(Some(to_columns(columns)?))
        .location(location)
        .input_format(PARQUET_INPUT_FORMAT)
        .output_format(PARQUET_OUTPUT_FORMAT)
        .serde_info(
            SerDeInfo::builder()
                .serialization_library(PARQUET_SERDE)
                .parameters("serialization.format", "1")
                .build(),
        )
        .build())
}

fn table_input(
    spec: &TableSpec,
    columns: &[ColumnSpec],
    existing_parameters: Option<&HashMap<String, String>>,
) -> Result<TableInput, EtlError> {
    // Keep parameters others set on the table (e.g. projection settings); ours win.
    let mut parameters = existing_parameters.cloned().unwrap_or_default();
    parameters.insert("classification".into(), "parquet".into());
    parameters.insert("EXTERNAL".into(), "TRUE".into());
    TableInput::builder()
        .name(&spec.table)
        .table_type("EXTERNAL_TABLE")
        .set_parameters(Some(parameters))
        .storage_descriptor(storage_descriptor(columns, &spec.location)?)
        .set_partition_keys(Some(to_columns(&spec.partition_keys)?))
        .build()
        .map_err(|e| EtlError::internal(format!("building Glue table input {}: {e}", spec.table)))
}

fn qualified(spec: &TableSpec) -> String {
    format!("{}.{}", spec.database, spec.table)
}

/// Creates the database when it does not exist.
pub async fn ensure_database(
    client: &aws_sdk_glue::Client,
    database: &str,
) -> Result<(), EtlError> {
    match client.get_database().name(database).send().await {
        Ok(_) => return Ok(()),
        Err(e) if e.code() == Some("EntityNotFoundException") => {}
        Err(e) => {
            return Err(EtlError::from_sdk(
                format!("reading Glue database {database}"),
                e,
            ));
        }
    }
    let input = DatabaseInput::builder()
        .name(database)
        .build()
        .map_err(|e| EtlError::internal(format!("building Glue database input: {e}")))?;
    match client.create_database().database_input(input).send().await {
        Ok(_) => {
            tracing::info!(database, "Glue database created");
            Ok(())
        }
        // Another writer created it first.
        Err(e) if e.code() == Some("AlreadyExistsException") => Ok(()),
        Err(e) => Err(EtlError::from_sdk(
            format!("creating Glue database {database}"),
            e,
        )),
    }
}

async fn get_table(
    client: &aws_sdk_glue::Client,
    spec: &TableSpec,
) -> Result<Option<Table>, EtlError> {
    match client
        .get_table()
        .database_name(&spec.database)
        .name(&spec.table)
        .send()
        .await
    {
        Ok(out) => Ok(out.table),
        Err(e) if e.code() == Some("EntityNotFoundException") => Ok(None),
        Err(e) => Err(EtlError::from_sdk(
            format!("reading Glue table {}", qualified(spec)),
            e,
        )),
    }
}

/// Makes the catalog table match `spec` (see the module docs).
pub async fn sync_table(
    client: &aws_sdk_glue::Client,
    spec: &TableSpec,
) -> Result<SyncOutcome, EtlError> {
    if let Some(dup) = spec.columns.iter().find(|c| {
        spec.partition_keys
            .iter()
            .any(|k| k.name.eq_ignore_ascii_case(&c.name))
    }) {
        return Err(EtlError::invalid_input(format!(
            "table {}: {} is both a data column and a partition key",
            qualified(spec),
            dup.name
        )));
    }
    ensure_database(client, &spec.database).await?;
    let name = qualified(spec);
    for attempt in 0..UPDATE_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
        }
        let Some(table) = get_table(client, spec).await? else {
            let input = table_input(spec, &spec.columns, None)?;
            match client
                .create_table()
                .database_name(&spec.database)
                .table_input(input)
                .send()
                .await
            {
                Ok(_) => {
                    tracing::info!(table = %name, columns = spec.columns.len(), "Glue table created");
                    return Ok(SyncOutcome {
                        action: SyncAction::Created,
                        added_columns: spec.columns.iter().map(|c| c.name.clone()).collect(),
                    });
                }
                // Created concurrently: go round again and evolve it.
                Err(e) if e.code() == Some("AlreadyExistsException") => continue,
                Err(e) => return Err(EtlError::from_sdk(format!("creating Glue table {name}"), e)),
            }
        };
        let sd = table.storage_descriptor();
        let existing = from_columns(sd.map(|s| s.columns()).unwrap_or_default());
        let existing_keys = from_columns(table.partition_keys());
        let plan = plan_schema(&name, &existing, &existing_keys, spec)?;
        let same_location = sd
            .and_then(|s| s.location())
            .map(|l| l.trim_end_matches('/'))
            == Some(spec.location.trim_end_matches('/'));
        if plan.added.is_empty() && same_location {
            tracing::debug!(table = %name, "Glue table up to date");
            return Ok(SyncOutcome {
                action: SyncAction::Unchanged,
                added_columns: Vec::new(),
            });
        }
        let input = table_input(spec, &plan.columns, table.parameters())?;
        match client
            .update_table()
            .database_name(&spec.database)
            .table_input(input)
            .set_version_id(table.version_id().map(String::from))
            .send()
            .await
        {
            Ok(_) => {
                tracing::info!(table = %name, added = ?plan.added, "Glue table evolved");
                return Ok(SyncOutcome {
                    action: SyncAction::Updated,
                    added_columns: plan.added,
                });
            }
            Err(e) if e.code() == Some("ConcurrentModificationException") => {
                tracing::info!(table = %name, attempt, "Glue table changed concurrently, retrying");
                continue;
            }
            Err(e) => return Err(EtlError::from_sdk(format!("updating Glue table {name}"), e)),
        }
    }
    Err(EtlError::transient(format!(
        "updating Glue table {name}: still conflicting after {UPDATE_ATTEMPTS} attempts"
    )))
}

/// The result of [`add_partitions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartitionOutcome {
    pub created: usize,
    pub already_existed: usize,
}

/// Registers partitions (each a list of values, one per partition key, in key order).
/// Partitions that exist already are counted, not errors, so a redelivered event is safe.
pub async fn add_partitions(
    client: &aws_sdk_glue::Client,
    spec: &TableSpec,
    partitions: &[Vec<String>],
) -> Result<PartitionOutcome, EtlError> {
    let name = qualified(spec);
    if let Some(bad) = partitions
        .iter()
        .find(|v| v.len() != spec.partition_keys.len())
    {
        return Err(EtlError::invalid_input(format!(
            "table {name}: partition values {bad:?} do not match the {} partition keys",
            spec.partition_keys.len()
        )));
    }
    // A batch naming the same partition twice would report it as already existing.
    let unique: Vec<&Vec<String>> = partitions
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut outcome = PartitionOutcome::default();
    for chunk in unique.chunks(PARTITION_BATCH) {
        let inputs = chunk
            .iter()
            .map(|values| {
                Ok(PartitionInput::builder()
                    .set_values(Some((*values).clone()))
                    .storage_descriptor(storage_descriptor(
                        &spec.columns,
                        &partition_location(spec, values),
                    )?)
                    .build())
            })
            .collect::<Result<Vec<_>, EtlError>>()?;
        let out = client
            .batch_create_partition()
            .database_name(&spec.database)
            .table_name(&spec.table)
            .set_partition_input_list(Some(inputs))
            .send()
            .await
            .map_err(|e| EtlError::from_sdk(format!("adding partitions to {name}"), e))?;
        let mut existed = 0;
        let mut failures = Vec::new();
        for err in out.errors() {
            let code = err.error_detail().and_then(|d| d.error_code());
            if code == Some("AlreadyExistsException") {
                existed += 1;
            } else {
                failures.push((
                    err.partition_values().to_vec(),
                    code.map(String::from),
                    err.error_detail()
                        .and_then(|d| d.error_message())
                        .unwrap_or_default()
                        .to_string(),
                ));
            }
        }
        if let Some((values, code, message)) = failures.first() {
            let kind = classify_code_status(Service::Glue, code.as_deref(), None);
            return Err(EtlError::new(
                if kind == ErrorKind::Internal {
                    ErrorKind::InvalidInput
                } else {
                    kind
                },
                format!(
                    "adding partitions to {name}: {} failed, first {values:?}: {}: {message}",
                    failures.len(),
                    code.as_deref().unwrap_or("unknown error")
                ),
            ));
        }
        outcome.already_existed += existed;
        outcome.created += chunk.len() - existed;
    }
    tracing::info!(
        table = %name,
        created = outcome.created,
        already_existed = outcome.already_existed,
        "Glue partitions registered"
    );
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(columns: &[(&str, &str)], keys: &[(&str, &str)]) -> TableSpec {
        TableSpec {
            database: "db".into(),
            table: "t".into(),
            location: "s3://b/processed/t/".into(),
            columns: columns
                .iter()
                .map(|(n, t)| ColumnSpec::new(*n, *t))
                .collect(),
            partition_keys: keys.iter().map(|(n, t)| ColumnSpec::new(*n, *t)).collect(),
        }
    }

    #[test]
    fn appends_new_columns_in_order() {
        let have = spec(
            &[("id", "bigint"), ("name", "string")],
            &[("country", "string")],
        );
        let want = spec(
            &[
                ("email", "string"),
                ("ID", "BIGINT"),
                ("amount", "decimal(10, 2)"),
            ],
            &[("country", "string")],
        );
        let plan = plan_schema("db.t", &have.columns, &have.partition_keys, &want).unwrap();
        let names: Vec<_> = plan.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "name", "email", "amount"]);
        assert_eq!(plan.added, ["email", "amount"]);

        let again = spec(&[("amount", "decimal(10,2)")], &[("country", "string")]);
        let plan = plan_schema("db.t", &plan.columns, &have.partition_keys, &again).unwrap();
        assert!(plan.added.is_empty());
    }

    #[test]
    fn refuses_type_changes_and_key_changes() {
        let have = spec(&[("amount", "double")], &[("country", "string")]);
        let want = spec(&[("amount", "bigint")], &[("country", "string")]);
        let err = plan_schema("db.t", &have.columns, &have.partition_keys, &want).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(
            err.to_string()
                .contains("column amount is double in the catalog but bigint in the data"),
            "{err}"
        );
        let want = spec(&[("amount", "double")], &[("region", "string")]);
        let err = plan_schema("db.t", &have.columns, &have.partition_keys, &want).unwrap_err();
        assert!(err.to_string().contains("partition keys"), "{err}");
    }

    #[test]
    fn partition_locations_are_hive_escaped() {
        let s = spec(
            &[("id", "bigint")],
            &[("country", "string"), ("segment", "string")],
        );
        assert_eq!(
            partition_location(&s, &["US".into(), "a/b=c".into()]),
            "s3://b/processed/t/country=US/segment=a%2Fb%3Dc/"
        );
        assert_eq!(escape_partition_value("100%"), "100%25");
        assert_eq!(escape_partition_value("Zürich"), "Zürich");
    }
}
