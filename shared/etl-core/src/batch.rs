//! Typing at read: each record's fields are parsed into the schema's types and appended
//! to column builders; a record with a field that does not parse is returned as a reject
//! (with the field and the reason) and nothing of it is appended.

use std::borrow::Cow;

use polars::prelude::*;
use polars_arrow::array::BooleanArray;
use polars_arrow::bitmap::{Bitmap, MutableBitmap};
use polars_arrow::datatypes::ArrowDataType;

use crate::read::{Field, Record};
use crate::spec::FieldSpec;
use crate::types::{self, ColumnType};

/// The hidden column that carries each row's key through the steps: the number the reader
/// gave its record (see `stages::Reader`), by which a row rejected late finds the record's
/// raw bytes and line again. Not the line itself: values of a JSON array share lines.
pub const RECORD_COLUMN: &str = "__record";

/// Why a record was refused while typing it.
#[derive(Debug)]
pub(crate) struct Reject {
    /// Stable reason key for counting (`invalid_value:amount`).
    pub code: String,
    /// What a person reads.
    pub reason: String,
}

/// Why one field refused its record.
enum Refusal {
    Invalid(String),
    Missing,
}

impl From<String> for Refusal {
    fn from(reason: String) -> Self {
        Self::Invalid(reason)
    }
}

/// A primitive column being built: plain values and a validity bit each.
struct Values<T> {
    values: Vec<T>,
    validity: MutableBitmap,
}

impl<T: Default> Values<T> {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            values: Vec::with_capacity(capacity),
            validity: MutableBitmap::with_capacity(capacity),
        }
    }

    fn push(&mut self, value: T) {
        self.values.push(value);
        self.validity.push(true);
    }

    fn push_null(&mut self) {
        self.values.push(T::default());
        self.validity.push(false);
    }

    fn pop(&mut self) {
        self.values.pop();
        self.validity.pop();
    }

    /// The values so far (validity only if some are null); the builder starts again.
    fn take(&mut self, capacity: usize) -> (Vec<T>, Option<Bitmap>) {
        let fresh = Self::with_capacity(capacity);
        let Self { values, validity } = std::mem::replace(self, fresh);
        let validity = (validity.unset_bits() > 0).then(|| validity.freeze());
        (values, validity)
    }

    /// [`take`](Self::take) as a polars column of `N`'s type.
    fn finish<N: PolarsNumericType<Native = T>>(
        &mut self,
        name: PlSmallStr,
        capacity: usize,
    ) -> ChunkedArray<N> {
        let (values, validity) = self.take(capacity);
        ChunkedArray::from_vec_validity(name, values, validity)
    }
}

enum Builder {
    /// Text is appended once the whole record is accepted: string builders cannot pop.
    Text(StringChunkedBuilder),
    I64(Values<i64>),
    F64(Values<f64>),
    Bool(Values<bool>),
    Date(Values<i32>),
    Timestamp(Values<i64>),
    Decimal(Values<i128>, u8, u8),
}

impl Builder {
    fn new(ty: ColumnType, name: &str, capacity: usize) -> Self {
        match ty {
            ColumnType::String => Self::Text(StringChunkedBuilder::new(name.into(), capacity)),
            ColumnType::Bigint => Self::I64(Values::with_capacity(capacity)),
            ColumnType::Double => Self::F64(Values::with_capacity(capacity)),
            ColumnType::Boolean => Self::Bool(Values::with_capacity(capacity)),
            ColumnType::Date => Self::Date(Values::with_capacity(capacity)),
            ColumnType::Timestamp => Self::Timestamp(Values::with_capacity(capacity)),
            ColumnType::Decimal { precision, scale } => {
                Self::Decimal(Values::with_capacity(capacity), precision, scale)
            }
        }
    }

    /// Types `text` and appends it, or stages it when the column is text.
    fn push_text<'a>(
        &mut self,
        f: &FieldSpec,
        text: &'a str,
        staged: &mut Vec<Option<Cow<'a, str>>>,
    ) -> Result<(), String> {
        let fmt = f.format.as_deref();
        match self {
            Self::Text(_) => staged.push(Some(Cow::Borrowed(text))),
            Self::I64(v) => v.push(types::parse_bigint(text)?),
            Self::F64(v) => v.push(types::parse_double(text)?),
            Self::Bool(v) => v.push(types::parse_boolean(text)?),
            Self::Date(v) => v.push(types::parse_date(text, fmt)?),
            Self::Timestamp(v) => v.push(types::parse_timestamp(text, fmt)?),
            Self::Decimal(v, precision, scale) => {
                v.push(types::parse_decimal(text, *precision, *scale)?);
            }
        }
        Ok(())
    }

    /// Types a JSON number, boolean, array or object by the column's type.
    fn push_json<'a>(
        &mut self,
        f: &FieldSpec,
        value: &'a serde_json::Value,
        staged: &mut Vec<Option<Cow<'a, str>>>,
    ) -> Result<(), String> {
        use serde_json::Value;
        match (self, value) {
            (Self::Text(_), Value::String(s)) => staged.push(Some(Cow::Borrowed(s))),
            // Numbers, booleans, arrays and objects kept as their JSON text.
            (Self::Text(_), other) => staged.push(Some(Cow::Owned(other.to_string()))),
            (Self::I64(v), Value::Number(n)) => {
                v.push(
                    n.as_i64()
                        .ok_or_else(|| format!("{n} is not a valid bigint"))?,
                );
            }
            (Self::F64(v), Value::Number(n)) => v.push(
                n.as_f64()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| format!("{n} is not a valid double"))?,
            ),
            (Self::Decimal(v, precision, scale), Value::Number(n)) => {
                v.push(types::parse_decimal(&n.to_string(), *precision, *scale)?);
            }
            (Self::Bool(v), Value::Bool(b)) => v.push(*b),
            (_, other) => {
                return Err(format!(
                    "{} is not a valid {}",
                    types::truncate(&other.to_string()),
                    f.ty
                ));
            }
        }
        Ok(())
    }

    fn push_null<'a>(&mut self, staged: &mut Vec<Option<Cow<'a, str>>>) {
        match self {
            Self::Text(_) => staged.push(None),
            Self::I64(v) | Self::Timestamp(v) => v.push_null(),
            Self::F64(v) => v.push_null(),
            Self::Bool(v) => v.push_null(),
            Self::Date(v) => v.push_null(),
            Self::Decimal(v, _, _) => v.push_null(),
        }
    }

    /// Takes back this record's value (text was only staged).
    fn pop(&mut self) {
        match self {
            Self::Text(_) => {}
            Self::I64(v) | Self::Timestamp(v) => v.pop(),
            Self::F64(v) => v.pop(),
            Self::Bool(v) => v.pop(),
            Self::Date(v) => v.pop(),
            Self::Decimal(v, _, _) => v.pop(),
        }
    }

    /// The column so far; the builder starts a new one.
    fn finish(&mut self, name: &str, capacity: usize) -> Column {
        let name: PlSmallStr = name.into();
        match self {
            Self::Text(b) => {
                let fresh = StringChunkedBuilder::new(name, capacity);
                std::mem::replace(b, fresh).finish().into_column()
            }
            Self::I64(v) => v.finish::<Int64Type>(name, capacity).into_column(),
            Self::F64(v) => v.finish::<Float64Type>(name, capacity).into_column(),
            Self::Bool(v) => {
                let (values, validity) = v.take(capacity);
                let values: Bitmap = values.into_iter().collect();
                let array = BooleanArray::new(ArrowDataType::Boolean, values, validity);
                BooleanChunked::with_chunk(name, array).into_column()
            }
            Self::Date(v) => v
                .finish::<Int32Type>(name, capacity)
                .into_date()
                .into_column(),
            Self::Timestamp(v) => v
                .finish::<Int64Type>(name, capacity)
                .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
                .into_column(),
            Self::Decimal(v, p, s) => v
                .finish::<Int128Type>(name, capacity)
                .into_decimal_unchecked(usize::from(*p), usize::from(*s))
                .into_column(),
        }
    }
}

/// Builds typed batches from records.
pub(crate) struct Typer {
    schema: Vec<FieldSpec>,
    /// A handful of markers: comparing against each beats hashing every field.
    null_values: Vec<String>,
    builders: Vec<Builder>,
    /// Each row's key, for [`RECORD_COLUMN`].
    keys: Vec<u64>,
    capacity: usize,
    /// The text fields of the record being typed, kept between records so that typing
    /// one allocates nothing.
    staged: Vec<Option<Cow<'static, str>>>,
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
            keys: Vec::with_capacity(capacity),
            capacity,
            staged: Vec::with_capacity(schema.len()),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Number of schema columns.
    pub fn width(&self) -> usize {
        self.schema.len()
    }

    /// Types one record: appended whole, or refused whole. Typed values are appended as
    /// they parse and taken back if a later field refuses the record.
    pub fn push(&mut self, key: u64, record: &dyn Record) -> Result<(), Reject> {
        let mut staged = reuse(std::mem::take(&mut self.staged));
        for (i, f) in self.schema.iter().enumerate() {
            let builder = &mut self.builders[i];
            let appended = match record.field(i) {
                Err(reason) => Err(Refusal::Invalid(reason)),
                Ok(field) => append(builder, f, field, &self.null_values, &mut staged),
            };
            if let Err(refusal) = appended {
                self.builders[..i].iter_mut().for_each(Builder::pop);
                self.staged = reuse(staged);
                return Err(match refusal {
                    Refusal::Invalid(reason) => Reject {
                        code: format!("invalid_value:{}", f.name),
                        reason: format!("field '{}': {reason}", f.name),
                    },
                    Refusal::Missing => Reject {
                        code: format!("missing_required:{}", f.name),
                        reason: format!("field '{}' is required but empty", f.name),
                    },
                });
            }
        }
        let mut texts = staged.drain(..);
        for b in &mut self.builders {
            if let Builder::Text(b) = b {
                match texts.next().flatten() {
                    Some(text) => b.append_value(text.as_ref()),
                    None => b.append_null(),
                }
            }
        }
        drop(texts);
        self.staged = reuse(staged);
        self.keys.push(key);
        Ok(())
    }

    /// The typed batch so far, with its key column first; the typer starts a new one.
    pub fn finish(&mut self) -> PolarsResult<DataFrame> {
        let height = self.keys.len();
        let mut columns = Vec::with_capacity(self.schema.len() + 1);
        let keys = std::mem::replace(&mut self.keys, Vec::with_capacity(self.capacity));
        columns.push(UInt64Chunked::from_vec(RECORD_COLUMN.into(), keys).into_column());
        for (b, f) in self.builders.iter_mut().zip(&self.schema) {
            columns.push(b.finish(&f.name, self.capacity));
        }
        DataFrame::new(height, columns)
    }
}

/// Types one field into its builder (text is staged).
fn append<'a>(
    builder: &mut Builder,
    f: &FieldSpec,
    field: Field<'a>,
    null_values: &[String],
    staged: &mut Vec<Option<Cow<'a, str>>>,
) -> Result<(), Refusal> {
    let text = match field {
        Field::Absent => None,
        Field::Text(t) if t.is_empty() || null_values.iter().any(|n| n == t) => None,
        Field::Text(t) => Some(t),
        Field::Json(v) => return Ok(builder.push_json(f, v, staged)?),
    };
    match text {
        Some(text) => Ok(builder.push_text(f, text, staged)?),
        None if f.required => Err(Refusal::Missing),
        None => {
            builder.push_null(staged);
            Ok(())
        }
    }
}

/// An emptied vector with another lifetime, in the same allocation: collecting a vector's
/// own iterator into a vector of a same-sized type reuses its buffer.
fn reuse<'b>(mut staged: Vec<Option<Cow<'_, str>>>) -> Vec<Option<Cow<'b, str>>> {
    staged.clear();
    staged.into_iter().map(|_| None).collect()
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
            df.column(RECORD_COLUMN).unwrap().u64().unwrap().get(0),
            Some(2)
        );
        // The typer is ready for the next batch.
        t.push(9, &good).unwrap();
        assert_eq!(t.finish().unwrap().height(), 1);
    }

    #[test]
    fn json_values_type_by_schema() {
        struct Json<'a>(&'a serde_json::Value);
        impl Record for Json<'_> {
            fn field(&self, _: usize) -> Result<Field<'_>, String> {
                Ok(Field::Json(self.0))
            }
        }
        /// The one column typed from `v`, or the reason it was refused.
        fn typed(ty: &str, v: &serde_json::Value) -> Result<Column, String> {
            let f = FieldSpec {
                name: "c".into(),
                ty: ty.parse().unwrap(),
                required: false,
                format: None,
            };
            let mut t = Typer::new(&[f], &[], 1);
            t.push(1, &Json(v)).map_err(|r| r.reason)?;
            Ok(t.finish().unwrap().column("c").unwrap().clone())
        }
        let v: serde_json::Value = serde_json::json!({"n": 3, "x": 1.5, "o": {"a": 1}, "b": true});
        let n = typed("bigint", &v["n"]).unwrap();
        assert_eq!(n.i64().unwrap().get(0), Some(3));
        assert!(typed("bigint", &v["x"]).is_err());
        assert_eq!(
            typed("double", &v["n"]).unwrap().f64().unwrap().get(0),
            Some(3.0)
        );
        let o = typed("string", &v["o"]).unwrap();
        assert_eq!(o.str().unwrap().get(0), Some("{\"a\":1}"));
        assert_eq!(
            typed("boolean", &v["b"]).unwrap().bool().unwrap().get(0),
            Some(true)
        );
        assert!(
            typed("date", &v["n"])
                .unwrap_err()
                .contains("not a valid date")
        );
    }

    #[test]
    fn a_refused_record_takes_back_what_it_appended() {
        // Every type before the refusing field, null and not, must be popped again.
        let mut t = Typer::new(&schema(), &[], 4);
        let row = |day: &'static str, ok: &'static str, score: &'static str| {
            Row(vec![
                Some("7"),
                Some("Ann"),
                Some("1.50"),
                Some(day),
                Some("2024-01-01T00:00:00Z"),
                Some(ok),
                Some(score),
            ])
        };
        t.push(2, &row("2024-01-02", "", "")).unwrap();
        assert!(t.push(3, &row("", "yes", "x")).is_err());
        t.push(4, &row("2024-01-03", "no", "2.5")).unwrap();
        let df = t.finish().unwrap();
        assert_eq!(df.height(), 2);
        for c in df.columns() {
            assert_eq!(c.len(), 2, "{}", c.name());
        }
        let day = df.column("day").unwrap().cast(&DataType::String).unwrap();
        let day: Vec<_> = day.str().unwrap().iter().collect();
        assert_eq!(day, [Some("2024-01-02"), Some("2024-01-03")]);
        let score: Vec<_> = df.column("score").unwrap().f64().unwrap().iter().collect();
        assert_eq!(score, [None, Some(2.5)]);
        let ok: Vec<_> = df.column("ok").unwrap().bool().unwrap().iter().collect();
        assert_eq!(ok, [None, Some(false)]);
    }
}
