//! The Spark SQL back end: a typed plan to the text of one Spark SQL expression, for the
//! generic PySpark runner (`infra/glue/`). The runner runs Spark with ANSI mode on
//! (`spark.sql.ansi.enabled`, so bigint and decimal overflow, `%` by zero and failing
//! casts are errors, as here), `spark.sql.decimalOperations.allowPrecisionLoss` off (a
//! decimal result keeps its scale) and the session time zone UTC.
//!
//! Where Spark's own function differs from the semantics README states, the text works
//! around it (`/` by zero, double to bigint rounding, `substr`) or calls a Python function
//! the runner registers (`etl_*`, [`UDFS`]): text of a double, case mapping, and text to a
//! typed value with the input parsers' rules.
//!
//! Spark evaluates a CASE branch, a `coalesce` argument and the right side of AND/OR only
//! where SQL does, but it evaluates a Python function's arguments on every row before the
//! projection. So, as in the polars back end, the arguments of such a call are masked to
//! NULL outside the rows SQL evaluates it on (its guard) when they can fail.

use super::plan::{Arith, Cmp, Func, Node, Part, Side, Typed, Value};
use crate::types::ColumnType;

/// The Python functions the emitted text may call, with their Spark return types: the
/// runner registers each under this name.
pub(crate) const UDFS: &[(&str, &str)] = &[
    ("etl_double_text", "string"),
    ("etl_upper", "string"),
    ("etl_lower", "string"),
    ("etl_substr", "string"),
    ("etl_parse_bigint", "bigint"),
    ("etl_parse_double", "double"),
    ("etl_parse_boolean", "boolean"),
    ("etl_parse_decimal", "string"),
    ("etl_parse_date", "int"),
    ("etl_parse_timestamp", "bigint"),
    ("etl_parse_error", "string"),
];

/// The Spark SQL text of a typed plan.
pub(crate) fn emit(t: &Typed) -> String {
    expr(t, None)
}

/// A column reference: backquoted, so `address.city` is the flattened column's name.
pub(crate) fn column(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A string literal. Spark reads backslash escapes in literals; both it and the quote are
/// escaped.
pub(crate) fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The Spark DDL name of a type.
pub(crate) fn type_name(t: ColumnType) -> String {
    t.to_string()
}

pub(crate) fn typed_null(t: ColumnType) -> String {
    format!("CAST(NULL AS {})", type_name(t))
}

/// A double literal, bit for bit (Rust prints the shortest text that reads back).
pub(crate) fn double(x: f64) -> String {
    if x.is_nan() {
        "CAST('NaN' AS double)".into()
    } else if x.is_infinite() {
        let sign = if x > 0.0 { "" } else { "-" };
        format!("CAST('{sign}Infinity' AS double)")
    } else if x == 0.0 && x.is_sign_negative() {
        "(-0.0D)".into()
    } else {
        format!("CAST('{x:e}' AS double)")
    }
}

pub(crate) fn literal(v: &Value, ty: ColumnType) -> String {
    match v {
        Value::Null => typed_null(ty),
        Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        // A quoted text: `-9223372036854775808` is not a literal Spark reads.
        Value::Int(i) => format!("CAST('{i}' AS bigint)"),
        Value::Double(x) => double(*x),
        Value::Decimal(d) => {
            let ColumnType::Decimal { scale, .. } = ty else {
                unreachable!("a decimal literal has a decimal type")
            };
            format!(
                "CAST('{}' AS {})",
                super::kernels::decimal_text(*d, scale),
                type_name(ty)
            )
        }
        Value::Str(s) => string(s),
        Value::Date(d) => format!("date_from_unix_date({d})"),
        Value::Timestamp(us) => format!("timestamp_micros(CAST('{us}' AS bigint))"),
    }
}

fn and_guard(guard: Option<&str>, more: &str) -> String {
    match guard {
        Some(g) => format!("({g} AND {more})"),
        None => more.to_string(),
    }
}

/// A call of a runner function: its arguments are masked by the guard when any can fail.
fn udf(name: &str, args: &[&Typed], guard: Option<&str>) -> String {
    let mask = args.iter().any(|a| a.can_fail());
    let texts: Vec<String> = args
        .iter()
        .map(|a| {
            let e = expr(a, guard);
            match (mask, guard) {
                (true, Some(g)) => format!("CASE WHEN {g} THEN {e} END"),
                _ => e,
            }
        })
        .collect();
    udf_text(name, &texts)
}

fn udf_text(name: &str, args: &[String]) -> String {
    format!("{name}({})", args.join(", "))
}

fn expr(t: &Typed, guard: Option<&str>) -> String {
    match &t.node {
        Node::Column(name) => column(name),
        Node::Literal(v) => literal(v, t.ty),
        Node::Cast { expr: e, strict } => cast(e, t.ty, *strict, guard),
        Node::Neg(e) => format!("(- {})", expr(e, guard)),
        Node::Not(e) => format!("(NOT {})", expr(e, guard)),
        Node::IsNull(e) => format!("({} IS NULL)", expr(e, guard)),
        Node::And(l, r) | Node::Or(l, r) => {
            let is_and = matches!(t.node, Node::And(..));
            let left = expr(l, guard);
            // The rows where SQL evaluates the right side: those the left does not decide.
            let undecided = if is_and {
                format!("coalesce({left}, TRUE)")
            } else {
                format!("coalesce(NOT {left}, TRUE)")
            };
            let right_guard = and_guard(guard, &undecided);
            let right = expr(r, Some(&right_guard));
            format!("({left} {} {right})", if is_and { "AND" } else { "OR" })
        }
        Node::Arith { op, left, right } => {
            let (l, r) = (expr(left, guard), expr(right, guard));
            arith(*op, &l, &r, t.ty)
        }
        Node::Compare { op, left, right } => {
            let op = match op {
                Cmp::Eq => "=",
                Cmp::NotEq => "<>",
                Cmp::Lt => "<",
                Cmp::LtEq => "<=",
                Cmp::Gt => ">",
                Cmp::GtEq => ">=",
            };
            format!("({} {op} {})", expr(left, guard), expr(right, guard))
        }
        Node::Like {
            expr: e,
            pattern,
            escape,
            case_insensitive,
        } => {
            let (text, pattern) = if *case_insensitive {
                // Both sides lower-cased one code point at a time, as lower() does.
                (
                    udf("etl_lower", &[e], guard),
                    super::kernels::lower_text(pattern),
                )
            } else {
                (expr(e, guard), pattern.clone())
            };
            format!(
                "regexp_like({text}, {})",
                string(&like_regex(&pattern, *escape))
            )
        }
        Node::Concat(l, r) => format!("concat({}, {})", expr(l, guard), expr(r, guard)),
        Node::Case {
            branches,
            otherwise,
        } => {
            let mut out = String::from("CASE");
            // Rows no earlier branch took: where SQL evaluates the next condition.
            let mut untaken: Option<String> = guard.map(str::to_string);
            for (c, v) in branches {
                let cond = expr(c, untaken.as_deref());
                let taken = format!("coalesce({cond}, FALSE)");
                let value = expr(v, Some(&and_guard(untaken.as_deref(), &taken)));
                out.push_str(&format!(" WHEN {cond} THEN {value}"));
                untaken = Some(and_guard(untaken.as_deref(), &format!("(NOT {taken})")));
            }
            let otherwise = expr(otherwise, untaken.as_deref());
            format!("CAST({out} ELSE {otherwise} END AS {})", type_name(t.ty))
        }
        Node::Func { func, args } => function(*func, args, t.ty, guard),
    }
}

/// A LIKE pattern as a Java regex over the whole text: `%` any run of characters, `_` any
/// one code point (Spark's own LIKE takes `_` for one UTF-16 unit, half of an emoji), every
/// other character itself. The plan's pattern has no escape unless one is named; Spark's
/// LIKE would read `\` as one.
fn like_regex(pattern: &str, escape: Option<char>) -> String {
    let mut out = String::from("^(?s)");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        let literal = if Some(c) == escape {
            chars.next().expect("checked at parse")
        } else if c == '%' {
            out.push_str(".*");
            continue;
        } else if c == '_' {
            out.push('.');
            continue;
        } else {
            c
        };
        // Java allows `\` before any character that is not a letter or digit.
        if literal.is_ascii() && !literal.is_ascii_alphanumeric() {
            out.push('\\');
        }
        out.push(literal);
    }
    out.push('$');
    out
}

fn arith(op: Arith, l: &str, r: &str, ty: ColumnType) -> String {
    match (op, ty) {
        // Spark gives NULL (or, in ANSI mode, an error) for a double divided by zero; IEEE
        // gives ±inf or nan. pow(±0, -1) is ±inf, with the zero's sign.
        (Arith::Div, _) => {
            format!("CASE WHEN {r} = 0 THEN {l} * power({r}, -1) ELSE {l} / {r} END")
        }
        (Arith::Mod, ColumnType::Double) => {
            format!("CASE WHEN {r} = 0 THEN {l} * CAST('NaN' AS double) ELSE {l} % {r} END")
        }
        // Spark's decimal result types can be wider than the plan's (a product has one
        // more digit); the value is the same, and the cast pins the planned type.
        (_, ColumnType::Decimal { .. }) => {
            format!("CAST(({l} {} {r}) AS {})", symbol(op), type_name(ty))
        }
        _ => format!("({l} {} {r})", symbol(op)),
    }
}

fn symbol(op: Arith) -> &'static str {
    match op {
        Arith::Add => "+",
        Arith::Sub => "-",
        Arith::Mul => "*",
        Arith::Div => "/",
        Arith::Mod => "%",
    }
}

fn cast(e: &Typed, to: ColumnType, strict: bool, guard: Option<&str>) -> String {
    use ColumnType as T;
    let from = e.ty;
    if from == to {
        return expr(e, guard);
    }
    let kw = if strict { "CAST" } else { "TRY_CAST" };
    match (from, to) {
        (T::String, to) => {
            let parsed = from_text(udf_parse(to, e, guard, None), to);
            if !strict {
                return parsed;
            }
            let text = expr(e, guard);
            let type_arg = Typed::new(T::String, Node::Literal(Value::Str(to.to_string())));
            let no_format = Typed::new(T::String, Node::Literal(Value::Null));
            let error = udf("etl_parse_error", &[e, &type_arg, &no_format], guard);
            let name = super::ast::sql_type_name(to);
            format!(
                "CASE WHEN {text} IS NOT NULL AND {parsed} IS NULL \
                 THEN raise_error(concat('CAST to {name}: ', {error})) ELSE {parsed} END"
            )
        }
        (T::Double, T::String) => udf("etl_double_text", &[e], guard),
        (_, T::String) => format!("CAST({} AS string)", expr(e, guard)),
        // Half to even, as the polars back end rounds.
        (T::Double, T::Bigint) => format!("{kw}(bround({}, 0) AS bigint)", expr(e, guard)),
        // Half away from zero.
        (T::Decimal { .. }, T::Bigint) => format!("{kw}(round({}, 0) AS bigint)", expr(e, guard)),
        (T::Double, T::Decimal { precision, scale }) => {
            // The double times 10^scale, rounded half away from zero, is the unscaled value
            // (the polars back end's rule). Spark's own casts read a double through its
            // shortest text, which drops binary digits past 17: the integral double is cut
            // into 42-bit pieces, each exact as a bigint, and summed as a decimal.
            let x = expr(e, guard);
            let scaled = format!("round({x} * power(10, {scale}), 0)");
            let whole = format!("abs({scaled})");
            let (p84, p42) = ("19342813113834066795298816", "4398046511104");
            let hi = format!("floor({whole} / CAST('{p84}' AS double))");
            let mid = format!(
                "floor(({whole} - {hi} * CAST('{p84}' AS double)) / CAST('{p42}' AS double))"
            );
            let lo = format!(
                "({whole} - {hi} * CAST('{p84}' AS double) - {mid} * CAST('{p42}' AS double))"
            );
            let piece = |v: &str| format!("CAST(CAST({v} AS bigint) AS decimal(38,0))");
            let exact = format!(
                "({} * CAST('{p84}' AS decimal(38,0)) + {} * CAST('{p42}' AS decimal(38,0)) + {}) * CAST(sign({scaled}) AS decimal(38,0))",
                piece(&hi),
                piece(&mid),
                piece(&lo)
            );
            let unit = if scale == 0 {
                "CAST('1' AS decimal(1,0))".to_string()
            } else {
                format!("CAST('1e-{scale}' AS decimal({},{scale}))", scale + 1)
            };
            let fail = if strict {
                format!(
                    "raise_error(concat('CAST: ', CAST({x} AS string), ' is out of range for {}'))",
                    super::ast::sql_type_name(to)
                )
            } else {
                typed_null(to)
            };
            format!(
                "CASE WHEN {x} IS NULL THEN {null} WHEN {whole} < CAST('1e{precision}' AS double) \
                 THEN CAST({exact} * {unit} AS {ty}) ELSE {fail} END",
                null = typed_null(to),
                ty = type_name(to),
            )
        }
        (T::Boolean, T::Decimal { .. }) => {
            format!(
                "{kw}(CAST({} AS bigint) AS {})",
                expr(e, guard),
                type_name(to)
            )
        }
        (T::Decimal { .. }, T::Boolean) => format!("({} <> 0)", expr(e, guard)),
        _ => format!("{kw}({} AS {})", expr(e, guard), type_name(to)),
    }
}

/// The runner function that parses text into `to` (dates and timestamps with `format`, or
/// the default forms), NULL where it does not parse.
fn udf_parse(to: ColumnType, text: &Typed, guard: Option<&str>, format: Option<&str>) -> String {
    let name = match to {
        ColumnType::Bigint => "etl_parse_bigint",
        ColumnType::Double => "etl_parse_double",
        ColumnType::Boolean => "etl_parse_boolean",
        ColumnType::Date => "etl_parse_date",
        ColumnType::Timestamp => "etl_parse_timestamp",
        ColumnType::Decimal { .. } => "etl_parse_decimal",
        ColumnType::String => unreachable!("text needs no parsing"),
    };
    let mut call = udf(name, &[text], guard);
    // The type's settings travel as literal arguments.
    call.pop();
    match to {
        ColumnType::Decimal { precision, scale } => {
            call.push_str(&format!(", {precision}, {scale}"));
        }
        ColumnType::Date | ColumnType::Timestamp => {
            let fmt = format.map_or_else(|| typed_null(ColumnType::String), string);
            call.push_str(&format!(", {fmt}"));
        }
        _ => {}
    }
    call.push(')');
    call
}

/// Wraps a parse function's result into the column type.
fn from_text(call: String, to: ColumnType) -> String {
    match to {
        ColumnType::Decimal { .. } => format!("CAST({call} AS {})", type_name(to)),
        ColumnType::Date => format!("date_from_unix_date({call})"),
        ColumnType::Timestamp => format!("timestamp_micros({call})"),
        _ => call,
    }
}

/// A column's text parsed into its type with the input parsers (`format` for dates and
/// timestamps), NULL where it does not parse: how the runner types what it read.
pub(crate) fn parse_column(name: &str, to: ColumnType, format: Option<&str>) -> String {
    if to == ColumnType::String {
        return column(name);
    }
    let text = Typed::new(ColumnType::String, Node::Column(name.to_string()));
    from_text(udf_parse(to, &text, None, format), to)
}

fn function(func: Func, args: &[Typed], ty: ColumnType, guard: Option<&str>) -> String {
    let all: Vec<&Typed> = args.iter().collect();
    let each = |g: Option<&str>| -> Vec<String> { args.iter().map(|a| expr(a, g)).collect() };
    match func {
        Func::Coalesce => {
            // Each argument is evaluated only where all before it are NULL.
            let mut all_null: Option<String> = guard.map(str::to_string);
            let mut texts = Vec::with_capacity(args.len());
            for a in args {
                let e = expr(a, all_null.as_deref());
                all_null = Some(and_guard(all_null.as_deref(), &format!("({e} IS NULL)")));
                texts.push(e);
            }
            format!("coalesce({})", texts.join(", "))
        }
        Func::Upper => ascii_or(&all, guard, "upper", "etl_upper"),
        Func::Lower => ascii_or(&all, guard, "lower", "etl_lower"),
        Func::Trim(side) => {
            let a = each(guard);
            let side = match side {
                Side::Both => "BOTH",
                Side::Start => "LEADING",
                Side::End => "TRAILING",
            };
            match a.as_slice() {
                [s] => format!("trim({side} ' ' FROM {s})"),
                [s, chars] => format!("trim({side} {chars} FROM {s})"),
                _ => unreachable!("trim takes one or two arguments"),
            }
        }
        Func::Length => format!("CAST(char_length({}) AS bigint)", expr(&args[0], guard)),
        Func::Substr => udf("etl_substr", &all, guard),
        Func::Replace => {
            let a = each(guard);
            format!("replace({}, {}, {})", a[0], a[1], a[2])
        }
        Func::ConcatSkipNulls => format!("concat_ws('', {})", each(guard).join(", ")),
        Func::Abs => format!("abs({})", expr(&args[0], guard)),
        Func::StartsWith | Func::EndsWith => {
            let a = each(guard);
            let name = if func == Func::StartsWith {
                "startswith"
            } else {
                "endswith"
            };
            format!("{name}({}, {})", a[0], a[1])
        }
        Func::RegexpLike => {
            let a = each(guard);
            format!("regexp_like({}, {})", a[0], a[1])
        }
        Func::DatePart(part) => {
            let e = expr(&args[0], guard);
            let name = match part {
                Part::Year => "year",
                Part::Month => "month",
                Part::Day => "day",
                Part::Hour => "hour",
                Part::Minute => "minute",
                Part::Second => "second",
            };
            let e = if args[0].ty == ColumnType::Date
                && matches!(part, Part::Hour | Part::Minute | Part::Second)
            {
                format!("CAST({e} AS timestamp)")
            } else {
                e
            };
            debug_assert_eq!(ty, ColumnType::Bigint);
            format!("CAST({name}({e}) AS bigint)")
        }
    }
}

/// ASCII text maps with Spark's own function; other text with the runner's, one code point
/// at a time (Java maps `ß` to `SS`).
fn ascii_or(args: &[&Typed], guard: Option<&str>, spark: &str, runner: &str) -> String {
    let text = expr(args[0], guard);
    let other = udf(runner, args, guard);
    format!("CASE WHEN {text} RLIKE '^[\\\\x00-\\\\x7F]*$' THEN {spark}({text}) ELSE {other} END")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{check, parse};

    fn scope() -> Vec<(String, ColumnType)> {
        [
            ("a", "bigint"),
            ("x", "double"),
            ("s", "string"),
            ("d", "date"),
            ("m", "decimal(12,2)"),
            ("address.city", "string"),
        ]
        .iter()
        .map(|(n, t)| (n.to_string(), t.parse().expect("type")))
        .collect()
    }

    fn sql(text: &str) -> String {
        let plan = check::check(&parse::parse(text).expect("parses"), scope().as_slice())
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        emit(&plan)
    }

    #[test]
    fn names_and_literals_are_quoted_for_spark() {
        assert_eq!(sql("\"address.city\""), "`address.city`");
        assert_eq!(string("it's a \\ b"), "'it\\'s a \\\\ b'");
        assert_eq!(
            literal(&Value::Int(i64::MIN), ColumnType::Bigint),
            "CAST('-9223372036854775808' AS bigint)"
        );
        assert!(sql("1.50 + m").contains("CAST('1.50' AS decimal(3,2))"));
        assert_eq!(double(-0.0), "(-0.0D)");
        assert_eq!(double(1e300), "CAST('1e300' AS double)");
        assert_eq!(double(f64::NEG_INFINITY), "CAST('-Infinity' AS double)");
        assert_eq!(sql("DATE '1970-01-02'"), "date_from_unix_date(1)");
    }

    #[test]
    fn division_and_modulo_keep_ieee_results() {
        let div = sql("a / 2");
        assert!(div.contains("power("), "{div}");
        assert!(
            div.starts_with("CASE WHEN CAST(CAST('2' AS bigint) AS double) = 0"),
            "{div}"
        );
        assert!(sql("x % 2").contains("'NaN'"));
        // Bigint % is Spark's (dividend's sign, error on zero in ANSI mode).
        assert_eq!(sql("a % 3"), "(`a` % CAST('3' AS bigint))");
        assert_eq!(sql("m * m"), "CAST((`m` * `m`) AS decimal(24,4))");
    }

    #[test]
    fn like_patterns_are_regexes_of_code_points() {
        assert_eq!(like_regex("a\\b%", None), "^(?s)a\\\\b.*$");
        assert_eq!(like_regex("a!_c_", Some('!')), "^(?s)a\\_c.$");
        assert_eq!(like_regex("50!%", Some('!')), "^(?s)50\\%$");
        assert_eq!(like_regex("é.", None), "^(?s)é\\.$");
        let ilike = sql("s ILIKE 'İ%'");
        assert!(
            ilike.starts_with("regexp_like(etl_lower(`s`), '^(?s)i.*$')"),
            "{ilike}"
        );
    }

    #[test]
    fn casts_round_as_the_polars_back_end_does() {
        assert_eq!(sql("CAST(x AS bigint)"), "CAST(bround(`x`, 0) AS bigint)");
        assert_eq!(
            sql("TRY_CAST(m AS bigint)"),
            "TRY_CAST(round(`m`, 0) AS bigint)"
        );
        assert!(sql("CAST(x AS decimal(5,2))").contains("power(10, 2)"));
        assert_eq!(sql("CAST(x AS varchar)"), "etl_double_text(`x`)");
        assert_eq!(
            sql("TRY_CAST(s AS decimal(5,2))"),
            "CAST(etl_parse_decimal(`s`, 5, 2) AS decimal(5,2))"
        );
        let strict = sql("CAST(s AS bigint)");
        assert!(strict.contains("raise_error(concat('CAST to bigint: ', etl_parse_error(`s`, 'bigint', CAST(NULL AS string))))"), "{strict}");
    }

    #[test]
    fn runner_functions_are_masked_where_sql_would_not_evaluate_them() {
        // upper() of a cast that can fail, in a branch: the argument is masked by the
        // branch's condition, since Spark evaluates Python functions' arguments eagerly.
        let e = sql("CASE WHEN a > 0 THEN upper(CAST(a * 2 AS varchar)) END");
        assert!(
            e.contains("etl_upper(CASE WHEN coalesce((`a` > CAST('0' AS bigint)), FALSE) THEN"),
            "{e}"
        );
        // Nothing can fail: no mask.
        assert!(sql("CASE WHEN a > 0 THEN upper(s) END").contains("etl_upper(`s`)"));
        // The right side of AND is guarded by the left.
        let and = sql("a <> 0 AND upper(CAST(10 % a AS varchar)) = 'X'");
        assert!(
            and.contains("etl_upper(CASE WHEN coalesce((`a` <> "),
            "{and}"
        );
    }

    #[test]
    fn functions_map_to_spark_or_the_runner() {
        assert_eq!(sql("length(s)"), "CAST(char_length(`s`) AS bigint)");
        assert_eq!(
            sql("substr(s, 2, 3)"),
            "etl_substr(`s`, CAST('2' AS bigint), CAST('3' AS bigint))"
        );
        assert_eq!(sql("trim(s)"), "trim(BOTH ' ' FROM `s`)");
        assert_eq!(sql("ltrim(s, 'x')"), "trim(LEADING 'x' FROM `s`)");
        assert_eq!(
            sql("concat(s, a)"),
            "concat_ws('', `s`, CAST(`a` AS string))"
        );
        assert_eq!(
            sql("EXTRACT(hour FROM d)"),
            "CAST(hour(CAST(`d` AS timestamp)) AS bigint)"
        );
        assert!(sql("coalesce(s, 'x')").starts_with("coalesce(`s`, 'x')"));
    }

    #[test]
    fn parse_columns_use_the_input_parsers() {
        assert_eq!(
            parse_column("n", ColumnType::Bigint, None),
            "etl_parse_bigint(`n`)"
        );
        assert_eq!(
            parse_column("d", ColumnType::Date, Some("%d/%m/%Y")),
            "date_from_unix_date(etl_parse_date(`d`, '%d/%m/%Y'))"
        );
        assert_eq!(
            parse_column("t", ColumnType::Timestamp, None),
            "timestamp_micros(etl_parse_timestamp(`t`, CAST(NULL AS string)))"
        );
    }
}
