//! The polars back end: a typed plan to one polars expression.
//!
//! polars evaluates every branch of a `when/then` on every row, while SQL evaluates a CASE
//! branch, a COALESCE argument or the right side of AND/OR only on the rows that need it.
//! The difference shows only for operations that can fail (a strict CAST, an overflow): so
//! the operands of such an operation are masked to NULL on the rows SQL would not evaluate
//! it on (its "guard"), and a NULL never fails.

use polars::prelude::*;

use super::kernels;
use super::plan::{Arith, Cmp, Func, Node, Part, Side, Typed, Value};
use crate::types::ColumnType;

pub(crate) fn lower(t: &Typed) -> Expr {
    expr(t, None)
}

fn dtype(t: ColumnType) -> DataType {
    t.to_polars()
}

fn typed_null(t: ColumnType) -> Expr {
    lit(NULL).cast(dtype(t))
}

fn and_guard(guard: Option<&Expr>, more: Expr) -> Expr {
    match guard {
        Some(g) => g.clone().and(more),
        None => more,
    }
}

/// The operands of a node; masked by the guard when the node itself can fail.
fn operands(t: &Typed, children: &[&Typed], guard: Option<&Expr>) -> Vec<Expr> {
    let mask = t.can_fail_here();
    children
        .iter()
        .map(|c| {
            let e = expr(c, guard);
            match (mask, guard) {
                (true, Some(g)) => when(g.clone()).then(e).otherwise(typed_null(c.ty)),
                _ => e,
            }
        })
        .collect()
}

fn one(mut v: Vec<Expr>) -> Expr {
    v.swap_remove(0)
}

fn two(v: Vec<Expr>) -> (Expr, Expr) {
    let mut it = v.into_iter();
    (
        it.next().expect("two operands"),
        it.next().expect("two operands"),
    )
}

fn expr(t: &Typed, guard: Option<&Expr>) -> Expr {
    match &t.node {
        Node::Column(name) => col(name.as_str()),
        Node::Literal(v) => literal(v, t.ty),
        Node::Cast { expr: e, strict } => {
            let input = one(operands(t, &[e], guard));
            cast(input, e.ty, t.ty, *strict)
        }
        Node::Neg(e) => {
            let input = one(operands(t, &[e], guard));
            let ty = t.ty;
            input.map(move |c| kernels::negate(c, ty, false), output(ty))
        }
        Node::Not(e) => expr(e, guard).not(),
        Node::IsNull(e) => expr(e, guard).is_null(),
        Node::And(l, r) | Node::Or(l, r) => {
            let is_and = matches!(t.node, Node::And(..));
            let left = expr(l, guard);
            // SQL skips the right side where the left decides: false for AND, true for OR.
            let right_guard = r.can_fail().then(|| {
                let undecided = if is_and {
                    left.clone().fill_null(lit(true))
                } else {
                    left.clone().not().fill_null(lit(true))
                };
                and_guard(guard, undecided)
            });
            let right = expr(r, right_guard.as_ref().or(guard));
            if is_and {
                left.and(right)
            } else {
                left.or(right)
            }
        }
        Node::Arith { op, left, right } => {
            let (l, r) = two(operands(t, &[left, right], guard));
            arith(*op, l, r, t.ty)
        }
        Node::Compare { op, left, right } => {
            let (l, r) = (expr(left, guard), expr(right, guard));
            match op {
                Cmp::Eq => l.eq(r),
                Cmp::NotEq => l.neq(r),
                Cmp::Lt => l.lt(r),
                Cmp::LtEq => l.lt_eq(r),
                Cmp::Gt => l.gt(r),
                Cmp::GtEq => l.gt_eq(r),
            }
        }
        Node::Like {
            expr: e,
            pattern,
            escape,
            case_insensitive,
        } => {
            let text = expr(e, guard);
            if *case_insensitive {
                // ILIKE compares lower-cased text, one code point at a time (as lower()).
                let lowered = text.map(
                    |c| kernels::change_case(c, false),
                    output(ColumnType::String),
                );
                like(lowered, &kernels::lower_text(pattern), *escape, false)
            } else {
                like(text, pattern, *escape, false)
            }
        }
        Node::Concat(l, r) => expr(l, guard) + expr(r, guard),
        Node::Case {
            branches,
            otherwise,
        } => case(branches, otherwise, t.ty, guard),
        Node::Func { func, args } => function(*func, args, t, guard),
    }
}

fn literal(v: &Value, ty: ColumnType) -> Expr {
    match v {
        Value::Null => typed_null(ty),
        Value::Bool(b) => lit(*b),
        // polars types a bare literal loosely (a small integer as i32): pin it.
        Value::Int(i) => lit(*i).cast(DataType::Int64),
        Value::Double(x) => lit(*x).cast(DataType::Float64),
        Value::Str(s) => lit(s.clone()),
        Value::Decimal(d) => {
            let ColumnType::Decimal { precision, scale } = ty else {
                unreachable!("a decimal literal has a decimal type")
            };
            lit(Scalar::new_decimal(
                *d,
                usize::from(precision),
                usize::from(scale),
            ))
        }
        Value::Date(d) => lit(Scalar::new_date(*d)),
        Value::Timestamp(us) => lit(Scalar::new_datetime(
            *us,
            TimeUnit::Microseconds,
            Some(TimeZone::UTC),
        )),
    }
}

fn output(ty: ColumnType) -> impl Fn(&Schema, &Field) -> PolarsResult<Field> + Send + Sync {
    move |_, f| Ok(Field::new(f.name().clone(), dtype(ty)))
}

fn output_many(ty: ColumnType) -> impl Fn(&Schema, &[Field]) -> PolarsResult<Field> + Send + Sync {
    move |_, f| Ok(Field::new(f[0].name().clone(), dtype(ty)))
}

fn cast(e: Expr, from: ColumnType, to: ColumnType, strict: bool) -> Expr {
    use ColumnType as T;
    match (from, to) {
        _ if from == to => e,
        (T::String, to) => e.map(move |c| kernels::from_text(c, to, strict), output(to)),
        (T::Bigint | T::Boolean, T::String) => e.cast(DataType::String),
        (from, T::String) => e.map(move |c| kernels::to_text(c, from), output(T::String)),
        (T::Double, T::Bigint) | (T::Decimal { .. }, T::Bigint) | (_, T::Decimal { .. }) => {
            // Booleans become 0 or 1 first.
            let (e, from) = if from == T::Boolean {
                (e.cast(DataType::Int64), T::Bigint)
            } else {
                (e, from)
            };
            e.map(
                move |c| kernels::cast_number(c, from, to, strict),
                output(to),
            )
        }
        // A decimal is true where it is not zero; doubles and bigints cast so in polars.
        (T::Decimal { .. }, T::Boolean) => e.cast(DataType::Float64).cast(DataType::Boolean),
        // Widening numbers, booleans to numbers, numbers to booleans, dates and timestamps.
        _ => e.cast(dtype(to)),
    }
}

fn arith(op: Arith, l: Expr, r: Expr, ty: ColumnType) -> Expr {
    match (op, ty) {
        (_, ColumnType::Double) => map_multiple(
            move |c: &mut [Column]| kernels::double_arith(op, c),
            [l, r],
            output_many(ty),
        ),
        (op, ColumnType::Bigint) => map_multiple(
            move |c: &mut [Column]| kernels::bigint_arith(op, c),
            [l, r],
            output_many(ty),
        ),
        (op, _) => map_multiple(
            move |c: &mut [Column]| kernels::decimal_arith(op, c, ty),
            [l, r],
            output_many(ty),
        ),
    }
}

fn case(
    branches: &[(Typed, Typed)],
    otherwise: &Typed,
    ty: ColumnType,
    guard: Option<&Expr>,
) -> Expr {
    let any_fails =
        branches.iter().any(|(c, v)| c.can_fail() || v.can_fail()) || otherwise.can_fail();
    let mut conditions: Vec<Expr> = Vec::with_capacity(branches.len());
    let mut values: Vec<Expr> = Vec::with_capacity(branches.len());
    // Rows no earlier branch took: where SQL evaluates the next condition.
    let mut untaken: Option<Expr> = guard.cloned();
    for (c, v) in branches {
        let cond = expr(c, untaken.as_ref());
        let taken = cond.clone().fill_null(lit(false));
        let value_guard = any_fails.then(|| and_guard(untaken.as_ref(), taken.clone()));
        values.push(expr(v, value_guard.as_ref().or(guard)));
        if any_fails {
            untaken = Some(and_guard(untaken.as_ref(), taken.not()));
        }
        conditions.push(cond);
    }
    let otherwise = expr(otherwise, untaken.as_ref());
    // Nested from the last branch: the first condition that holds wins.
    conditions
        .into_iter()
        .zip(values)
        .rev()
        .fold(otherwise, |rest, (c, v)| when(c).then(v).otherwise(rest))
        .cast(dtype(ty))
}

fn function(func: Func, args: &[Typed], t: &Typed, guard: Option<&Expr>) -> Expr {
    let children: Vec<&Typed> = args.iter().collect();
    let ty = t.ty;
    match func {
        Func::Coalesce => {
            // Each argument is evaluated only where all before it are NULL.
            // The masks matter only to arguments that can fail.
            let any_fails = args.iter().any(Typed::can_fail);
            let mut all_null: Option<Expr> = guard.cloned();
            let mut exprs = Vec::with_capacity(args.len());
            for a in args {
                let e = expr(a, all_null.as_ref());
                if any_fails {
                    all_null = Some(and_guard(all_null.as_ref(), e.clone().is_null()));
                }
                exprs.push(e);
            }
            coalesce(&exprs)
        }
        _ => {
            let mut a = operands(t, &children, guard);
            match func {
                Func::Upper | Func::Lower => {
                    let upper = func == Func::Upper;
                    one(a).map(move |c| kernels::change_case(c, upper), output(ty))
                }
                Func::Trim(side) => {
                    let given = (a.len() == 2).then(|| a.pop().expect("two"));
                    let chars = given.clone().unwrap_or_else(|| lit(" "));
                    let s = one(a).str();
                    let trimmed = match side {
                        Side::Both => s.strip_chars(chars),
                        Side::Start => s.strip_chars_start(chars),
                        Side::End => s.strip_chars_end(chars),
                    };
                    // polars reads NULL characters as "whitespace"; SQL's answer is NULL.
                    match given {
                        Some(g) => when(g.is_null())
                            .then(typed_null(ColumnType::String))
                            .otherwise(trimmed),
                        None => trimmed,
                    }
                }
                Func::Length => one(a).str().len_chars().cast(DataType::Int64),
                Func::Substr => {
                    map_multiple(|c: &mut [Column]| kernels::substr(c), a, output_many(ty))
                }
                Func::Replace => {
                    map_multiple(|c: &mut [Column]| kernels::replace(c), a, output_many(ty))
                }
                Func::ConcatSkipNulls => concat_str(a, "", true),
                Func::Abs => one(a).map(move |c| kernels::negate(c, ty, true), output(ty)),
                Func::StartsWith | Func::EndsWith => {
                    let (s, p) = two(a);
                    if func == Func::StartsWith {
                        s.str().starts_with(p)
                    } else {
                        s.str().ends_with(p)
                    }
                }
                Func::RegexpLike => {
                    let (s, p) = two(a);
                    s.str().contains(p, true)
                }
                Func::DatePart(part) => {
                    let e = one(a);
                    let e = if args[0].ty == ColumnType::Date
                        && matches!(part, Part::Hour | Part::Minute | Part::Second)
                    {
                        e.cast(dtype(ColumnType::Timestamp))
                    } else {
                        e
                    };
                    let dt = e.dt();
                    match part {
                        Part::Year => dt.year(),
                        Part::Month => dt.month(),
                        Part::Day => dt.day(),
                        Part::Hour => dt.hour(),
                        Part::Minute => dt.minute(),
                        Part::Second => dt.second(),
                    }
                    .cast(DataType::Int64)
                }
                Func::Coalesce => unreachable!("handled above"),
            }
        }
    }
}

/// `%` is any run of characters, `_` any one character; `escape` makes the next character
/// itself. Patterns that are only a prefix, a suffix or a substring skip the regex engine.
fn like(e: Expr, pattern: &str, escape: Option<char>, case_insensitive: bool) -> Expr {
    // The pattern as pieces: Some(c) a literal character, None a wildcard of its kind.
    let mut pieces: Vec<(char, bool)> = Vec::new(); // (char, is_wildcard)
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            pieces.push((chars.next().expect("checked at parse"), false));
        } else {
            pieces.push((c, c == '%' || c == '_'));
        }
    }
    if !case_insensitive {
        let literal = |p: &[(char, bool)]| -> Option<String> {
            p.iter().map(|(c, w)| (!w).then_some(*c)).collect()
        };
        let is_pct = |p: Option<&(char, bool)>| p == Some(&('%', true));
        if let Some(text) = literal(&pieces) {
            return e.eq(lit(text));
        }
        let n = pieces.len();
        if n >= 2
            && is_pct(pieces.first())
            && is_pct(pieces.last())
            && let Some(inner) = literal(&pieces[1..n - 1])
        {
            return e.str().contains_literal(lit(inner));
        }
        if n >= 1
            && is_pct(pieces.last())
            && let Some(prefix) = literal(&pieces[..n - 1])
        {
            return e.str().starts_with(lit(prefix));
        }
        if n >= 1
            && is_pct(pieces.first())
            && let Some(suffix) = literal(&pieces[1..])
        {
            return e.str().ends_with(lit(suffix));
        }
    }
    let mut rx = String::from(if case_insensitive { "^(?is)" } else { "^(?s)" });
    for (c, wild) in pieces {
        match (c, wild) {
            ('%', true) => rx.push_str(".*"),
            ('_', true) => rx.push('.'),
            (c, _) => rx.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    rx.push('$');
    e.str().contains(lit(rx), true)
}
