//! Typing at read: each record's fields are parsed into the schema's types and appended
//! to column builders; a record with a field that does not parse is returned as a reject
//! (with the field and the reason) and nothing of it is appended.

use std::borrow::Cow;

use polars::prelude::*;

use crate::read::{Field, Record};
use crate::spec::FieldSpec;
use crate::types::{self, ColumnType};

/// The hidden column that carries each row's input line through the steps, so a row
/// rejected late still names where it came from.
pub const LINE_COLUMN: &str = "__line";

/// Why a record was refused while typing it.
#[derive(Debug)]
pub(crate) struct Reject {
    /// Stable reason key for counting (`invalid_value:amount`).
    pub code: String,
    /// What a person reads.
    pub reason: String,
}

#[derive(Debug)]
enum Cell<'a> {
    Null,
    Text(Cow<'a, str>),
    I64(i64),
    F64(f64),
    Bool(bool),
    I32(i32),
    I128(i128),
}

enum Builder {
    Text(StringChunkedBuilder),
    I64(Vec<Option<i64>>),
    F64(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Date(Vec<Option<i32>>),
    Timestamp(Vec<Option<i64>>),
    Decimal(Vec<Option<i128>>, u8, u8),
}

impl Builder {
    fn new(ty: ColumnType, name: &str, capacity: usize) -> Self {
        match ty {
            ColumnType::String => Self::Text(StringChunkedBuilder::new(name.into(), capacity)),
            ColumnType::Bigint => Self::I64(Vec::with_capacity(capacity)),
            ColumnType::Double => Self::F64(Vec::with_capacity(capacity)),
            ColumnType::Boolean => Self::Bool(Vec::with_capacity(capacity)),
            ColumnType::Date => Self::Date(Vec::with_capacity(capacity)),
            ColumnType::Timestamp => Self::Timestamp(Vec::with_capacity(capacity)),
            ColumnType::Decimal { precision, scale } => {
                Self::Decimal(Vec::with_capacity(capacity), precision, scale)
            }
        }
    }

    /// Appends a cell of the builder's own type (the typer guarantees it).
    fn push(&mut self, cell: Cell<'_>) {
        match (self, cell) {
            (Self::Text(b), Cell::Text(s)) => b.append_value(s.as_ref()),
            (Self::Text(b), _) => b.append_null(),
            (Self::I64(v), Cell::I64(x)) | (Self::Timestamp(v), Cell::I64(x)) => v.push(Some(x)),
            (Self::F64(v), Cell::F64(x)) => v.push(Some(x)),
            (Self::Bool(v), Cell::Bool(x)) => v.push(Some(x)),
            (Self::Date(v), Cell::I32(x)) => v.push(Some(x)),
            (Self::Decimal(v, _, _), Cell::I128(x)) => v.push(Some(x)),
            (Self::I64(v) | Self::Timestamp(v), _) => v.push(None),
            (Self::F64(v), _) => v.push(None),
            (Self::Bool(v), _) => v.push(None),
            (Self::Date(v), _) => v.push(None),
            (Self::Decimal(v, _, _), _) => v.push(None),
        }
    }

    fn finish(self, name: &str, capacity: usize) -> (Column, Self) {
        let name: PlSmallStr = name.into();
        match self {
            Self::Text(mut b) => {
                let fresh = StringChunkedBuilder::new(name.clone(), capacity);
                let ca = std::mem::replace(&mut b, fresh).finish();
                (ca.into_series().into_column(), Self::Text(b))
            }
            Self::I64(v) => (
                Int64Chunked::from_iter_options(name, v.into_iter()).into_column(),
                Self::I64(Vec::with_capacity(capacity)),
            ),
            Self::F64(v) => (
                Float64Chunked::from_iter_options(name, v.into_iter()).into_column(),
                Self::F64(Vec::with_capacity(capacity)),
            ),
            Self::Bool(v) => (
                BooleanChunked::from_iter_options(name, v.into_iter()).into_column(),
                Self::Bool(Vec::with_capacity(capacity)),
            ),
            Self::Date(v) => (
                Int32Chunked::from_iter_options(name, v.into_iter())
                    .into_date()
                    .into_column(),
                Self::Date(Vec::with_capacity(capacity)),
            ),
            Self::Timestamp(v) => (
                Int64Chunked::from_iter_options(name, v.into_iter())
                    .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
                    .into_column(),
                Self::Timestamp(Vec::with_capacity(capacity)),
            ),
            Self::Decimal(v, p, s) => (
                Int128Chunked::from_iter_options(name, v.into_iter())
                    .into_decimal_unchecked(usize::from(p), usize::from(s))
                    .into_column(),
                Self::Decimal(Vec::with_capacity(capacity), p, s),
            ),
        }
    }
}

/// Builds typed batches from records.
pub(crate) struct Typer {
    schema: Vec<FieldSpec>,
    /// A handful of markers: comparing against each beats hashing every field.
    null_values: Vec<String>,
    builders: Vec<Builder>,
    lines: Vec<u64>,
    capacity: usize,
    /// The cells of the record being typed, kept between records so that typing one
    /// allocates nothing.
    cells: Vec<Cell<'static>>,
}

impl Typer {
    pub fn new(schema: &[FieldSpec], null_values: &[String], capacity: usize) -> Self {
        Self {
            schema: schema.to_vec(),
            null_values: null_values.to_vec(),
            builders: schema
                .iter()
                .map(|f| Builder::new(f.ty, &f.name, capacity))
                .collect(),
            lines: Vec::with_capacity(capacity),
            capacity,
            cells: Vec::with_capacity(schema.len()),
        }
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Number of schema columns.
    pub fn width(&self) -> usize {
        self.schema.len()
    }

    /// Types one record: appended whole, or refused whole.
    pub fn push(&mut self, line: u64, record: &dyn Record) -> Result<(), Reject> {
        let mut cells = reuse(std::mem::take(&mut self.cells));
        for (i, f) in self.schema.iter().enumerate() {
            let field = record.field(i).map_err(|reason| Reject {
                code: format!("invalid_value:{}", f.name),
                reason: format!("field '{}': {reason}", f.name),
            })?;
            let cell = self.type_field(f, field).map_err(|reason| Reject {
                code: format!("invalid_value:{}", f.name),
                reason: format!("field '{}': {reason}", f.name),
            })?;
            if f.required && matches!(cell, Cell::Null) {
                return Err(Reject {
                    code: format!("missing_required:{}", f.name),
                    reason: format!("field '{}' is required but empty", f.name),
                });
            }
            cells.push(cell);
        }
        for (b, c) in self.builders.iter_mut().zip(cells.drain(..)) {
            b.push(c);
        }
        self.cells = reuse(cells);
        self.lines.push(line);
        Ok(())
    }

    fn type_field<'a>(&self, f: &FieldSpec, field: Field<'a>) -> Result<Cell<'a>, String> {
        let text = match field {
            Field::Absent => return Ok(Cell::Null),
            Field::Text(t) => {
                if t.is_empty() || self.null_values.iter().any(|n| n == t) {
                    return Ok(Cell::Null);
                }
                t
            }
            Field::Json(v) => return type_json(f, v),
        };
        type_text(f, text)
    }

    /// The typed batch so far, with its line column first; the typer starts a new one.
    pub fn finish(&mut self) -> PolarsResult<DataFrame> {
        let height = self.lines.len();
        let mut columns = Vec::with_capacity(self.schema.len() + 1);
        let lines = std::mem::replace(&mut self.lines, Vec::with_capacity(self.capacity));
        columns.push(UInt64Chunked::from_vec(LINE_COLUMN.into(), lines).into_column());
        let builders = std::mem::take(&mut self.builders);
        for (b, f) in builders.into_iter().zip(&self.schema) {
            let (column, fresh) = b.finish(&f.name, self.capacity);
            columns.push(column);
            self.builders.push(fresh);
        }
        DataFrame::new(height, columns)
    }
}

/// An emptied vector of cells with another lifetime, in the same allocation: collecting a
/// vector's own iterator into a vector of a same-sized type reuses its buffer.
fn reuse<'b>(mut cells: Vec<Cell<'_>>) -> Vec<Cell<'b>> {
    cells.clear();
    cells.into_iter().map(|_| Cell::Null).collect()
}

fn type_text<'a>(f: &FieldSpec, text: &'a str) -> Result<Cell<'a>, String> {
    let fmt = f.format.as_deref();
    Ok(match f.ty {
        ColumnType::String => Cell::Text(Cow::Borrowed(text)),
        ColumnType::Bigint => Cell::I64(types::parse_bigint(text)?),
        ColumnType::Double => Cell::F64(types::parse_double(text)?),
        ColumnType::Boolean => Cell::Bool(types::parse_boolean(text)?),
        ColumnType::Date => Cell::I32(types::parse_date(text, fmt)?),
        ColumnType::Timestamp => Cell::I64(types::parse_timestamp(text, fmt)?),
        ColumnType::Decimal { precision, scale } => {
            Cell::I128(types::parse_decimal(text, precision, scale)?)
        }
    })
}

fn type_json<'a>(f: &FieldSpec, v: &'a serde_json::Value) -> Result<Cell<'a>, String> {
    use serde_json::Value;
    match (f.ty, v) {
        (ColumnType::String, Value::String(s)) => Ok(Cell::Text(Cow::Borrowed(s))),
        // Numbers, booleans, arrays and objects kept as their JSON text.
        (ColumnType::String, other) => Ok(Cell::Text(Cow::Owned(other.to_string()))),
        (ColumnType::Bigint, Value::Number(n)) => n
            .as_i64()
            .map(Cell::I64)
            .ok_or_else(|| format!("{n} is not a valid bigint")),
        (ColumnType::Double, Value::Number(n)) => n
            .as_f64()
            .filter(|x| x.is_finite())
            .map(Cell::F64)
            .ok_or_else(|| format!("{n} is not a valid double")),
        (ColumnType::Decimal { precision, scale }, Value::Number(n)) => {
            types::parse_decimal(&n.to_string(), precision, scale).map(Cell::I128)
        }
        (ColumnType::Boolean, Value::Bool(b)) => Ok(Cell::Bool(*b)),
        (_, other) => Err(format!(
            "{} is not a valid {}",
            types::truncate(&other.to_string()),
            f.ty
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row(Vec<Option<&'static str>>);

    impl Record for Row {
        fn field(&self, col: usize) -> Result<Field<'_>, String> {
            Ok(match self.0[col] {
                None => Field::Absent,
                Some("\u{FFFD}") => return Err("invalid UTF-8 at byte 0".into()),
                Some(s) => Field::Text(s),
            })
        }
    }

    fn schema() -> Vec<FieldSpec> {
        let f = |name: &str, ty: &str, required: bool| FieldSpec {
            name: name.into(),
            ty: ty.parse().unwrap(),
            required,
            format: None,
        };
        vec![
            f("id", "bigint", true),
            f("name", "string", false),
            f("amount", "decimal(8,2)", false),
            f("day", "date", false),
            f("at", "timestamp", false),
            f("ok", "boolean", false),
            f("score", "double", false),
        ]
    }

    #[test]
    fn a_row_is_typed_whole_or_refused_whole() {
        let mut t = Typer::new(&schema(), &["NA".to_string()], 4);
        let good = Row(vec![
            Some("1"),
            Some("Ann"),
            Some("12.50"),
            Some("2024-02-29"),
            Some("2024-02-29T10:00:00Z"),
            Some("yes"),
            Some("NA"),
        ]);
        t.push(2, &good).unwrap();
        let bad = Row(vec![
            Some("2"),
            Some("Bob"),
            Some("1.234"),
            None,
            None,
            None,
            None,
        ]);
        let r = t.push(3, &bad).err().unwrap();
        assert_eq!(r.code, "invalid_value:amount");
        assert!(r.reason.contains("decimal places"), "{}", r.reason);
        let missing = Row(vec![Some(""), Some("C"), None, None, None, None, None]);
        assert_eq!(
            t.push(4, &missing).err().unwrap().code,
            "missing_required:id"
        );
        let utf8 = Row(vec![
            Some("3"),
            Some("\u{FFFD}"),
            None,
            None,
            None,
            None,
            None,
        ]);
        assert!(t.push(5, &utf8).err().unwrap().reason.contains("UTF-8"));

        let df = t.finish().unwrap();
        assert_eq!(df.height(), 1, "refused rows leave nothing behind");
        assert_eq!(df.width(), 8);
        let amount = df.column("amount").unwrap();
        assert_eq!(amount.dtype(), &DataType::Decimal(8, 2));
        assert_eq!(df.column("score").unwrap().null_count(), 1, "NA is null");
        assert_eq!(
            df.column(LINE_COLUMN).unwrap().u64().unwrap().get(0),
            Some(2)
        );
        // The typer is ready for the next batch.
        t.push(9, &good).unwrap();
        assert_eq!(t.finish().unwrap().height(), 1);
    }

    #[test]
    fn json_values_type_by_schema() {
        let f = |ty: &str| FieldSpec {
            name: "c".into(),
            ty: ty.parse().unwrap(),
            required: false,
            format: None,
        };
        let v: serde_json::Value = serde_json::json!({"n": 3, "x": 1.5, "o": {"a": 1}, "b": true});
        assert!(matches!(type_json(&f("bigint"), &v["n"]), Ok(Cell::I64(3))));
        assert!(type_json(&f("bigint"), &v["x"]).is_err());
        assert!(matches!(type_json(&f("double"), &v["n"]), Ok(Cell::F64(_))));
        assert!(matches!(type_json(&f("string"), &v["o"]), Ok(Cell::Text(s)) if s == "{\"a\":1}"));
        assert!(matches!(
            type_json(&f("boolean"), &v["b"]),
            Ok(Cell::Bool(true))
        ));
        assert!(
            type_json(&f("date"), &v["n"])
                .unwrap_err()
                .contains("not a valid date")
        );
    }
}
