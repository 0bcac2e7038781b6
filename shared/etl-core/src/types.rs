//! Column types of a pipeline schema: how text parses into them, how they map to polars
//! and to the Glue/Hive type names Athena reads.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use polars::prelude::{DataType, TimeUnit, TimeZone};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The type of a column as declared in a spec (`type: bigint`, `type: decimal(12,2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    String,
    Bigint,
    Double,
    Boolean,
    Date,
    /// Microseconds since the epoch, UTC.
    Timestamp,
    Decimal {
        precision: u8,
        scale: u8,
    },
}

/// The largest decimal precision both polars and Athena accept.
const MAX_DECIMAL_PRECISION: u8 = 38;

impl ColumnType {
    pub fn to_polars(self) -> DataType {
        match self {
            Self::String => DataType::String,
            Self::Bigint => DataType::Int64,
            Self::Double => DataType::Float64,
            Self::Boolean => DataType::Boolean,
            Self::Date => DataType::Date,
            Self::Timestamp => DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)),
            Self::Decimal { precision, scale } => {
                DataType::Decimal(usize::from(precision), usize::from(scale))
            }
        }
    }

    /// The spec type a polars column maps back to, if it is one we can declare.
    pub fn from_polars(dtype: &DataType) -> Option<Self> {
        Some(match dtype {
            DataType::String => Self::String,
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => Self::Bigint,
            DataType::Float32 | DataType::Float64 => Self::Double,
            DataType::Boolean => Self::Boolean,
            DataType::Date => Self::Date,
            DataType::Datetime(_, _) => Self::Timestamp,
            DataType::Decimal(p, s) => Self::Decimal {
                precision: u8::try_from(*p).ok()?,
                scale: u8::try_from(*s).ok()?,
            },
            _ => return None,
        })
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String => f.write_str("string"),
            Self::Bigint => f.write_str("bigint"),
            Self::Double => f.write_str("double"),
            Self::Boolean => f.write_str("boolean"),
            Self::Date => f.write_str("date"),
            Self::Timestamp => f.write_str("timestamp"),
            Self::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
        }
    }
}

impl FromStr for ColumnType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Ok(match lower.as_str() {
            "string" | "str" | "varchar" | "text" => Self::String,
            "bigint" | "int" | "integer" | "long" | "int64" => Self::Bigint,
            "double" | "float" | "float64" => Self::Double,
            "boolean" | "bool" => Self::Boolean,
            "date" => Self::Date,
            "timestamp" | "datetime" => Self::Timestamp,
            other => {
                let args = other
                    .strip_prefix("decimal(")
                    .and_then(|rest| rest.strip_suffix(')'))
                    .ok_or_else(|| {
                        format!(
                            "unknown type `{s}`; expected one of string, bigint, double, boolean, \
                             date, timestamp, decimal(p,s)"
                        )
                    })?;
                let (p, sc) = args
                    .split_once(',')
                    .ok_or_else(|| format!("`{s}`: decimal needs (precision,scale)"))?;
                let precision: u8 = p
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{s}`: precision is not a number"))?;
                let scale: u8 = sc
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{s}`: scale is not a number"))?;
                if precision == 0 || precision > MAX_DECIMAL_PRECISION || scale > precision {
                    return Err(format!(
                        "`{s}`: need 1 <= precision <= {MAX_DECIMAL_PRECISION} and scale <= precision"
                    ));
                }
                Self::Decimal { precision, scale }
            }
        })
    }
}

impl Serialize for ColumnType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ColumnType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The Glue/Hive column type name for a polars type, as Athena expects it in a table
/// definition. `None` for types the catalog cannot describe.
pub fn glue_type(dtype: &DataType) -> Option<String> {
    Some(match dtype {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "int".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        // Hive has no unsigned 64-bit type; a decimal holds every value.
        DataType::UInt64 => "decimal(20,0)".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::String => "string".into(),
        DataType::Binary => "binary".into(),
        DataType::Date => "date".into(),
        DataType::Datetime(_, _) => "timestamp".into(),
        DataType::Decimal(p, s) => format!("decimal({p},{s})"),
        DataType::List(inner) => format!("array<{}>", glue_type(inner)?),
        DataType::Null => "string".into(),
        _ => return None,
    })
}

/// A value parsed from text into a column type, or the reason it could not be.
pub type ParseResult<T> = Result<T, String>;

pub fn parse_bigint(s: &str) -> ParseResult<i64> {
    let t = s.trim();
    t.parse::<i64>()
        .map_err(|_| format!("'{}' is not a valid bigint", truncate(s)))
}

pub fn parse_double(s: &str) -> ParseResult<f64> {
    let t = s.trim();
    match t.parse::<f64>() {
        // "NaN" and "inf" parse in Rust but are not data a user means; refuse them.
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("'{}' is not a valid double", truncate(s))),
    }
}

pub fn parse_boolean(s: &str) -> ParseResult<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Ok(true),
        "false" | "f" | "no" | "n" | "0" => Ok(false),
        _ => Err(format!("'{}' is not a valid boolean", truncate(s))),
    }
}

/// Days since 1970-01-01.
pub fn parse_date(s: &str, format: Option<&str>) -> ParseResult<i32> {
    let t = s.trim();
    let date = match format {
        Some(fmt) => NaiveDate::parse_from_str(t, fmt).ok(),
        None => iso_date(t)
            .or_else(|| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
            // A timestamp in a date column keeps its date part.
            .or_else(|| parse_datetime_utc(t).ok().map(|us| us_to_naive(us).date())),
    };
    date.map(|d| (d - NaiveDate::default()).num_days() as i32)
        .ok_or_else(|| match format {
            Some(fmt) => format!("'{}' is not a valid date (format {fmt})", truncate(s)),
            None => format!(
                "'{}' is not a valid date (expected YYYY-MM-DD)",
                truncate(s)
            ),
        })
}

/// `YYYY-MM-DD` without chrono's format machinery: dates are in most rows of most files,
/// and the general parser is several times slower.
fn iso_date(t: &str) -> Option<NaiveDate> {
    let b = t.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    NaiveDate::from_ymd_opt(i32::try_from(num(0..4)?).ok()?, num(5..7)?, num(8..10)?)
}

/// Microseconds since the epoch, UTC. Without a format: RFC 3339, or
/// `YYYY-MM-DD[ T]HH:MM:SS[.fff]` taken as UTC, or a bare date at midnight UTC.
pub fn parse_timestamp(s: &str, format: Option<&str>) -> ParseResult<i64> {
    let t = s.trim();
    let parsed = match format {
        Some(fmt) => DateTime::parse_from_str(t, fmt)
            .map(|d| d.timestamp_micros())
            .or_else(|_| {
                NaiveDateTime::parse_from_str(t, fmt).map(|d| d.and_utc().timestamp_micros())
            })
            .map_err(|_| ()),
        None => parse_datetime_utc(t),
    };
    parsed.map_err(|()| match format {
        Some(fmt) => format!("'{}' is not a valid timestamp (format {fmt})", truncate(s)),
        None => format!(
            "'{}' is not a valid timestamp (expected RFC 3339 or YYYY-MM-DD HH:MM:SS)",
            truncate(s)
        ),
    })
}

fn parse_datetime_utc(t: &str) -> Result<i64, ()> {
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.timestamp_micros());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(d.and_utc().timestamp_micros());
        }
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .map(|d| d.and_time(NaiveTime::MIN).and_utc().timestamp_micros())
        .map_err(|_| ())
}

fn us_to_naive(us: i64) -> NaiveDateTime {
    DateTime::from_timestamp_micros(us)
        .unwrap_or_default()
        .naive_utc()
}

/// A decimal as its unscaled integer (`12.5` at scale 2 is 1250). Refuses values that
/// need more digits than the precision or more fractional digits than the scale: rounding
/// money silently is the kind of loss a pipeline must not make.
pub fn parse_decimal(s: &str, precision: u8, scale: u8) -> ParseResult<i128> {
    let invalid = || {
        format!(
            "'{}' is not a valid decimal({precision},{scale})",
            truncate(s)
        )
    };
    let t = s.trim();
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    let frac_trimmed = frac_part.trim_end_matches('0');
    if frac_trimmed.len() > usize::from(scale) {
        return Err(format!(
            "'{}' has more than {scale} decimal places for decimal({precision},{scale})",
            truncate(s)
        ));
    }
    let int_trimmed = int_part.trim_start_matches('0');
    if int_trimmed.len() + usize::from(scale) > usize::from(precision) {
        return Err(format!(
            "'{}' does not fit decimal({precision},{scale})",
            truncate(s)
        ));
    }
    let mut unscaled: i128 = 0;
    for b in int_trimmed
        .bytes()
        .chain(frac_trimmed.bytes().chain(std::iter::repeat_n(
            b'0',
            usize::from(scale) - frac_trimmed.len(),
        )))
    {
        unscaled = unscaled * 10 + i128::from(b - b'0');
    }
    Ok(if negative { -unscaled } else { unscaled })
}

/// Keeps error messages one line long whatever the input holds.
pub(crate) fn truncate(s: &str) -> String {
    const MAX: usize = 60;
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() > MAX {
        let cut: String = one_line.chars().take(MAX).collect();
        format!("{cut}...")
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip() {
        for name in [
            "string",
            "bigint",
            "double",
            "boolean",
            "date",
            "timestamp",
            "decimal(12,2)",
        ] {
            let t: ColumnType = name.parse().unwrap();
            assert_eq!(t.to_string(), name);
            assert_eq!(ColumnType::from_polars(&t.to_polars()), Some(t));
        }
        assert!("decimal(2,3)".parse::<ColumnType>().is_err());
        assert!("decimal(39,0)".parse::<ColumnType>().is_err());
        assert!(
            "money"
                .parse::<ColumnType>()
                .unwrap_err()
                .contains("unknown type")
        );
    }

    #[test]
    fn glue_types_cover_nested_and_decimal() {
        assert_eq!(glue_type(&DataType::Int64).unwrap(), "bigint");
        assert_eq!(
            glue_type(&DataType::Decimal(12, 2)).unwrap(),
            "decimal(12,2)"
        );
        assert_eq!(
            glue_type(&DataType::List(Box::new(DataType::String))).unwrap(),
            "array<string>"
        );
        assert_eq!(
            glue_type(&ColumnType::Timestamp.to_polars()).unwrap(),
            "timestamp"
        );
    }

    #[test]
    fn numbers_parse_strictly() {
        assert_eq!(parse_bigint(" 42 ").unwrap(), 42);
        assert!(parse_bigint("4.2").is_err());
        assert!(parse_bigint("").is_err());
        assert_eq!(parse_double("-1.5e2").unwrap(), -150.0);
        assert!(parse_double("NaN").is_err());
        assert!(parse_double("abc").unwrap_err().contains("'abc'"));
        assert!(parse_boolean("Yes").unwrap());
        assert!(!parse_boolean("0").unwrap());
        assert!(parse_boolean("maybe").is_err());
    }

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(parse_date("1970-01-02", None).unwrap(), 1);
        assert_eq!(parse_date("02/01/1970", Some("%d/%m/%Y")).unwrap(), 1);
        assert_eq!(parse_date("1970-01-02T10:00:00Z", None).unwrap(), 1);
        assert!(parse_date("1970-13-01", None).is_err());
        assert!(parse_date("2023-02-29", None).is_err(), "not a leap year");
        assert_eq!(parse_date("2024-02-29", None).unwrap(), 19_782);
        assert!(parse_date("2024-0a-01", None).is_err());
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:01Z", None).unwrap(),
            1_000_000
        );
        assert_eq!(
            parse_timestamp("1970-01-01 01:00:00+01:00", None).unwrap(),
            0,
            "offsets are normalised to UTC"
        );
        assert_eq!(
            parse_timestamp("1970-01-01 00:00:00.5", None).unwrap(),
            500_000
        );
        assert_eq!(parse_timestamp("1970-01-02", None).unwrap(), 86_400_000_000);
        assert!(parse_timestamp("yesterday", None).is_err());
    }

    #[test]
    fn decimals_never_round() {
        assert_eq!(parse_decimal("12.5", 10, 2).unwrap(), 1250);
        assert_eq!(parse_decimal("-0.01", 10, 2).unwrap(), -1);
        assert_eq!(parse_decimal("7", 3, 0).unwrap(), 7);
        assert_eq!(parse_decimal("1.50", 3, 1).unwrap(), 15);
        assert!(
            parse_decimal("1.234", 10, 2)
                .unwrap_err()
                .contains("decimal places")
        );
        assert!(
            parse_decimal("1000", 5, 2)
                .unwrap_err()
                .contains("does not fit")
        );
        assert!(parse_decimal("1e3", 10, 2).is_err());
        assert!(parse_decimal(".", 10, 2).is_err());
    }

    #[test]
    fn messages_stay_short_and_on_one_line() {
        let long = "x".repeat(500);
        let msg = parse_bigint(&long).unwrap_err();
        assert!(msg.len() < 120);
        assert!(!parse_bigint("a\nb").unwrap_err().contains('\n'));
    }
}
