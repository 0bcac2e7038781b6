//! The SQL expressions of a spec (`amount >= 0`, `email LIKE '%@%'`,
//! `upper(cc) || '-' || cast(id AS varchar)`): one front end, back ends per engine.
//!
//! [`parse`] reads the text into an [`ast::Ast`]; [`check`] resolves columns and types it
//! into a [`plan::Typed`] whose every conversion is explicit; [`lower`] turns the plan into
//! a polars expression. The semantics are SQL's as DuckDB implements them (a differential
//! test compares the two); README's "Expressions" section states them.
//!
//! A small grammar of our own rather than polars' `sql` feature: that feature brings
//! sqlparser and many optional polars kernels (3 MB of s3-processor's zip), for one
//! expression per filter or derived column.

pub(crate) mod ast;
pub(crate) mod check;
pub(crate) mod kernels;
mod lower;
pub(crate) mod parse;
pub(crate) mod plan;
pub(crate) mod spark;

use polars::prelude::Expr;

pub(crate) use check::Scope;
pub(crate) use kernels::refused_value;

use crate::error::SpecError;
use crate::types::ColumnType;

/// An expression ready to run: the polars expression and its result type.
#[derive(Clone)]
pub(crate) struct Compiled {
    pub expr: Expr,
    pub ty: ColumnType,
}

/// Parses, types and lowers an expression over `scope`.
pub(crate) fn compile(text: &str, scope: &(impl Scope + ?Sized)) -> Result<Compiled, String> {
    let plan = check::check(&parse::parse(text)?, scope)?;
    Ok(Compiled {
        expr: lower::lower(&plan),
        ty: plan.ty,
    })
}

/// A condition (filter, CASE WHEN): the expression must be boolean.
pub(crate) fn compile_condition(
    text: &str,
    scope: &(impl Scope + ?Sized),
) -> Result<Compiled, String> {
    let plan = check::check_condition(&parse::parse(text)?, scope)?;
    Ok(Compiled {
        expr: lower::lower(&plan),
        ty: plan.ty,
    })
}

/// TRY_CAST of a column, as an expression named after it.
pub(crate) fn try_cast(column: &str, from: ColumnType, to: ColumnType) -> Expr {
    use plan::{Node, Typed};
    let source = Typed::new(from, Node::Column(column.to_string()));
    let cast = Typed::new(
        to,
        Node::Cast {
            expr: Box::new(source),
            strict: false,
        },
    );
    lower::lower(&cast).alias(column)
}

/// The error of an expression in a spec, naming the spec line and field.
pub(crate) fn spec_error(text: &str, line: Option<u64>, field: &str, e: String) -> SpecError {
    SpecError::at(line, field, format!("cannot use `{text}`: {e}"))
}

/// The columns an expression reads (for load-time checks); the error names the position.
pub(crate) fn columns(
    text: &str,
    line: Option<u64>,
    field: &str,
) -> Result<Vec<String>, SpecError> {
    parse::parse(text)
        .map(|a| a.columns())
        .map_err(|e| SpecError::at(line, field, format!("cannot parse `{text}`: {e}")))
}

#[cfg(test)]
mod tests {
    use polars::prelude::*;

    use super::*;

    fn scope() -> Vec<(String, ColumnType)> {
        [
            ("a", "bigint"),
            ("x", "double"),
            ("s", "string"),
            ("T", "string"),
            ("d", "date"),
            ("m", "decimal(12,2)"),
        ]
        .iter()
        .map(|(n, t)| (n.to_string(), t.parse().expect("type")))
        .collect()
    }

    /// A small frame with nulls in every column.
    fn frame() -> DataFrame {
        df!(
            "a" => [Some(1i64), Some(-2), None, Some(10)],
            "x" => [Some(1.5f64), Some(250.0), Some(-3.0), None],
            "s" => [Some("ab@c.de"), Some("Hello"), None, Some("  pad ")],
            "T" => [Some("1"), Some("2"), Some("x"), None],
            "d" => [Some("2024-03-05"), Some("1999-12-31"), None, Some("2000-01-01")],
            "m" => [Some(0.57f64), Some(-1.0), None, Some(10.25)],
        )
        .expect("frame")
        .lazy()
        .with_columns([
            col("d").strict_cast(DataType::Date),
            col("m").cast(DataType::Decimal(12, 2)),
        ])
        .collect()
        .expect("frame")
    }

    fn try_eval(text: &str) -> PolarsResult<Column> {
        let c = compile(text, scope().as_slice()).unwrap_or_else(|e| panic!("{text}: {e}"));
        let df = frame().lazy().select([c.expr.alias("out")]).collect()?;
        let out = df.column("out")?.clone();
        assert_eq!(out.dtype(), &c.ty.to_polars(), "{text}: planned type");
        Ok(out)
    }

    fn eval(text: &str) -> Column {
        try_eval(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn refused(text: &str) -> String {
        let e = try_eval(text)
            .err()
            .unwrap_or_else(|| panic!("`{text}` ran"));
        refused_value(&e).unwrap_or_else(|| panic!("{text}: not a refused value: {e}"))
    }

    fn bools(text: &str) -> Vec<Option<bool>> {
        eval(text).bool().expect("bool").iter().collect()
    }

    fn check(cases: &[(&str, [Option<bool>; 4])]) {
        for (text, want) in cases {
            assert_eq!(&bools(text), want, "{text}");
        }
    }

    fn ints(text: &str) -> Vec<Option<i64>> {
        eval(text).i64().expect("i64").iter().collect()
    }

    fn floats(text: &str) -> Vec<Option<f64>> {
        eval(text).f64().expect("f64").iter().collect()
    }

    fn strs(text: &str) -> Vec<Option<String>> {
        eval(text)
            .str()
            .expect("str")
            .iter()
            .map(|s| s.map(str::to_string))
            .collect()
    }

    #[test]
    fn comparisons_and_logic_keep_sql_nulls() {
        check(&[
            ("a >= 0", [Some(true), Some(false), None, Some(true)]),
            ("a <> 1", [Some(false), Some(true), None, Some(true)]),
            // NULL AND false is false, NULL AND true is NULL; NULL OR true is true.
            (
                "a > 0 AND x > 0",
                [Some(true), Some(false), Some(false), None],
            ),
            ("a > 0 OR x > 0", [Some(true), Some(true), None, Some(true)]),
            ("NOT a > 0", [Some(false), Some(true), None, Some(false)]),
            (
                "a IS NULL",
                [Some(false), Some(false), Some(true), Some(false)],
            ),
            (
                "x IS NOT NULL",
                [Some(true), Some(true), Some(true), Some(false)],
            ),
            ("a IN (1, 10)", [Some(true), Some(false), None, Some(true)]),
            (
                "a NOT IN (1, 10)",
                [Some(false), Some(true), None, Some(false)],
            ),
            (
                "x BETWEEN -3 AND 1.5",
                [Some(true), Some(false), Some(true), None],
            ),
            (
                "d >= '2000-01-01'",
                [Some(true), Some(false), None, Some(true)],
            ),
        ]);
        // Not 1, and NULL in the list: unknown, as in SQL.
        assert_eq!(bools("a IN (1, NULL)")[1], None);
    }

    #[test]
    fn division_is_a_double_even_for_decimals() {
        // Issue 17: 0.57 / 12 was a rounded decimal(38,2).
        let q = floats("m / 12");
        assert!((q[0].expect("value") - 0.0475).abs() < 1e-12, "{q:?}");
        assert_eq!(floats("a / 2")[0], Some(0.5));
        assert_eq!(floats("m / m")[1], Some(1.0));
        assert_eq!(floats("a / 0")[0], Some(f64::INFINITY));
        assert_eq!(bools("m / 12 >= 0.05")[0], Some(false));
    }

    #[test]
    fn modulo_keeps_the_dividends_sign() {
        assert_eq!(ints("a % 3"), [Some(1), Some(-2), None, Some(1)]);
        assert_eq!(ints("-1 % 7")[0], Some(-1));
        assert_eq!(ints("10 % -3")[0], Some(1));
        assert_eq!(
            strs("CAST(-0.5 % 2 AS varchar)")[0].as_deref(),
            Some("-0.5")
        );
        assert_eq!(floats("x % 2")[2], Some(-1.0));
        assert!(refused("a % 0").contains("division by zero in 1 % 0"));
    }

    #[test]
    fn integer_overflow_is_refused_not_wrapped() {
        assert_eq!(
            refused("a * 9223372036854775807"),
            "bigint overflow in -2 * 9223372036854775807"
        );
        assert!(refused("-(a - 9223372036854775807 - 2)").contains("overflow"));
        assert!(refused("abs(a - 9223372036854775807 - 2)").contains("overflow"));
        // A branch SQL does not take is not evaluated, so it cannot fail.
        assert_eq!(
            ints("CASE WHEN a BETWEEN 0 AND 1 THEN a * 5000000000000000000 ELSE 0 END"),
            [Some(5_000_000_000_000_000_000), Some(0), Some(0), Some(0)]
        );
        assert_eq!(
            bools("a BETWEEN 0 AND 1 AND a * 5000000000000000000 > 0"),
            [Some(true), Some(false), None, Some(false)]
        );
        // Row 3's 'x' is never cast: x is not NULL there.
        assert_eq!(
            floats("coalesce(x, CAST(T AS double))"),
            [Some(1.5), Some(250.0), Some(-3.0), None]
        );
    }

    #[test]
    fn doubles_are_ieee_to_the_last_bit() {
        // polars' own scalar kernels multiply by 1/c and keep -0.0 in x + 0.
        assert_eq!(
            strs("CAST(a / 3 AS varchar)")[3].as_deref(),
            Some("3.3333333333333335")
        );
        assert_eq!(
            strs("CAST(abs(-0e0) AS varchar)")[0].as_deref(),
            Some("0.0")
        );
        assert_eq!(strs("CAST(-0e0 + 0 AS varchar)")[0].as_deref(), Some("0.0"));
        assert_eq!(strs("CAST(0e0 / 0 AS varchar)")[0].as_deref(), Some("-nan"));
        assert_eq!(eval("CAST(NULL AS bigint)").dtype(), &DataType::Int64);
        assert_eq!(strs("ltrim('xa', NULL)")[0], None);
        assert_eq!(bools("'İstanbul' ILIKE 'i%'"), [Some(true)]);
    }

    #[test]
    fn decimals_keep_their_scale() {
        assert_eq!(eval("m + m").dtype(), &DataType::Decimal(13, 2));
        assert_eq!(strs("CAST(m * 2 AS varchar)")[0].as_deref(), Some("1.14"));
        assert_eq!(strs("CAST(m * m AS varchar)")[0].as_deref(), Some("0.3249"));
        assert_eq!(strs("CAST(m - a AS varchar)")[1].as_deref(), Some("1.00"));
        assert_eq!(
            ints("CAST(m AS bigint)"),
            [Some(1), Some(-1), None, Some(10)]
        );
        assert_eq!(
            ints("CAST(x AS bigint)"),
            [Some(2), Some(250), Some(-3), None]
        );
        assert!(refused("CAST(m AS decimal(3,2))").contains("10.25 is out of range"));
    }

    #[test]
    fn a_strict_cast_names_the_value_a_try_cast_nulls_it() {
        assert_eq!(
            refused("CAST(T AS bigint)"),
            "CAST to bigint: 'x' is not a valid bigint"
        );
        assert_eq!(
            ints("TRY_CAST(T AS bigint)"),
            [Some(1), Some(2), None, None]
        );
        assert_eq!(eval("a::varchar").dtype(), &DataType::String);
        assert_eq!(strs("a::varchar")[1].as_deref(), Some("-2"));
        assert_eq!(strs("x || ''")[1].as_deref(), Some("250.0"));
        assert_eq!(strs("d || ''")[0].as_deref(), Some("2024-03-05"));
    }

    #[test]
    fn strings_and_functions() {
        assert_eq!(
            strs("upper(s) || '-' || cast(a AS varchar)"),
            [
                Some("AB@C.DE-1".into()),
                Some("HELLO--2".into()),
                None,
                Some("  PAD -10".into())
            ]
        );
        assert_eq!(strs("concat(s, '|', a)")[2].as_deref(), Some("|"));
        assert_eq!(strs("trim(s)")[3].as_deref(), Some("pad"));
        assert_eq!(strs("rtrim(s)")[3].as_deref(), Some("  pad"));
        assert_eq!(strs("lower(substr(s, 2, 3))")[1].as_deref(), Some("ell"));
        assert_eq!(strs("substring(s, 4)")[0].as_deref(), Some("c.de"));
        assert_eq!(
            strs("replace(s, '.', '[.]')")[0].as_deref(),
            Some("ab@c[.]de")
        );
        assert_eq!(ints("length(s)"), [Some(7), Some(5), None, Some(6)]);
        assert_eq!(
            ints("coalesce(a, 0)"),
            [Some(1), Some(-2), Some(0), Some(10)]
        );
        assert_eq!(ints("nullif(a, 10)"), [Some(1), Some(-2), None, None]);
        assert_eq!(ints("ABS(a)"), [Some(1), Some(2), None, Some(10)]);
        assert_eq!(
            bools("starts_with(s, 'ab')"),
            [Some(true), Some(false), None, Some(false)]
        );
        assert_eq!(
            bools("regexp_like(s, '^[a-z]+@')"),
            [Some(true), Some(false), None, Some(false)]
        );
        assert_eq!(strs("\"T\" || 'x'")[0].as_deref(), Some("1x"));
    }

    #[test]
    fn like_patterns() {
        check(&[
            ("s LIKE '%@%'", [Some(true), Some(false), None, Some(false)]),
            ("s LIKE 'He%'", [Some(false), Some(true), None, Some(false)]),
            ("s LIKE '%de'", [Some(true), Some(false), None, Some(false)]),
            (
                "s LIKE 'H_l%o'",
                [Some(false), Some(true), None, Some(false)],
            ),
            (
                "s LIKE 'ab@c.de'",
                [Some(true), Some(false), None, Some(false)],
            ),
            (
                "s LIKE 'ab@c\\de'",
                [Some(false), Some(false), None, Some(false)],
            ),
            (
                "s ILIKE 'hello'",
                [Some(false), Some(true), None, Some(false)],
            ),
            (
                "s NOT LIKE '%@%'",
                [Some(false), Some(true), None, Some(true)],
            ),
            // With an escape, `_` and `%` can be matched as themselves.
            (
                "s LIKE 'ab@c!_de' ESCAPE '!'",
                [Some(false), Some(false), None, Some(false)],
            ),
        ]);
        assert_eq!(bools("'a_c' LIKE 'a!_c' ESCAPE '!'"), [Some(true)]);
        assert_eq!(bools("'abc' LIKE 'a!_c' ESCAPE '!'"), [Some(false)]);
        assert_eq!(bools("'50%' LIKE '%!%' ESCAPE '!'"), [Some(true)]);
    }

    #[test]
    fn case_and_dates() {
        assert_eq!(
            strs("CASE WHEN x > 100 THEN 'High' WHEN x > 0 THEN 'Low' END"),
            [Some("Low".into()), Some("High".into()), None, None]
        );
        assert_eq!(
            strs("case a when 1 then 'one' when 10 then 'ten' else 'other' end"),
            [
                Some("one".into()),
                Some("other".into()),
                Some("other".into()),
                Some("ten".into())
            ]
        );
        assert_eq!(
            ints("EXTRACT(year FROM d)"),
            [Some(2024), Some(1999), None, Some(2000)]
        );
        assert_eq!(ints("date_part('hour', d)")[0], Some(0));
        let noon = eval("TIMESTAMP '2024-01-31 12:00:00'");
        assert_eq!(
            noon.cast(&DataType::Int64)
                .expect("i64")
                .i64()
                .expect("i64")
                .get(0),
            Some(1_706_702_400_000_000)
        );
    }
}
