//! Column kernels for what polars computes differently from SQL: checked integer and
//! decimal arithmetic, modulo with the dividend's sign, rounding casts, text of values,
//! code-point case mapping and substrings. Each takes whole columns (a literal arrives as a
//! column of one value and is broadcast) and returns NULL for a NULL input.
//!
//! A value SQL refuses (an overflow, a division by zero, text that is not a number) fails
//! the kernel with a message marked by [`MARK`], so the step that ran it can find the row and
//! report it as bad input rather than as an engine failure.

use chrono::{DateTime, NaiveDate};
use polars::prelude::*;

use super::plan::Arith;
use crate::types::{self, ColumnType};

/// Starts the message of a value SQL refuses, inside polars' error text.
pub(crate) const MARK: &str = "\u{1}sql: ";

/// The message of a refused value, when `e` carries one.
pub(crate) fn refused_value(e: &PolarsError) -> Option<String> {
    let text = e.to_string();
    let start = text.find(MARK)? + MARK.len();
    let rest = &text[start..];
    // polars may append context after the message; ours never spans lines.
    Some(rest.lines().next().unwrap_or(rest).to_string())
}

fn refuse(message: String) -> PolarsError {
    PolarsError::ComputeError(format!("{MARK}{message}").into())
}

/// The length of the result of a kernel over `cols`: literals broadcast.
fn out_len(cols: &[Column]) -> usize {
    cols.iter().map(Column::len).max().unwrap_or(0)
}

/// A column's values, repeated `n` times when it is a broadcast literal of one value.
fn broadcast<T: Clone>(values: impl Iterator<Item = Option<T>>, n: usize) -> Vec<Option<T>> {
    let values: Vec<Option<T>> = values.collect();
    match values.as_slice() {
        [one] if n != 1 => vec![one.clone(); n],
        _ => values,
    }
}

fn i64s(c: &Column, n: usize) -> PolarsResult<Vec<Option<i64>>> {
    Ok(broadcast(c.cast(&DataType::Int64)?.i64()?.iter(), n))
}

fn f64s(c: &Column, n: usize) -> PolarsResult<Vec<Option<f64>>> {
    Ok(broadcast(c.cast(&DataType::Float64)?.f64()?.iter(), n))
}

/// Unscaled values of a decimal column.
fn i128s(c: &Column, n: usize) -> PolarsResult<Vec<Option<i128>>> {
    Ok(broadcast(c.decimal()?.physical().iter(), n))
}

fn strs(c: &Column, n: usize) -> PolarsResult<Vec<Option<&str>>> {
    Ok(broadcast(c.str()?.iter(), n))
}

fn decimal_column(values: Vec<Option<i128>>, precision: u8, scale: u8) -> Column {
    Int128Chunked::from_iter_options(PlSmallStr::EMPTY, values.into_iter())
        .into_decimal_unchecked(usize::from(precision), usize::from(scale))
        .into_column()
}

fn pow10(n: u8) -> i128 {
    10i128.pow(u32::from(n))
}

/// Renders an unscaled decimal with its scale: 150 at scale 2 is `1.50`.
pub(crate) fn decimal_text(v: i128, scale: u8) -> String {
    let digits = v.unsigned_abs().to_string();
    let sign = if v < 0 { "-" } else { "" };
    let scale = usize::from(scale);
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// A double as SQL engines print it: the shortest text that reads back as the same
/// double, in positional form with `.0` for whole numbers, or with an exponent below 1e-4
/// and from 1e16 on (`1e+16`, `1e-05`), as Python's repr does.
pub(crate) fn double_text(x: f64) -> String {
    if x.is_nan() {
        // 0/0 on x86 is a NaN with the sign bit set, which DuckDB prints as -nan.
        return if x.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // `{:e}` gives the shortest round-trip digits: "1.2345e17".
    let mut sci = format!("{x:e}");
    let mantissa_digits = |t: &str| {
        let m = t.split('e').next().unwrap_or("");
        m.chars().filter(char::is_ascii_digit).count()
    };
    if mantissa_digits(&sci) >= 17 {
        // Seventeen significant digits always read back; Rust's shortest form may round a
        // tie at the 17th upwards, where the correctly rounded (ties to even) text is wanted.
        sci = format!("{x:.16e}");
    }
    let (mantissa, exp) = sci.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = match digits.trim_end_matches('0') {
        "" => "0".to_string(),
        d => d.to_string(),
    };
    let sign = if negative { "-" } else { "" };
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.abs());
    }
    let point = exp + 1; // digits before the decimal point
    if point <= 0 {
        let zeros = "0".repeat(usize::try_from(-point).unwrap_or(0));
        format!("{sign}0.{zeros}{digits}")
    } else {
        let point = usize::try_from(point).unwrap_or(0);
        if digits.len() <= point {
            format!("{sign}{digits:0<point$}.0")
        } else {
            let (int, frac) = digits.split_at(point);
            format!("{sign}{int}.{frac}")
        }
    }
}

fn date_text(days: i32) -> String {
    NaiveDate::default()
        .checked_add_signed(chrono::Duration::days(i64::from(days)))
        .map_or_else(|| days.to_string(), |d| d.format("%Y-%m-%d").to_string())
}

/// `YYYY-MM-DD HH:MM:SS`, with the fraction of a second when there is one (no trailing
/// zeros).
fn timestamp_text(us: i64) -> String {
    let Some(t) = DateTime::from_timestamp_micros(us) else {
        return us.to_string();
    };
    let base = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let frac = us.rem_euclid(1_000_000);
    if frac == 0 {
        base
    } else {
        let f = format!("{frac:06}");
        format!("{base}.{}", f.trim_end_matches('0'))
    }
}

/// CAST(x AS varchar) for a column of type `from`.
pub(crate) fn to_text(c: Column, from: ColumnType) -> PolarsResult<Column> {
    let n = c.len();
    let out: StringChunked = match from {
        ColumnType::String => return Ok(c),
        ColumnType::Double => f64s(&c, n)?
            .into_iter()
            .map(|v| v.map(double_text))
            .collect(),
        ColumnType::Decimal { scale, .. } => i128s(&c, n)?
            .into_iter()
            .map(|v| v.map(|v| decimal_text(v, scale)))
            .collect(),
        ColumnType::Date => c
            .cast(&DataType::Int32)?
            .i32()?
            .iter()
            .map(|v| v.map(date_text))
            .collect(),
        ColumnType::Timestamp => c
            .cast(&DataType::Int64)?
            .i64()?
            .iter()
            .map(|v| v.map(timestamp_text))
            .collect(),
        ColumnType::Bigint => i64s(&c, n)?
            .into_iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect(),
        ColumnType::Boolean => c
            .bool()?
            .iter()
            .map(|v| v.map(|b| if b { "true" } else { "false" }))
            .collect(),
    };
    Ok(out.into_column())
}

/// CAST(text AS to) with the input parsers' rules; `strict` refuses a value that does not
/// parse, TRY_CAST gives NULL.
pub(crate) fn from_text(c: Column, to: ColumnType, strict: bool) -> PolarsResult<Column> {
    let n = c.len();
    let values = strs(&c, n)?;
    let mut failed: Option<String> = None;
    // Parses every value, remembering the first failure; what did not parse is NULL.
    let mut parse_all = |parse: &dyn Fn(&str) -> Result<_, String>| -> Vec<Option<_>> {
        values
            .iter()
            .map(|v| {
                let parsed = parse((*v)?);
                if let (Err(e), None) = (&parsed, &failed) {
                    failed = Some(e.clone());
                }
                parsed.ok()
            })
            .collect()
    };
    let out = match to {
        ColumnType::String => return Ok(c),
        ColumnType::Bigint => {
            let v = parse_all(&|s| types::parse_bigint(s).map(i128::from));
            Int64Chunked::from_iter_options(
                PlSmallStr::EMPTY,
                v.into_iter().map(|v| v.and_then(|v| i64::try_from(v).ok())),
            )
            .into_column()
        }
        ColumnType::Date => {
            let v = parse_all(&|s| types::parse_date(s, None).map(i128::from));
            Int32Chunked::from_iter_options(
                PlSmallStr::EMPTY,
                v.into_iter().map(|v| v.and_then(|v| i32::try_from(v).ok())),
            )
            .into_column()
            .cast(&DataType::Date)?
        }
        ColumnType::Timestamp => {
            let v = parse_all(&|s| types::parse_timestamp(s, None).map(i128::from));
            Int64Chunked::from_iter_options(
                PlSmallStr::EMPTY,
                v.into_iter().map(|v| v.and_then(|v| i64::try_from(v).ok())),
            )
            .into_column()
            .cast(&to.to_polars())?
        }
        ColumnType::Decimal { precision, scale } => decimal_column(
            parse_all(&|s| types::parse_decimal(s, precision, scale)),
            precision,
            scale,
        ),
        // Doubles and booleans are not integers: parsed on their own.
        ColumnType::Double => {
            let v: Float64Chunked = values
                .iter()
                .map(|v| match types::parse_double((*v)?) {
                    Ok(x) => Some(x),
                    Err(e) => {
                        failed.get_or_insert(e);
                        None
                    }
                })
                .collect();
            v.into_column()
        }
        ColumnType::Boolean => {
            let v: BooleanChunked = values
                .iter()
                .map(|v| match types::parse_boolean((*v)?) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        failed.get_or_insert(e);
                        None
                    }
                })
                .collect();
            v.into_column()
        }
    };
    match failed {
        Some(e) if strict => Err(refuse(format!(
            "CAST to {}: {e}",
            super::ast::sql_type_name(to)
        ))),
        _ => Ok(out),
    }
}

/// Rounds to an integer, halves away from zero.
fn round_half_away(v: i128, divisor: i128) -> i128 {
    let q = v / divisor;
    let r = v % divisor;
    if r.abs() * 2 >= divisor {
        q + v.signum()
    } else {
        q
    }
}

/// Numeric casts polars would truncate or not range-check: to bigint (doubles round half to
/// even, decimals half away from zero) and to decimal (rounded half away from zero, then
/// checked against the precision).
pub(crate) fn cast_number(
    c: Column,
    from: ColumnType,
    to: ColumnType,
    strict: bool,
) -> PolarsResult<Column> {
    let n = c.len();
    let mut failed: Option<String> = None;
    let target = super::ast::sql_type_name(to);
    // Remembers the first value out of range; the caller returns NULL for it.
    let mut fail = |v: String| {
        if failed.is_none() {
            failed = Some(format!("{v} is out of range for {target}"));
        }
    };
    let out = match (from, to) {
        (ColumnType::Double, ColumnType::Bigint) => {
            let v: Int64Chunked = f64s(&c, n)?
                .into_iter()
                .map(|v| {
                    let x = v?;
                    let r = x.round_ties_even();
                    // i64::MAX as f64 rounds up to 2^63, which does not fit.
                    if r.is_finite()
                        && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&r)
                    {
                        #[allow(clippy::cast_possible_truncation)]
                        Some(r as i64)
                    } else {
                        fail(double_text(x));
                        None
                    }
                })
                .collect();
            v.into_column()
        }
        (ColumnType::Decimal { scale, .. }, ColumnType::Bigint) => {
            let v: Int64Chunked = i128s(&c, n)?
                .into_iter()
                .map(|v| {
                    let v = v?;
                    i64::try_from(round_half_away(v, pow10(scale)))
                        .ok()
                        .or_else(|| {
                            fail(decimal_text(v, scale));
                            None
                        })
                })
                .collect();
            v.into_column()
        }
        (_, ColumnType::Decimal { precision, scale }) => {
            let limit = pow10(precision);
            let values: Vec<Option<i128>> = match from {
                ColumnType::Bigint => i64s(&c, n)?
                    .into_iter()
                    .map(|v| {
                        let v = v?;
                        i128::from(v)
                            .checked_mul(pow10(scale))
                            .filter(|u| u.abs() < limit)
                            .or_else(|| {
                                fail(v.to_string());
                                None
                            })
                    })
                    .collect(),
                ColumnType::Decimal { scale: s, .. } => i128s(&c, n)?
                    .into_iter()
                    .map(|v| {
                        let v = v?;
                        let scaled = if scale >= s {
                            v.checked_mul(pow10(scale - s))
                        } else {
                            Some(round_half_away(v, pow10(s - scale)))
                        };
                        scaled.filter(|u| u.abs() < limit).or_else(|| {
                            fail(decimal_text(v, s));
                            None
                        })
                    })
                    .collect(),
                ColumnType::Double => f64s(&c, n)?
                    .into_iter()
                    .map(|v| {
                        let x = v?;
                        let scaled = (x * 10f64.powi(i32::from(scale))).round();
                        #[allow(clippy::cast_possible_truncation)]
                        let u = scaled as i128;
                        if scaled.is_finite() && u.abs() < limit {
                            Some(u)
                        } else {
                            fail(double_text(x));
                            None
                        }
                    })
                    .collect(),
                _ => {
                    return Err(PolarsError::ComputeError(
                        format!("no numeric cast from {from} to {to}").into(),
                    ));
                }
            };
            decimal_column(values, precision, scale)
        }
        _ => {
            return Err(PolarsError::ComputeError(
                format!("no numeric cast from {from} to {to}").into(),
            ));
        }
    };
    match failed {
        Some(e) if strict => Err(refuse(format!("CAST: {e}"))),
        _ => Ok(out),
    }
}

/// `+ - * %` on bigints: an overflow or a zero divisor is refused, as in SQL.
pub(crate) fn bigint_arith(op: Arith, cols: &[Column]) -> PolarsResult<Column> {
    let n = out_len(cols);
    let (a, b) = (i64s(&cols[0], n)?, i64s(&cols[1], n)?);
    let mut failed: Option<String> = None;
    let out: Int64Chunked = a
        .into_iter()
        .zip(b)
        .map(|(a, b)| {
            let (a, b) = (a?, b?);
            let r = match op {
                Arith::Add => a.checked_add(b),
                Arith::Sub => a.checked_sub(b),
                Arith::Mul => a.checked_mul(b),
                // Rust's remainder keeps the dividend's sign, as SQL's does; MIN % -1 is 0.
                Arith::Mod if b != 0 => Some(a.wrapping_rem(b)),
                Arith::Mod | Arith::Div => None,
            };
            if r.is_none() && failed.is_none() {
                failed = Some(if op == Arith::Mod {
                    format!("division by zero in {a} % {b}")
                } else {
                    format!("bigint overflow in {a} {} {b}", arith_symbol(op))
                });
            }
            r
        })
        .collect();
    match failed {
        Some(e) => Err(refuse(e)),
        None => Ok(out.into_column()),
    }
}

fn arith_symbol(op: Arith) -> &'static str {
    match op {
        Arith::Add => "+",
        Arith::Sub => "-",
        Arith::Mul => "*",
        Arith::Div => "/",
        Arith::Mod => "%",
    }
}

/// `+ - * %` on decimals. For `+ - %` both operands are already of the result's scale; for
/// `*` the unscaled values multiply into it. A result past the precision is refused.
pub(crate) fn decimal_arith(op: Arith, cols: &[Column], to: ColumnType) -> PolarsResult<Column> {
    let ColumnType::Decimal { precision, scale } = to else {
        unreachable!("decimal result")
    };
    let n = out_len(cols);
    let (sa, sb) = (decimal_scale(&cols[0]), decimal_scale(&cols[1]));
    let (a, b) = (i128s(&cols[0], n)?, i128s(&cols[1], n)?);
    let limit = pow10(precision);
    let mut failed: Option<String> = None;
    let values = a
        .into_iter()
        .zip(b)
        .map(|(a, b)| {
            let (a, b) = (a?, b?);
            let r = match op {
                Arith::Add => a.checked_add(b),
                Arith::Sub => a.checked_sub(b),
                Arith::Mul => a.checked_mul(b),
                Arith::Mod if b != 0 => Some(a % b),
                Arith::Mod | Arith::Div => None,
            };
            let r = r.filter(|r| r.abs() < limit);
            if r.is_none() && failed.is_none() {
                let (ta, tb) = (decimal_text(a, sa), decimal_text(b, sb));
                failed = Some(if op == Arith::Mod && b == 0 {
                    format!("division by zero in {ta} % {tb}")
                } else {
                    format!(
                        "{ta} {} {tb} does not fit {}",
                        arith_symbol(op),
                        ColumnType::Decimal { precision, scale }
                    )
                });
            }
            r
        })
        .collect();
    match failed {
        Some(e) => Err(refuse(e)),
        None => Ok(decimal_column(values, precision, scale)),
    }
}

fn decimal_scale(c: &Column) -> u8 {
    match c.dtype() {
        DataType::Decimal(_, s) => u8::try_from(*s).unwrap_or(0),
        _ => 0,
    }
}

/// `+ - * / %` on doubles, one IEEE operation per value: polars' scalar kernels take
/// shortcuts (`x + 0` keeps -0.0, `x / c` multiplies by 1/c) that change the last bit.
/// `%` keeps the dividend's sign (C's fmod); x % 0 is NaN.
pub(crate) fn double_arith(op: Arith, cols: &[Column]) -> PolarsResult<Column> {
    let n = out_len(cols);
    let (a, b) = (f64s(&cols[0], n)?, f64s(&cols[1], n)?);
    let f: fn(f64, f64) -> f64 = match op {
        Arith::Add => |a, b| a + b,
        Arith::Sub => |a, b| a - b,
        Arith::Mul => |a, b| a * b,
        Arith::Div => |a, b| a / b,
        Arith::Mod => |a, b| a % b,
    };
    let out: Float64Chunked = a.into_iter().zip(b).map(|(a, b)| Some(f(a?, b?))).collect();
    Ok(out.into_column())
}

/// Unary minus and abs(); the smallest bigint has no positive twin, and abs(-0.0) is 0.0.
pub(crate) fn negate(c: Column, ty: ColumnType, abs: bool) -> PolarsResult<Column> {
    let n = c.len();
    let name = if abs { "abs" } else { "-" };
    match ty {
        ColumnType::Bigint => {
            let mut failed = None;
            let out: Int64Chunked = i64s(&c, n)?
                .into_iter()
                .map(|v| {
                    let v = v?;
                    let r = if abs {
                        v.checked_abs()
                    } else {
                        v.checked_neg()
                    };
                    if r.is_none() {
                        failed = Some(format!("bigint overflow in {name}({v})"));
                    }
                    r
                })
                .collect();
            match failed {
                Some(e) => Err(refuse(e)),
                None => Ok(out.into_column()),
            }
        }
        ColumnType::Decimal { precision, scale } => {
            let values = i128s(&c, n)?
                .into_iter()
                .map(|v| v.map(|v| if abs { v.abs() } else { -v }))
                .collect();
            Ok(decimal_column(values, precision, scale))
        }
        ColumnType::Double => {
            let out: Float64Chunked = f64s(&c, n)?
                .into_iter()
                .map(|v| v.map(|v| if abs { v.abs() } else { -v }))
                .collect();
            Ok(out.into_column())
        }
        _ => unreachable!("negate takes a number"),
    }
}

/// Upper or lower case, one code point at a time (a character whose case needs two, like
/// `ß` in upper case, maps to its single-character form or stays), as SQL engines do.
pub(crate) fn change_case(c: Column, upper: bool) -> PolarsResult<Column> {
    let out = c.str()?.apply_into_string_amortized(|s, buf| {
        if s.is_ascii() {
            if upper {
                buf.push_str(&s.to_ascii_uppercase());
            } else {
                buf.push_str(&s.to_ascii_lowercase());
            }
            return;
        }
        for ch in s.chars() {
            buf.push(if upper {
                upper_char(ch)
            } else {
                lower_char(ch)
            });
        }
    });
    Ok(out.into_column())
}

/// lower() of one string.
pub(crate) fn lower_text(s: &str) -> String {
    s.chars().map(lower_char).collect()
}

fn upper_char(c: char) -> char {
    let mut it = c.to_uppercase();
    match (it.next(), it.next()) {
        (Some(u), None) => u,
        _ if c == 'ß' => 'ẞ',
        _ => c,
    }
}

fn lower_char(c: char) -> char {
    let mut it = c.to_lowercase();
    match (it.next(), it.next()) {
        (Some(l), None) => l,
        // İ lowercases to i plus a combining dot; its simple mapping is i.
        _ if c == 'İ' => 'i',
        _ => c,
    }
}

/// substr(text, start [, length]): 1-based; a start of 0 or below counts positions before
/// the first character, a negative start counts from the end, a negative length takes the
/// characters before start (DuckDB's rules).
pub(crate) fn substr(cols: &[Column]) -> PolarsResult<Column> {
    let n = out_len(cols);
    let text = strs(&cols[0], n)?;
    let start = i64s(&cols[1], n)?;
    let length = match cols.get(2) {
        Some(c) => i64s(c, n)?,
        None => vec![Some(i64::MAX); n],
    };
    let out: StringChunked = text
        .into_iter()
        .zip(start)
        .zip(length)
        .map(|((t, s), l)| Some(substring(t?, s?, l?)))
        .collect();
    Ok(out.into_column())
}

fn substring(text: &str, start: i64, length: i64) -> String {
    let len = i64::try_from(text.chars().count()).unwrap_or(i64::MAX);
    // Positions as 0-based offsets, possibly outside the text.
    let mut from = match start {
        s if s > 0 => s - 1,
        0 => -1,
        s => len.saturating_add(s),
    };
    let mut to = from.saturating_add(length);
    if length < 0 {
        to = from;
        from = from.saturating_add(length);
    }
    let (from, to) = (from.clamp(0, len), to.clamp(0, len));
    if from >= to {
        return String::new();
    }
    let skip = usize::try_from(from).unwrap_or(0);
    let take = usize::try_from(to - from).unwrap_or(0);
    text.chars().skip(skip).take(take).collect()
}

/// replace(text, from, to): every occurrence of `from`, literally; an empty `from` changes
/// nothing.
pub(crate) fn replace(cols: &[Column]) -> PolarsResult<Column> {
    let n = out_len(cols);
    let (t, f, r) = (strs(&cols[0], n)?, strs(&cols[1], n)?, strs(&cols[2], n)?);
    let out: StringChunked = t
        .into_iter()
        .zip(f)
        .zip(r)
        .map(|((t, f), r)| {
            let (t, f, r) = (t?, f?, r?);
            Some(if f.is_empty() {
                t.to_string()
            } else {
                t.replace(f, r)
            })
        })
        .collect();
    Ok(out.into_column())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_as_sql_engines_print_them() {
        for (x, want) in [
            (1.5, "1.5"),
            (100.0, "100.0"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1e20, "1e+20"),
            (1e-7, "1e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123_456_789_012_345_680.0, "1.2345678901234568e+17"),
            (123_456_789.123, "123456789.123"),
            // 1.00009918212890625 exactly: a tie at the 17th digit.
            (1.0 + 13.0 / 131_072.0, "1.0000991821289062"),
            (-0.5, "-0.5"),
            (f64::INFINITY, "inf"),
            (f64::NAN, "nan"),
        ] {
            assert_eq!(double_text(x), want, "{x}");
        }
    }

    #[test]
    fn decimals_and_times_print_with_their_scale() {
        assert_eq!(decimal_text(150, 2), "1.50");
        assert_eq!(decimal_text(-50, 2), "-0.50");
        assert_eq!(decimal_text(7, 0), "7");
        assert_eq!(timestamp_text(1_706_702_400_000_000), "2024-01-31 12:00:00");
        assert_eq!(
            timestamp_text(1_706_702_400_500_000),
            "2024-01-31 12:00:00.5"
        );
        assert_eq!(timestamp_text(-1), "1969-12-31 23:59:59.999999");
        assert_eq!(date_text(-354_286), "0999-12-31");
    }

    #[test]
    fn substrings_follow_duckdb() {
        assert_eq!(substring("hello", 0, 2), "h");
        assert_eq!(substring("hello", -3, i64::MAX), "llo");
        assert_eq!(substring("hello", 2, -1), "h");
        assert_eq!(substring("héllo", 2, 2), "él");
        assert_eq!(substring("hello", 10, 2), "");
        assert_eq!(substring("hello", 1, i64::MAX), "hello");
    }

    #[test]
    fn case_maps_one_code_point_at_a_time() {
        assert_eq!(upper_char('ß'), 'ẞ');
        assert_eq!(lower_char('İ'), 'i');
        assert_eq!(upper_char('ﬁ'), 'ﬁ');
        assert_eq!(upper_char('ǆ'), 'Ǆ');
    }

    #[test]
    fn rounding_halves_away_from_zero() {
        assert_eq!(round_half_away(125, 10), 13);
        assert_eq!(round_half_away(-125, 10), -13);
        assert_eq!(round_half_away(124, 10), 12);
    }
}
