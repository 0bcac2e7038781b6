//! Name resolution and type checking: [`Ast`] to the typed [`plan`](super::plan). The
//! typing rules are SQL's as DuckDB implements them (README "Expressions" states them):
//! numbers widen bigint -> decimal -> double, `/` is a double, decimal results get their
//! precision and scale from the operands, a string literal compared with another type is
//! converted to it when the spec loads, and anything else that mixes types is refused here,
//! before any data is read.

use super::ast::{Ast, BinOp, sql_type_name};
use super::plan::{Arith, Cmp, Func, Node, Part, Side, Typed, Value};
use crate::types::{self, ColumnType};

/// The columns an expression can read, with their types.
pub(crate) trait Scope {
    fn column_type(&self, name: &str) -> Option<ColumnType>;
    /// The known names, for the message about an unknown one.
    fn names(&self) -> String;
}

impl Scope for [(String, ColumnType)] {
    fn column_type(&self, name: &str) -> Option<ColumnType> {
        self.iter().find(|(n, _)| n == name).map(|(_, t)| *t)
    }

    fn names(&self) -> String {
        let names: Vec<&str> = self.iter().map(|(n, _)| n.as_str()).collect();
        names.join(", ")
    }
}

type Checked = Result<Typed, String>;

const MAX_PRECISION: u8 = 38;

/// Types an expression; the error names the part at fault.
pub(crate) fn check(ast: &Ast, scope: &(impl Scope + ?Sized)) -> Checked {
    // A bare NULL is typed string; CAST(NULL AS bigint) keeps its type.
    Checker { scope }.expr(ast)
}

/// A condition (filter, CASE WHEN): the expression must be boolean.
pub(crate) fn check_condition(ast: &Ast, scope: &(impl Scope + ?Sized)) -> Checked {
    let c = Checker { scope };
    let t = c.expr(ast)?;
    c.boolean(t, ast)
}

/// Conversions that never fail and keep every value: what the checker inserts implicitly.
pub(crate) fn widens(from: ColumnType, to: ColumnType) -> bool {
    use ColumnType as T;
    match (from, to) {
        _ if from == to => true,
        (T::Bigint, T::Double) | (T::Decimal { .. }, T::Double) | (T::Date, T::Timestamp) => true,
        (T::Bigint, T::Decimal { precision, scale }) => precision - scale >= 19,
        (
            T::Decimal {
                precision: p1,
                scale: s1,
            },
            T::Decimal {
                precision: p2,
                scale: s2,
            },
        ) => s2 >= s1 && p2 - s2 >= p1 - s1,
        _ => false,
    }
}

fn null(ty: ColumnType) -> Typed {
    Typed::new(ty, Node::Literal(Value::Null))
}

fn boxed(t: Typed) -> Box<Typed> {
    Box::new(t)
}

fn is_numeric(t: ColumnType) -> bool {
    matches!(
        t,
        ColumnType::Bigint | ColumnType::Double | ColumnType::Decimal { .. }
    )
}

/// A decimal's (precision, scale), with bigint as decimal(19,0) and a small integer
/// literal as decimal(10,0), as DuckDB widens them.
fn decimal_shape(t: &Typed) -> (u8, u8) {
    match (t.ty, &t.node) {
        (ColumnType::Decimal { precision, scale }, _) => (precision, scale),
        (_, Node::Literal(Value::Int(v))) if i32::try_from(*v).is_ok() => (10, 0),
        _ => (19, 0),
    }
}

fn decimal(precision: u8, scale: u8) -> ColumnType {
    ColumnType::Decimal {
        precision: precision.clamp(1, MAX_PRECISION),
        scale,
    }
}

/// The type two numbers are compared or combined in (without arithmetic growth).
fn common_numeric(a: &Typed, b: &Typed) -> ColumnType {
    use ColumnType as T;
    match (a.ty, b.ty) {
        (T::Double, _) | (_, T::Double) => T::Double,
        (T::Bigint, T::Bigint) => T::Bigint,
        _ => {
            // Past 38 digits the integer digits are kept and the scale gives way:
            // decimal(6,3) and decimal(38,2) meet in decimal(38,2), as in DuckDB.
            let (digits, scale) = decimal_digits(a, b);
            let scale = scale.min(MAX_PRECISION.saturating_sub(digits));
            decimal((digits + scale).min(MAX_PRECISION), scale)
        }
    }
}

/// The integer digits and the scale two decimals (or a decimal and a bigint) need.
fn decimal_digits(a: &Typed, b: &Typed) -> (u8, u8) {
    let ((pa, sa), (pb, sb)) = (decimal_shape(a), decimal_shape(b));
    ((pa - sa).max(pb - sb), sa.max(sb))
}

struct Checker<'a, S: Scope + ?Sized> {
    scope: &'a S,
}

impl<S: Scope + ?Sized> Checker<'_, S> {
    fn expr(&self, ast: &Ast) -> Checked {
        Ok(match ast {
            Ast::Column(name) => {
                let ty = self.scope.column_type(name).ok_or_else(|| {
                    format!(
                        "unknown column `{name}`; known here: {}",
                        self.scope.names()
                    )
                })?;
                Typed::new(ty, Node::Column(name.clone()))
            }
            Ast::Null => null(ColumnType::String),
            Ast::Bool(b) => Typed::new(ColumnType::Boolean, Node::Literal(Value::Bool(*b))),
            Ast::Int(i) => Typed::new(ColumnType::Bigint, Node::Literal(Value::Int(*i))),
            Ast::Exact(s) => exact_literal(s)?,
            Ast::Float(f) => Typed::new(ColumnType::Double, Node::Literal(Value::Double(*f))),
            Ast::Str(s) => Typed::new(ColumnType::String, Node::Literal(Value::Str(s.clone()))),
            Ast::Date(s) => Typed::new(
                ColumnType::Date,
                Node::Literal(Value::Date(types::parse_date(s, None)?)),
            ),
            Ast::Timestamp(s) => Typed::new(
                ColumnType::Timestamp,
                Node::Literal(Value::Timestamp(types::parse_timestamp(s, None)?)),
            ),
            Ast::Neg(e) => {
                let t = self.expr(e)?;
                let t = if t.is_null_literal() {
                    null(ColumnType::Bigint)
                } else {
                    t
                };
                if !is_numeric(t.ty) {
                    return Err(format!("`-` needs a number; `{e}` is {}", t.ty));
                }
                Typed::new(t.ty, Node::Neg(boxed(t)))
            }
            Ast::Not(e) => {
                let t = self.expr(e)?;
                let t = self.boolean(t, e)?;
                Typed::new(ColumnType::Boolean, Node::Not(boxed(t)))
            }
            Ast::Binary { op, left, right } => self.binary(*op, left, right, ast)?,
            Ast::IsNull { expr, negated } => {
                let t = self.expr(expr)?;
                let is_null = Typed::new(ColumnType::Boolean, Node::IsNull(boxed(t)));
                not_if(*negated, is_null)
            }
            Ast::InList {
                expr,
                list,
                negated,
            } => {
                // An OR of equalities: `x IN (1, NULL)` is NULL, not false, where x is not 1.
                let x = self.expr(expr)?;
                let mut any: Option<Typed> = None;
                for item in list {
                    let eq = self.compare(Cmp::Eq, x.clone(), self.expr(item)?, expr, item)?;
                    any = Some(match any {
                        None => eq,
                        Some(a) => Typed::new(ColumnType::Boolean, Node::Or(boxed(a), boxed(eq))),
                    });
                }
                not_if(*negated, any.ok_or("IN needs at least one value")?)
            }
            Ast::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let x = self.expr(expr)?;
                let ge = self.compare(Cmp::GtEq, x.clone(), self.expr(low)?, expr, low)?;
                let le = self.compare(Cmp::LtEq, x, self.expr(high)?, expr, high)?;
                let both = Typed::new(ColumnType::Boolean, Node::And(boxed(ge), boxed(le)));
                not_if(*negated, both)
            }
            Ast::Like {
                expr,
                pattern,
                escape,
                case_insensitive,
                negated,
            } => {
                let t = self.text(self.expr(expr)?, expr, "LIKE")?;
                let like = Typed::new(
                    ColumnType::Boolean,
                    Node::Like {
                        expr: boxed(t),
                        pattern: pattern.clone(),
                        escape: *escape,
                        case_insensitive: *case_insensitive,
                    },
                );
                not_if(*negated, like)
            }
            Ast::Case {
                operand,
                branches,
                otherwise,
            } => self.case(operand.as_deref(), branches, otherwise.as_deref())?,
            Ast::Cast { expr, to, try_ } => {
                let t = self.expr(expr)?;
                cast_explicit(t, *to, !*try_, expr)?
            }
            Ast::Call { name, args } => self.call(name, args)?,
        })
    }

    fn boolean(&self, t: Typed, ast: &Ast) -> Checked {
        if t.is_null_literal() {
            return Ok(null(ColumnType::Boolean));
        }
        if t.ty != ColumnType::Boolean {
            return Err(format!(
                "`{ast}` is {}, not a condition (true or false)",
                t.ty
            ));
        }
        Ok(t)
    }

    /// A string operand; NULL becomes a string NULL.
    fn text(&self, t: Typed, ast: &Ast, what: &str) -> Checked {
        if t.is_null_literal() {
            return Ok(null(ColumnType::String));
        }
        if t.ty != ColumnType::String {
            return Err(format!(
                "{what} needs a string; `{ast}` is {} (use CAST({ast} AS varchar))",
                t.ty
            ));
        }
        Ok(t)
    }

    fn integer(&self, t: Typed, ast: &Ast, what: &str) -> Checked {
        if t.is_null_literal() {
            return Ok(null(ColumnType::Bigint));
        }
        if t.ty != ColumnType::Bigint {
            return Err(format!("{what} needs a bigint; `{ast}` is {}", t.ty));
        }
        Ok(t)
    }

    fn binary(&self, op: BinOp, left: &Ast, right: &Ast, whole: &Ast) -> Checked {
        let (l, r) = (self.expr(left)?, self.expr(right)?);
        let cmp = |c| self.compare(c, l.clone(), r.clone(), left, right);
        Ok(match op {
            BinOp::And | BinOp::Or => {
                let (l, r) = (self.boolean(l, left)?, self.boolean(r, right)?);
                let node = if op == BinOp::And {
                    Node::And(boxed(l), boxed(r))
                } else {
                    Node::Or(boxed(l), boxed(r))
                };
                Typed::new(ColumnType::Boolean, node)
            }
            BinOp::Eq => cmp(Cmp::Eq)?,
            BinOp::NotEq => cmp(Cmp::NotEq)?,
            BinOp::Lt => cmp(Cmp::Lt)?,
            BinOp::LtEq => cmp(Cmp::LtEq)?,
            BinOp::Gt => cmp(Cmp::Gt)?,
            BinOp::GtEq => cmp(Cmp::GtEq)?,
            BinOp::Concat => {
                let l = to_text(l);
                let r = to_text(r);
                Typed::new(ColumnType::String, Node::Concat(boxed(l), boxed(r)))
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => {
                self.arith(op, l, r, whole)?
            }
        })
    }

    fn arith(&self, op: BinOp, l: Typed, r: Typed, whole: &Ast) -> Checked {
        // A NULL operand takes the other's type (bigint if both are NULL).
        let (l, r) = match (l.is_null_literal(), r.is_null_literal()) {
            (true, true) => (null(ColumnType::Bigint), null(ColumnType::Bigint)),
            (true, false) => (null(r.ty), r),
            (false, true) => {
                let ty = l.ty;
                (l, null(ty))
            }
            _ => (l, r),
        };
        for t in [&l, &r] {
            if !is_numeric(t.ty) {
                return Err(format!(
                    "`{}` needs numbers; in `{whole}` one side is {}",
                    op.symbol(),
                    t.ty
                ));
            }
        }
        let (op, ty) = match op {
            BinOp::Div => (Arith::Div, ColumnType::Double),
            BinOp::Add | BinOp::Sub | BinOp::Mod => {
                let arith = match op {
                    BinOp::Add => Arith::Add,
                    BinOp::Sub => Arith::Sub,
                    _ => Arith::Mod,
                };
                let ty = match common_numeric(&l, &r) {
                    ColumnType::Decimal { .. } => {
                        let (digits, scale) = decimal_digits(&l, &r);
                        match arith {
                            // A sum needs one more integer digit; at 38 the scale stays.
                            Arith::Add | Arith::Sub => {
                                decimal((digits + scale + 1).min(MAX_PRECISION), scale)
                            }
                            // A remainder past 38 digits is computed as a double.
                            _ if digits + scale > MAX_PRECISION => ColumnType::Double,
                            _ => decimal(digits + scale, scale),
                        }
                    }
                    other => other,
                };
                (arith, ty)
            }
            _ => {
                let ty = match (l.ty, r.ty) {
                    (ColumnType::Double, _) | (_, ColumnType::Double) => ColumnType::Double,
                    (ColumnType::Bigint, ColumnType::Bigint) => ColumnType::Bigint,
                    _ => {
                        let ((pl, sl), (pr, sr)) = (decimal_shape(&l), decimal_shape(&r));
                        if sl + sr > MAX_PRECISION {
                            return Err(format!(
                                "`{whole}` would need {} decimal places; at most {MAX_PRECISION} \
                                 fit (cast an operand to a smaller scale or to double)",
                                sl + sr
                            ));
                        }
                        decimal((pl + pr).min(MAX_PRECISION), sl + sr)
                    }
                };
                (Arith::Mul, ty)
            }
        };
        // The operands are computed in the result's type, except `*` on decimals, which
        // multiplies the unscaled values of each operand's own decimal type.
        let operand_type = |t: &Typed| match (op, ty) {
            (Arith::Div, _) => ColumnType::Double,
            (Arith::Mul, ColumnType::Decimal { .. }) => {
                let (p, s) = decimal_shape(t);
                decimal(p, s)
            }
            _ => ty,
        };
        let (lt, rt) = (operand_type(&l), operand_type(&r));
        let (l, r) = (coerce(l, lt), coerce(r, rt));
        Ok(Typed::new(
            ty,
            Node::Arith {
                op,
                left: boxed(l),
                right: boxed(r),
            },
        ))
    }

    /// Both sides in one type: numbers widened, a date to a timestamp, a string literal
    /// converted (when the spec loads) to the other side's type.
    fn compare(&self, op: Cmp, l: Typed, r: Typed, la: &Ast, ra: &Ast) -> Checked {
        let (l, r) = unify_pair(l, r, la, ra)?;
        Ok(Typed::new(
            ColumnType::Boolean,
            Node::Compare {
                op,
                left: boxed(l),
                right: boxed(r),
            },
        ))
    }

    fn case(
        &self,
        operand: Option<&Ast>,
        branches: &[(Ast, Ast)],
        otherwise: Option<&Ast>,
    ) -> Checked {
        let operand = operand
            .map(|o| Ok::<_, String>((self.expr(o)?, o)))
            .transpose()?;
        let mut conditions = Vec::with_capacity(branches.len());
        let mut values = Vec::with_capacity(branches.len() + 1);
        for (when, then) in branches {
            let w = self.expr(when)?;
            conditions.push(match &operand {
                Some((x, xa)) => self.compare(Cmp::Eq, x.clone(), w, xa, when)?,
                None => self.boolean(w, when)?,
            });
            values.push((self.expr(then)?, then.clone()));
        }
        let otherwise = match otherwise {
            Some(e) => (self.expr(e)?, e.clone()),
            None => (null(ColumnType::String), Ast::Null),
        };
        values.push(otherwise);
        let values = unify_all(values, "CASE results")?;
        let ty = values[0].ty;
        let mut values = values.into_iter();
        let branches = conditions
            .into_iter()
            .zip(values.by_ref())
            .collect::<Vec<_>>();
        let otherwise = values.next().expect("the ELSE value");
        Ok(Typed::new(
            ty,
            Node::Case {
                branches,
                otherwise: boxed(otherwise),
            },
        ))
    }

    fn call(&self, name: &str, args: &[Ast]) -> Checked {
        let arity = |range: std::ops::RangeInclusive<usize>| -> Result<(), String> {
            let n = args.len();
            let (min, max) = (*range.start(), *range.end());
            if range.contains(&n) {
                Ok(())
            } else if max == usize::MAX {
                Err(format!("{name}() takes at least {min} argument"))
            } else if min == max {
                let s = if min == 1 { "" } else { "s" };
                Err(format!("{name}() takes {min} argument{s}, not {n}"))
            } else {
                Err(format!("{name}() takes {min} to {max} arguments, not {n}"))
            }
        };
        let typed = |i: usize| self.expr(&args[i]);
        let text = |i: usize| self.text(self.expr(&args[i])?, &args[i], &format!("{name}()"));
        let func = |func: Func, ty: ColumnType, args: Vec<Typed>| {
            Ok(Typed::new(ty, Node::Func { func, args }))
        };
        match name {
            "upper" | "lower" => {
                arity(1..=1)?;
                let f = if name == "upper" {
                    Func::Upper
                } else {
                    Func::Lower
                };
                func(f, ColumnType::String, vec![text(0)?])
            }
            "trim" | "ltrim" | "rtrim" => {
                arity(1..=2)?;
                let side = match name {
                    "trim" => Side::Both,
                    "ltrim" => Side::Start,
                    _ => Side::End,
                };
                let mut a = vec![text(0)?];
                if args.len() == 2 {
                    a.push(text(1)?);
                }
                func(Func::Trim(side), ColumnType::String, a)
            }
            "length" | "char_length" | "character_length" => {
                arity(1..=1)?;
                func(Func::Length, ColumnType::Bigint, vec![text(0)?])
            }
            "substr" | "substring" => {
                arity(2..=3)?;
                let mut a = vec![text(0)?];
                for i in 1..args.len() {
                    a.push(self.integer(typed(i)?, &args[i], &format!("{name}()"))?);
                }
                func(Func::Substr, ColumnType::String, a)
            }
            "replace" => {
                arity(3..=3)?;
                func(
                    Func::Replace,
                    ColumnType::String,
                    vec![text(0)?, text(1)?, text(2)?],
                )
            }
            "concat" => {
                arity(1..=usize::MAX)?;
                let a = (0..args.len())
                    .map(|i| Ok(to_text(typed(i)?)))
                    .collect::<Result<Vec<_>, String>>()?;
                func(Func::ConcatSkipNulls, ColumnType::String, a)
            }
            "coalesce" => {
                arity(1..=usize::MAX)?;
                let a = (0..args.len())
                    .map(|i| Ok((typed(i)?, args[i].clone())))
                    .collect::<Result<Vec<_>, String>>()?;
                let a = unify_all(a, "coalesce() arguments")?;
                let ty = a[0].ty;
                func(Func::Coalesce, ty, a)
            }
            "nullif" => {
                arity(2..=2)?;
                let (a, b) = (typed(0)?, typed(1)?);
                // Compared in a common type; the result keeps the first argument's.
                let ty = if a.is_null_literal() { b.ty } else { a.ty };
                let (ca, cb) = unify_pair(a.clone(), b, &args[0], &args[1])?;
                let a = coerce(a, ty);
                let eq = Typed::new(
                    ColumnType::Boolean,
                    Node::Compare {
                        op: Cmp::Eq,
                        left: boxed(ca),
                        right: boxed(cb),
                    },
                );
                Ok(Typed::new(
                    ty,
                    Node::Case {
                        branches: vec![(eq, null(ty))],
                        otherwise: boxed(a),
                    },
                ))
            }
            "abs" => {
                arity(1..=1)?;
                let t = typed(0)?;
                let t = if t.is_null_literal() {
                    null(ColumnType::Bigint)
                } else {
                    t
                };
                if !is_numeric(t.ty) {
                    return Err(format!("abs() needs a number; `{}` is {}", args[0], t.ty));
                }
                let ty = t.ty;
                func(Func::Abs, ty, vec![t])
            }
            "starts_with" | "ends_with" => {
                arity(2..=2)?;
                let f = if name == "starts_with" {
                    Func::StartsWith
                } else {
                    Func::EndsWith
                };
                func(f, ColumnType::Boolean, vec![text(0)?, text(1)?])
            }
            "regexp_like" | "regexp_matches" => {
                arity(2..=2)?;
                let pattern = text(1)?;
                if let Node::Literal(Value::Str(p)) = &pattern.node {
                    regex::Regex::new(p)
                        .map_err(|e| format!("{name}(): invalid pattern '{p}': {e}"))?;
                }
                func(
                    Func::RegexpLike,
                    ColumnType::Boolean,
                    vec![text(0)?, pattern],
                )
            }
            "date_part" => {
                arity(2..=2)?;
                let Ast::Str(part) = &args[0] else {
                    return Err(
                        "date_part() takes the part as a quoted word: date_part('year', d)".into(),
                    );
                };
                let part = match part.to_ascii_lowercase().as_str() {
                    "year" => Part::Year,
                    "month" => Part::Month,
                    "day" => Part::Day,
                    "hour" => Part::Hour,
                    "minute" => Part::Minute,
                    "second" => Part::Second,
                    other => {
                        return Err(format!(
                            "unknown date part `{other}`: use year, month, day, hour, minute or second"
                        ));
                    }
                };
                let t = typed(1)?;
                let t = if t.is_null_literal() {
                    null(ColumnType::Timestamp)
                } else {
                    t
                };
                if !matches!(t.ty, ColumnType::Date | ColumnType::Timestamp) {
                    return Err(format!(
                        "date_part() needs a date or timestamp; `{}` is {}",
                        args[1], t.ty
                    ));
                }
                func(Func::DatePart(part), ColumnType::Bigint, vec![t])
            }
            _ => Err(format!("unknown function `{name}`; known: {FUNCTIONS}")),
        }
    }
}

/// The functions a spec may call, by name in any case.
pub(crate) const FUNCTIONS: &str = "upper, lower, trim, ltrim, rtrim, length, substr, \
     replace, concat, coalesce, nullif, abs, starts_with, ends_with, regexp_like, date_part";

fn not_if(negated: bool, t: Typed) -> Typed {
    if negated {
        Typed::new(ColumnType::Boolean, Node::Not(boxed(t)))
    } else {
        t
    }
}

/// An exact literal: `2.50` is decimal(3,2), as SQL types it.
fn exact_literal(s: &str) -> Checked {
    let digits = s.trim_start_matches('-');
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    // At least one integer digit, as SQL types `0.05`: decimal(3,2).
    let int = int.trim_start_matches('0').len().max(1);
    let scale = u8::try_from(frac.len()).map_err(|_| format!("`{s}` has too many digits"))?;
    let precision =
        u8::try_from(int + frac.len()).map_err(|_| format!("`{s}` has too many digits"))?;
    if precision > MAX_PRECISION {
        return Err(format!(
            "`{s}` has more than {MAX_PRECISION} digits; write it as a double (1e30)"
        ));
    }
    let v = types::parse_decimal(s, precision, scale)?;
    Ok(Typed::new(
        decimal(precision, scale),
        Node::Literal(Value::Decimal(v)),
    ))
}

/// Text of any value, as CAST(x AS varchar) gives it.
fn to_text(t: Typed) -> Typed {
    coerce(t, ColumnType::String)
}

/// Converts to `to`: a NULL literal is retyped, a same-typed value kept, anything else
/// wrapped in a strict cast (the checker only asks for conversions that cannot fail, or to
/// text).
fn coerce(t: Typed, to: ColumnType) -> Typed {
    if t.ty == to {
        t
    } else if t.is_null_literal() {
        null(to)
    } else {
        Typed::new(
            to,
            Node::Cast {
                expr: boxed(t),
                strict: true,
            },
        )
    }
}

/// CAST / TRY_CAST: which conversions exist (README "Expressions").
fn cast_explicit(t: Typed, to: ColumnType, strict: bool, ast: &Ast) -> Checked {
    use ColumnType as T;
    if t.is_null_literal() {
        return Ok(null(to));
    }
    let ok = match (t.ty, to) {
        (a, b) if a == b => return Ok(t),
        (_, T::String) | (T::String, _) => true,
        (a, b) if is_numeric(a) && is_numeric(b) => true,
        (T::Boolean, b) | (b, T::Boolean) if is_numeric(b) => true,
        (T::Date, T::Timestamp) | (T::Timestamp, T::Date) => true,
        _ => false,
    };
    if !ok {
        return Err(format!(
            "cannot cast `{ast}` ({}) to {}",
            t.ty,
            sql_type_name(to)
        ));
    }
    // A literal string is converted now, so a bad one is refused when the spec loads.
    if let (Node::Literal(Value::Str(s)), true) = (&t.node, strict) {
        return literal_from_text(s, to).map_err(|e| format!("`{ast}`: {e}"));
    }
    Ok(Typed::new(
        to,
        Node::Cast {
            expr: boxed(t),
            strict,
        },
    ))
}

/// A string literal as a value of `to`, with the input parsers' rules.
fn literal_from_text(s: &str, to: ColumnType) -> Checked {
    let v = match to {
        ColumnType::String => Value::Str(s.to_string()),
        ColumnType::Bigint => Value::Int(types::parse_bigint(s)?),
        ColumnType::Double => Value::Double(types::parse_double(s)?),
        ColumnType::Boolean => Value::Bool(types::parse_boolean(s)?),
        ColumnType::Date => Value::Date(types::parse_date(s, None)?),
        ColumnType::Timestamp => Value::Timestamp(types::parse_timestamp(s, None)?),
        ColumnType::Decimal { precision, scale } => {
            Value::Decimal(types::parse_decimal(s, precision, scale)?)
        }
    };
    Ok(Typed::new(to, Node::Literal(v)))
}

/// Two operands in one type (comparisons, IN, BETWEEN, NULLIF).
fn unify_pair(l: Typed, r: Typed, la: &Ast, ra: &Ast) -> Result<(Typed, Typed), String> {
    use ColumnType as T;
    if l.is_null_literal() && r.is_null_literal() {
        return Ok((l, r));
    }
    if l.is_null_literal() {
        let ty = r.ty;
        return Ok((null(ty), r));
    }
    if r.is_null_literal() {
        let ty = l.ty;
        return Ok((l, null(ty)));
    }
    let string_literal = |t: &Typed| matches!(t.node, Node::Literal(Value::Str(_)));
    if l.ty != r.ty && l.ty != T::String && string_literal(&r) {
        let Node::Literal(Value::Str(s)) = &r.node else {
            unreachable!("checked")
        };
        let r = literal_from_text(s, l.ty)
            .map_err(|e| format!("`{ra}` compared with {}: {e}", l.ty))?;
        return Ok((l, r));
    }
    if l.ty != r.ty && r.ty != T::String && string_literal(&l) {
        let (r2, l2) = unify_pair(r, l, ra, la)?;
        return Ok((l2, r2));
    }
    let ty = match (l.ty, r.ty) {
        (a, b) if a == b => a,
        (a, b) if is_numeric(a) && is_numeric(b) => common_numeric(&l, &r),
        (T::Date, T::Timestamp) | (T::Timestamp, T::Date) => T::Timestamp,
        (a, b) => {
            return Err(format!(
                "cannot compare `{la}` ({a}) with `{ra}` ({b}); CAST one side"
            ));
        }
    };
    Ok((coerce(l, ty), coerce(r, ty)))
}

/// Values that must share a type (CASE results, coalesce arguments).
fn unify_all(values: Vec<(Typed, Ast)>, what: &str) -> Result<Vec<Typed>, String> {
    use ColumnType as T;
    let mut ty: Option<(Typed, Ast)> = None;
    for (t, a) in &values {
        if t.is_null_literal() {
            continue;
        }
        ty = Some(match ty {
            None => (t.clone(), a.clone()),
            Some((u, ua)) => {
                let common = match (u.ty, t.ty) {
                    (x, y) if x == y => x,
                    (x, y) if is_numeric(x) && is_numeric(y) => common_numeric(&u, t),
                    (T::Date, T::Timestamp) | (T::Timestamp, T::Date) => T::Timestamp,
                    (x, y) => {
                        return Err(format!(
                            "{what} must share a type: `{ua}` is {x}, `{a}` is {y}"
                        ));
                    }
                };
                // Keep the widest seen so far as the representative.
                let rep = if common == t.ty {
                    t.clone()
                } else {
                    Typed::new(common, u.node)
                };
                (rep, ua)
            }
        });
    }
    let ty = ty.map_or(T::String, |(t, _)| t.ty);
    Ok(values.into_iter().map(|(t, _)| coerce(t, ty)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse::parse;

    fn scope() -> Vec<(String, ColumnType)> {
        [
            ("i", "bigint"),
            ("x", "double"),
            ("m", "decimal(12,2)"),
            ("s", "string"),
            ("d", "date"),
            ("t", "timestamp"),
            ("b", "boolean"),
        ]
        .iter()
        .map(|(n, t)| (n.to_string(), t.parse().expect("type")))
        .collect()
    }

    fn ty(text: &str) -> String {
        check(&parse(text).expect("parses"), scope().as_slice())
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .ty
            .to_string()
    }

    fn err(text: &str) -> String {
        check(&parse(text).expect("parses"), scope().as_slice())
            .err()
            .unwrap_or_else(|| panic!("`{text}` type-checked"))
    }

    #[test]
    fn result_types_are_sqls() {
        assert_eq!(ty("i + i"), "bigint");
        assert_eq!(ty("i / i"), "double");
        assert_eq!(ty("m / i"), "double");
        assert_eq!(ty("m / m"), "double");
        assert_eq!(ty("m + m"), "decimal(13,2)");
        assert_eq!(ty("m - i"), "decimal(22,2)");
        assert_eq!(ty("m * m"), "decimal(24,4)");
        assert_eq!(ty("i * m"), "decimal(31,2)");
        assert_eq!(ty("m % i"), "decimal(21,2)");
        assert_eq!(ty("m + x"), "double");
        assert_eq!(ty("2.5"), "decimal(2,1)");
        assert_eq!(ty("0.05"), "decimal(3,2)");
        assert_eq!(ty("1e3"), "double");
        assert_eq!(ty("coalesce(1, 2.5)"), "decimal(11,1)");
        assert_eq!(ty("CASE WHEN b THEN i ELSE 2.5 END"), "decimal(20,1)");
        assert_eq!(ty("nullif(i, 1.0)"), "bigint");
        assert_eq!(ty("-m"), "decimal(12,2)");
        assert_eq!(ty("abs(m)"), "decimal(12,2)");
        assert_eq!(ty("i || s"), "string");
        assert_eq!(ty("NULL"), "string");
        assert_eq!(ty("date_part('year', d)"), "bigint");
        assert_eq!(ty("CASE WHEN b THEN d ELSE t END"), "timestamp");
        assert_eq!(
            ty("coalesce(CAST(m AS decimal(6,3)), CAST(m AS decimal(38,2)))"),
            "decimal(38,2)"
        );
        assert_eq!(
            ty("CAST(m AS decimal(8,4)) % CAST(m AS decimal(38,2))"),
            "double"
        );
        assert_eq!(
            ty("CAST(m AS decimal(38,2)) + CAST(m AS decimal(8,4))"),
            "decimal(38,4)"
        );
        assert_eq!(ty("CAST(NULL AS bigint)"), "bigint");
    }

    #[test]
    fn string_literals_take_the_other_sides_type() {
        assert_eq!(ty("d < '1961-01-01'"), "boolean");
        assert_eq!(ty("i = '3'"), "boolean");
        assert!(
            err("d < 'soon'").contains("not a valid date"),
            "{}",
            err("d < 'soon'")
        );
        assert!(err("CAST('x' AS bigint)").contains("'x' is not a valid bigint"));
    }

    #[test]
    fn mixed_types_are_refused_with_the_parts_named() {
        assert_eq!(
            err("s > 3"),
            "cannot compare `s` (string) with `3` (bigint); CAST one side"
        );
        assert_eq!(
            err("s + 1"),
            "`+` needs numbers; in `(s + 1)` one side is string"
        );
        assert_eq!(
            err("i AND b"),
            "`i` is bigint, not a condition (true or false)"
        );
        assert_eq!(
            err("upper(i)"),
            "upper() needs a string; `i` is bigint (use CAST(i AS varchar))"
        );
        assert_eq!(
            err("CASE WHEN b THEN s ELSE 1 END"),
            "CASE results must share a type: `s` is string, `1` is bigint"
        );
        assert_eq!(err("CAST(d AS bigint)"), "cannot cast `d` (date) to bigint");
        assert_eq!(
            err("nope + 1"),
            "unknown column `nope`; known here: i, x, m, s, d, t, b"
        );
        assert!(err("md5(s)").starts_with("unknown function `md5`; known: upper"));
        assert_eq!(err("upper(s, s)"), "upper() takes 1 argument, not 2");
        assert_eq!(err("coalesce()"), "coalesce() takes at least 1 argument");
        assert!(err("regexp_like(s, '(')").contains("invalid pattern"));
    }
}
