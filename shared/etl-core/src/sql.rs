//! The SQL expressions of a spec (`amount >= 0`, `email LIKE '%@%'`,
//! `upper(cc) || '-' || cast(id AS varchar)`), parsed into polars expressions.
//!
//! A small grammar of our own rather than polars' `sql` feature: that feature brings
//! sqlparser and many optional polars kernels (3 MB of s3-processor's 24 MB zip), for one
//! expression per filter or derived column. What is accepted is listed in README's spec
//! reference; anything else is refused with its position.
//!
//! Semantics follow SQL: comparisons with NULL are NULL, AND/OR are three-valued, `/`
//! divides as doubles, `||` is NULL if either side is, CAST is strict and TRY_CAST gives
//! NULL where a value does not convert.

use polars::prelude::*;

use crate::error::SpecError;
use crate::types::{self, ColumnType};

/// A parsed expression and the columns it reads (in order of first mention).
pub(crate) struct Parsed {
    pub expr: Expr,
    pub columns: Vec<String>,
}

/// [`parse`] for an expression in a spec: the error names the spec line and field.
pub(crate) fn parse_spec(text: &str, line: Option<u64>, field: &str) -> Result<Parsed, SpecError> {
    parse(text).map_err(|e| SpecError::at(line, field, format!("cannot parse `{text}`: {e}")))
}

/// Parses one expression. The error says what was expected and where (1-based character).
pub(crate) fn parse(text: &str) -> Result<Parsed, String> {
    let tokens = tokenize(text)?;
    let mut p = Parser {
        tokens,
        at: 0,
        columns: Vec::new(),
    };
    let expr = p.expr()?;
    match p.peek() {
        Tok::End => Ok(Parsed {
            expr,
            columns: p.columns,
        }),
        _ => Err(p.unexpected("an operator or the end")),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(i64),
    Float(f64),
    Str(String),
    /// A bare word: a column, function, keyword or type name.
    Word(String),
    /// A "double-quoted" column name.
    Quoted(String),
    Sym(&'static str),
    End,
}

/// Longest first, so `<=` is not read as `<` then `=`.
const SYMBOLS: [&str; 17] = [
    "||", "<=", ">=", "<>", "!=", "::", "(", ")", ",", "+", "-", "*", "/", "%", "<", ">", "=",
];

fn tokenize(text: &str) -> Result<Vec<(Tok, usize)>, String> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    let at = |i: usize| text[..i].chars().count() + 1;
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let tok = if c == '\'' || c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    // A doubled quote is the quote itself.
                    Some((_, q)) if q == c => {
                        if chars.peek().is_some_and(|&(_, n)| n == c) {
                            chars.next();
                            s.push(c);
                        } else {
                            break;
                        }
                    }
                    Some((_, ch)) => s.push(ch),
                    None => {
                        return Err(format!("unterminated {c}quote{c} from character {}", at(i)));
                    }
                }
            }
            if c == '\'' {
                Tok::Str(s)
            } else {
                Tok::Quoted(s)
            }
        } else if c.is_ascii_digit()
            || (c == '.' && text[i + 1..].starts_with(|d: char| d.is_ascii_digit()))
        {
            let mut end = i;
            let mut float = false;
            while let Some(&(j, d)) = chars.peek() {
                let exponent_sign = (d == '+' || d == '-') && text[..j].ends_with(['e', 'E']);
                if d == '.' || d == 'e' || d == 'E' {
                    float = true;
                } else if !(d.is_ascii_digit() || exponent_sign) {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            let s = &text[i..end];
            let bad = || format!("`{s}` at character {} is not a number", at(i));
            if float {
                Tok::Float(s.parse().map_err(|_| bad())?)
            } else {
                Tok::Int(s.parse().map_err(|_| bad())?)
            }
        } else if c.is_alphabetic() || c == '_' {
            // `parent.child` is one name: nested JSON objects become such columns.
            let mut end = i;
            while let Some(&(j, d)) = chars.peek() {
                let dotted =
                    d == '.' && text[j + 1..].starts_with(|n: char| n.is_alphabetic() || n == '_');
                if !(d.is_alphanumeric() || d == '_' || dotted) {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            Tok::Word(text[i..end].to_string())
        } else if let Some(&sym) = SYMBOLS.iter().find(|s| text[i..].starts_with(**s)) {
            for _ in 0..sym.len() {
                chars.next();
            }
            Tok::Sym(if sym == "!=" { "<>" } else { sym })
        } else {
            return Err(format!("unexpected `{c}` at character {}", at(i)));
        };
        out.push((tok, at(i)));
    }
    out.push((Tok::End, text.chars().count() + 1));
    Ok(out)
}

struct Parser {
    tokens: Vec<(Tok, usize)>,
    at: usize,
    columns: Vec<String>,
}

impl Parser {
    fn column(&mut self, name: String) -> Expr {
        if !self.columns.contains(&name) {
            self.columns.push(name.clone());
        }
        col(name)
    }

    fn peek(&self) -> &Tok {
        &self.tokens[self.at].0
    }

    fn next(&mut self) -> Tok {
        let t = self.tokens[self.at].0.clone();
        if t != Tok::End {
            self.at += 1;
        }
        t
    }

    fn unexpected(&self, expected: &str) -> String {
        let (tok, pos) = &self.tokens[self.at];
        let found = match tok {
            Tok::End => "the end".to_string(),
            Tok::Int(i) => format!("`{i}`"),
            Tok::Float(f) => format!("`{f}`"),
            Tok::Str(s) => format!("'{s}'"),
            Tok::Word(w) => format!("`{w}`"),
            Tok::Quoted(q) => format!("\"{q}\""),
            Tok::Sym(s) => format!("`{s}`"),
        };
        format!("expected {expected} at character {pos}, found {found}")
    }

    /// The next token's value if `want` takes it (then consumed), else None.
    fn next_if<T>(&mut self, want: impl FnOnce(&Tok) -> Option<T>) -> Option<T> {
        let got = want(self.peek());
        self.take(got.is_some());
        got
    }

    /// Consumes the next token when `hit`.
    fn take(&mut self, hit: bool) -> bool {
        if hit {
            self.at += 1;
        }
        hit
    }

    /// True (and consumed) when the next token is the keyword `kw`.
    fn keyword(&mut self, kw: &str) -> bool {
        let hit = matches!(self.peek(), Tok::Word(w) if w.eq_ignore_ascii_case(kw));
        self.take(hit)
    }

    fn symbol(&mut self, sym: &str) -> bool {
        let hit = matches!(self.peek(), Tok::Sym(s) if *s == sym);
        self.take(hit)
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), String> {
        let found = self.keyword(kw);
        self.expected(found, kw)
    }

    fn expect_symbol(&mut self, sym: &str) -> Result<(), String> {
        let found = self.symbol(sym);
        self.expected(found, sym)
    }

    fn expected(&self, found: bool, what: &str) -> Result<(), String> {
        if found {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{what}`")))
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.keyword("OR") {
            e = e.or(self.and()?);
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.not()?;
        while self.keyword("AND") {
            e = e.and(self.not()?);
        }
        Ok(e)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.keyword("NOT") {
            Ok(self.not()?.not())
        } else {
            self.predicate()
        }
    }

    /// A comparison, or IS [NOT] NULL, [NOT] IN, [NOT] LIKE/ILIKE, [NOT] BETWEEN.
    fn predicate(&mut self) -> Result<Expr, String> {
        let left = self.concat()?;
        if let &Tok::Sym(op @ ("=" | "<>" | "<" | "<=" | ">" | ">=")) = self.peek() {
            self.at += 1;
            let right = self.concat()?;
            return Ok(match op {
                "=" => left.eq(right),
                "<>" => left.neq(right),
                "<" => left.lt(right),
                "<=" => left.lt_eq(right),
                ">" => left.gt(right),
                _ => left.gt_eq(right),
            });
        }
        if self.keyword("IS") {
            let negated = self.keyword("NOT");
            self.expect_keyword("NULL")?;
            return Ok(if negated {
                left.is_not_null()
            } else {
                left.is_null()
            });
        }
        let negated = self.keyword("NOT");
        let e = if self.keyword("IN") {
            self.expect_symbol("(")?;
            // OR of equalities: SQL's NULL rules (`x IN (1, NULL)` is NULL, not false,
            // where x is not 1) come with it.
            let mut any = left.clone().eq(self.concat()?);
            while self.symbol(",") {
                any = any.or(left.clone().eq(self.concat()?));
            }
            self.expect_symbol(")")?;
            any
        } else if self.keyword("LIKE") {
            like(left, &self.pattern()?, false)
        } else if self.keyword("ILIKE") {
            like(left, &self.pattern()?, true)
        } else if self.keyword("BETWEEN") {
            let low = self.concat()?;
            self.expect_keyword("AND")?;
            let high = self.concat()?;
            left.clone().gt_eq(low).and(left.lt_eq(high))
        } else if negated {
            return Err(self.unexpected("IN, LIKE, ILIKE or BETWEEN after NOT"));
        } else {
            return Ok(left);
        };
        Ok(if negated { e.not() } else { e })
    }

    fn pattern(&mut self) -> Result<String, String> {
        self.next_if(|t| match t {
            Tok::Str(s) => Some(s.clone()),
            _ => None,
        })
        .ok_or_else(|| self.unexpected("a quoted LIKE pattern"))
    }

    /// `||` binds looser than arithmetic, as in PostgreSQL: `'n' || 1 + 1` is `n2`.
    fn concat(&mut self) -> Result<Expr, String> {
        let mut e = self.additive()?;
        while self.symbol("||") {
            let right = self.additive()?;
            e = e.cast(DataType::String) + right.cast(DataType::String);
        }
        Ok(e)
    }

    fn additive(&mut self) -> Result<Expr, String> {
        let mut e = self.term()?;
        loop {
            if self.symbol("+") {
                e = e + self.term()?;
            } else if self.symbol("-") {
                e = e - self.term()?;
            } else {
                return Ok(e);
            }
        }
    }

    fn term(&mut self) -> Result<Expr, String> {
        let mut e = self.unary()?;
        loop {
            if self.symbol("*") {
                e = e * self.unary()?;
            } else if self.symbol("/") {
                e = e.true_div(self.unary()?);
            } else if self.symbol("%") {
                e = e % self.unary()?;
            } else {
                return Ok(e);
            }
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.symbol("-") {
            // A negative literal stays a literal (`-5`, not `0 - 5`).
            return Ok(match self.peek().clone() {
                Tok::Int(i) => {
                    self.at += 1;
                    self.postfix(lit(-i))?
                }
                Tok::Float(f) => {
                    self.at += 1;
                    self.postfix(lit(-f))?
                }
                _ => -self.unary()?,
            });
        }
        if self.symbol("+") {
            return self.unary();
        }
        let e = self.primary()?;
        self.postfix(e)
    }

    /// `x::type`, PostgreSQL's strict cast.
    fn postfix(&mut self, mut e: Expr) -> Result<Expr, String> {
        while self.symbol("::") {
            e = e.strict_cast(self.type_name()?.to_polars());
        }
        Ok(e)
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let pos = self.at;
        match self.next() {
            Tok::Int(i) => Ok(lit(i)),
            Tok::Float(f) => Ok(lit(f)),
            Tok::Str(s) => Ok(lit(s)),
            Tok::Quoted(name) => Ok(self.column(name)),
            Tok::Sym("(") => {
                let e = self.expr()?;
                self.expect_symbol(")")?;
                Ok(e)
            }
            Tok::Word(w) => self.word(w),
            _ => {
                self.at = pos;
                Err(self.unexpected("a column, value, function or `(`"))
            }
        }
    }

    /// What a bare word starts: a keyword expression, a function call or a column.
    fn word(&mut self, w: String) -> Result<Expr, String> {
        let upper = w.to_ascii_uppercase();
        match upper.as_str() {
            "NULL" => return Ok(lit(NULL)),
            "TRUE" => return Ok(lit(true)),
            "FALSE" => return Ok(lit(false)),
            "CASE" => return self.case(),
            "DATE" | "TIMESTAMP" if matches!(self.peek(), Tok::Str(_)) => {
                let Tok::Str(s) = self.next() else {
                    unreachable!("peeked")
                };
                return temporal_literal(&upper, &s);
            }
            "CAST" | "TRY_CAST" => {
                self.expect_symbol("(")?;
                let e = self.expr()?;
                self.expect_keyword("AS")?;
                let to = self.type_name()?.to_polars();
                self.expect_symbol(")")?;
                return Ok(if upper == "CAST" {
                    e.strict_cast(to)
                } else {
                    e.cast(to)
                });
            }
            "EXTRACT" => {
                self.expect_symbol("(")?;
                let part = self
                    .next_if(|t| match t {
                        Tok::Word(p) => Some(p.clone()),
                        _ => None,
                    })
                    .ok_or_else(|| self.unexpected("a date part (YEAR, MONTH, ...)"))?;
                self.expect_keyword("FROM")?;
                let e = self.expr()?;
                self.expect_symbol(")")?;
                return date_part(&part, e);
            }
            _ => {}
        }
        if is_reserved(&upper) {
            // Point at the keyword itself, which `primary` consumed.
            self.at -= 1;
            return Err(self.unexpected("a column, value, function or `(`"));
        }
        if !self.symbol("(") {
            return Ok(self.column(w));
        }
        let mut args = Vec::new();
        if !self.symbol(")") {
            loop {
                args.push(self.expr()?);
                if self.symbol(")") {
                    break;
                }
                if !self.symbol(",") {
                    return Err(self.unexpected("`,` or `)`"));
                }
            }
        }
        function(&w, args)
    }

    /// `CASE WHEN c THEN v ... [ELSE v] END`, or `CASE x WHEN v THEN r ... END`.
    fn case(&mut self) -> Result<Expr, String> {
        let operand = if matches!(self.peek(), Tok::Word(w) if w.eq_ignore_ascii_case("WHEN")) {
            None
        } else if matches!(self.peek(), Tok::Word(w) if ["END", "ELSE"].iter().any(|k| w.eq_ignore_ascii_case(k)))
        {
            return Err(self.unexpected("`WHEN`"));
        } else {
            Some(self.expr()?)
        };
        let mut branches = Vec::new();
        while self.keyword("WHEN") {
            let when_value = self.expr()?;
            let condition = match &operand {
                Some(x) => x.clone().eq(when_value),
                None => when_value,
            };
            self.expect_keyword("THEN")?;
            branches.push((condition, self.expr()?));
        }
        if branches.is_empty() {
            return Err(self.unexpected("`WHEN`"));
        }
        let otherwise = if self.keyword("ELSE") {
            self.expr()?
        } else {
            lit(NULL)
        };
        self.expect_keyword("END")?;
        // Nested from the last branch: the first condition that holds wins.
        Ok(branches
            .into_iter()
            .rev()
            .fold(otherwise, |rest, (c, v)| when(c).then(v).otherwise(rest)))
    }

    /// A type name as CAST takes it: the spec's types and their common SQL spellings.
    fn type_name(&mut self) -> Result<ColumnType, String> {
        let start = self.at;
        let name = self
            .next_if(|t| match t {
                Tok::Word(w) => Some(w.to_ascii_lowercase()),
                _ => None,
            })
            .ok_or_else(|| self.unexpected("a type name"))?;
        if name == "double" {
            self.keyword("PRECISION");
        }
        let mut args = Vec::new();
        if self.symbol("(") {
            loop {
                let n = self.next_if(|t| match t {
                    Tok::Int(i) => Some(*i),
                    _ => None,
                });
                args.push(n.ok_or_else(|| self.unexpected("a number"))?);
                if self.symbol(")") {
                    break;
                }
                self.expect_symbol(",")?;
            }
        }
        let ty = match (name.as_str(), args.as_slice()) {
            ("varchar" | "char" | "text" | "string", [] | [_]) => Some(ColumnType::String),
            ("bigint" | "int" | "integer" | "smallint" | "tinyint" | "long" | "int64", []) => {
                Some(ColumnType::Bigint)
            }
            ("double" | "float" | "real" | "float64", []) => Some(ColumnType::Double),
            ("boolean" | "bool", []) => Some(ColumnType::Boolean),
            ("date", []) => Some(ColumnType::Date),
            ("timestamp" | "datetime", []) => Some(ColumnType::Timestamp),
            // The spec's own check of precision and scale, and its message.
            ("decimal" | "numeric", [p, s]) => return format!("decimal({p},{s})").parse(),
            _ => None,
        };
        ty.ok_or_else(|| {
            self.at = start;
            self.unexpected(
                "a type: varchar, bigint, double, boolean, date, timestamp or decimal(p,s)",
            )
        })
    }
}

/// Words that cannot name a column unquoted, so a misplaced keyword is reported as such.
fn is_reserved(upper: &str) -> bool {
    matches!(
        upper,
        "AND"
            | "OR"
            | "NOT"
            | "IS"
            | "IN"
            | "LIKE"
            | "ILIKE"
            | "BETWEEN"
            | "WHEN"
            | "THEN"
            | "ELSE"
            | "END"
            | "AS"
            | "FROM"
    )
}

/// `%` is any run of characters, `_` any one character. Patterns that are only a
/// prefix, a suffix or a substring skip the regex engine.
fn like(e: Expr, pattern: &str, case_insensitive: bool) -> Expr {
    if !case_insensitive {
        let wild = |s: &str| s.contains(['%', '_']);
        if !wild(pattern) {
            return e.eq(lit(pattern.to_string()));
        }
        let inner = pattern.strip_prefix('%').and_then(|p| p.strip_suffix('%'));
        if let Some(inner) = inner.filter(|i| !wild(i)) {
            return e.str().contains_literal(lit(inner.to_string()));
        }
        if let Some(prefix) = pattern.strip_suffix('%').filter(|p| !wild(p)) {
            return e.str().starts_with(lit(prefix.to_string()));
        }
        if let Some(suffix) = pattern.strip_prefix('%').filter(|s| !wild(s)) {
            return e.str().ends_with(lit(suffix.to_string()));
        }
    }
    let mut rx = String::from(if case_insensitive { "^(?is)" } else { "^(?s)" });
    for c in pattern.chars() {
        match c {
            '%' => rx.push_str(".*"),
            '_' => rx.push('.'),
            c => rx.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    rx.push('$');
    e.str().contains(lit(rx), true)
}

fn temporal_literal(kind: &str, s: &str) -> Result<Expr, String> {
    Ok(if kind == "DATE" {
        lit(types::parse_date(s, None)?).cast(DataType::Date)
    } else {
        lit(types::parse_timestamp(s, None)?).cast(ColumnType::Timestamp.to_polars())
    })
}

fn date_part(part: &str, e: Expr) -> Result<Expr, String> {
    let dt = e.dt();
    Ok(match part.to_ascii_lowercase().as_str() {
        "year" => dt.year(),
        "month" => dt.month(),
        "day" => dt.day(),
        "hour" => dt.hour(),
        "minute" => dt.minute(),
        "second" => dt.second(),
        other => {
            return Err(format!(
                "unknown date part `{other}`: use year, month, day, hour, minute or second"
            ));
        }
    }
    .cast(DataType::Int64))
}

/// The functions a spec may call, by name in any case.
pub(crate) const FUNCTIONS: &str = "upper, lower, trim, ltrim, rtrim, length, substr, \
     replace, concat, coalesce, nullif, abs, starts_with, ends_with, regexp_like, date_part";

/// A call's arguments in order, taken once their count is checked.
struct Args(std::vec::IntoIter<Expr>);

impl Args {
    fn next(&mut self) -> Expr {
        self.0.next().expect("arity checked")
    }

    /// An optional last argument: NULL when left out.
    fn or_null(&mut self) -> Expr {
        self.0.next().unwrap_or(lit(NULL))
    }

    fn rest(self) -> Vec<Expr> {
        self.0.collect()
    }
}

fn function(name: &str, args: Vec<Expr>) -> Result<Expr, String> {
    let lower = name.to_ascii_lowercase();
    let n = args.len();
    let arity = |range: std::ops::RangeInclusive<usize>| {
        let (min, max) = (*range.start(), *range.end());
        if range.contains(&n) {
            Ok(())
        } else if max == usize::MAX {
            Err(format!("{lower}() takes at least {min} argument"))
        } else if min == max {
            let s = if min == 1 { "" } else { "s" };
            Err(format!("{lower}() takes {min} argument{s}, not {n}"))
        } else {
            Err(format!("{lower}() takes {min} to {max} arguments, not {n}"))
        }
    };
    let mut a = Args(args.into_iter());
    Ok(match lower.as_str() {
        "upper" => {
            arity(1..=1)?;
            a.next().str().to_uppercase()
        }
        "lower" => {
            arity(1..=1)?;
            a.next().str().to_lowercase()
        }
        "trim" | "ltrim" | "rtrim" => {
            arity(1..=2)?;
            let e = a.next().str();
            // Whitespace unless the characters to strip are given.
            let chars = a.or_null();
            match lower.as_str() {
                "trim" => e.strip_chars(chars),
                "ltrim" => e.strip_chars_start(chars),
                _ => e.strip_chars_end(chars),
            }
        }
        "length" | "char_length" | "character_length" => {
            arity(1..=1)?;
            a.next().str().len_chars().cast(DataType::Int64)
        }
        "substr" | "substring" => {
            // 1-based start, as in SQL.
            arity(2..=3)?;
            let e = a.next();
            let start = a.next() - lit(1i64);
            e.str().slice(start, a.or_null())
        }
        "replace" => {
            arity(3..=3)?;
            let e = a.next();
            let from = a.next();
            e.str().replace_all(from, a.next(), true)
        }
        "concat" => {
            // Unlike `||`, concat() skips NULLs.
            arity(1..=usize::MAX)?;
            let text: Vec<Expr> = a
                .rest()
                .into_iter()
                .map(|e| e.cast(DataType::String))
                .collect();
            concat_str(text, "", true)
        }
        "coalesce" => {
            arity(1..=usize::MAX)?;
            coalesce(&a.rest())
        }
        "nullif" => {
            arity(2..=2)?;
            let e = a.next();
            when(e.clone().eq(a.next())).then(lit(NULL)).otherwise(e)
        }
        "abs" => {
            arity(1..=1)?;
            let e = a.next();
            when(e.clone().lt(lit(0))).then(-e.clone()).otherwise(e)
        }
        "starts_with" | "ends_with" => {
            arity(2..=2)?;
            let e = a.next().str();
            if lower == "starts_with" {
                e.starts_with(a.next())
            } else {
                e.ends_with(a.next())
            }
        }
        "regexp_like" => {
            arity(2..=2)?;
            let e = a.next();
            e.str().contains(a.next(), true)
        }
        "date_part" => {
            arity(2..=2)?;
            let part = match a.next() {
                Expr::Literal(v) => v.extract_str().map(str::to_string),
                _ => None,
            }
            .ok_or("date_part() takes the part as a quoted word: date_part('year', d)")?;
            date_part(&part, a.next())?
        }
        _ => return Err(format!("unknown function `{name}`; known: {FUNCTIONS}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evaluates `text` on a small frame with nulls in every column.
    fn eval(text: &str) -> Column {
        let df = df!(
            "a" => [Some(1i64), Some(-2), None, Some(10)],
            "x" => [Some(1.5f64), Some(250.0), Some(-3.0), None],
            "s" => [Some("ab@c.de"), Some("Hello"), None, Some("  pad ")],
            "T" => [Some("1"), Some("2"), Some("x"), None],
            "d" => [Some("2024-03-05"), Some("1999-12-31"), None, Some("2000-01-01")],
        )
        .unwrap()
        .lazy()
        .with_column(col("d").strict_cast(DataType::Date))
        .select([parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .expr
            .alias("out")])
        .collect()
        .unwrap_or_else(|e| panic!("{text}: {e}"));
        df.column("out").unwrap().clone()
    }

    fn bools(text: &str) -> Vec<Option<bool>> {
        eval(text).bool().unwrap().iter().collect()
    }

    /// Each expression against its four expected values.
    fn check(cases: &[(&str, [Option<bool>; 4])]) {
        for (text, want) in cases {
            assert_eq!(&bools(text), want, "{text}");
        }
    }

    fn ints(text: &str) -> Vec<Option<i64>> {
        eval(text)
            .cast(&DataType::Int64)
            .unwrap()
            .i64()
            .unwrap()
            .iter()
            .collect()
    }

    fn strs(text: &str) -> Vec<Option<String>> {
        eval(text)
            .str()
            .unwrap()
            .iter()
            .map(|s| s.map(str::to_string))
            .collect()
    }

    fn err(text: &str) -> String {
        parse(text)
            .err()
            .unwrap_or_else(|| panic!("`{text}` parsed"))
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
        ]);
        assert_eq!(bools("a != 1"), bools("a <> 1"));
    }

    #[test]
    fn precedence_is_sqls() {
        // AND before OR, NOT before AND, * before +, arithmetic before comparison.
        assert_eq!(
            bools("a = 1 OR a = -2 AND x > 1000"),
            [Some(true), Some(false), None, Some(false)]
        );
        assert_eq!(bools("(a = 1 OR a = -2) AND x > 1000"), [Some(false); 4]);
        assert_eq!(ints("a + 2 * 3"), [Some(7), Some(4), None, Some(16)]);
        assert_eq!(ints("(a + 2) * 3"), [Some(9), Some(0), None, Some(36)]);
        assert_eq!(ints("-a - -1"), [Some(0), Some(3), None, Some(-9)]);
        assert_eq!(ints("a % 3")[3], Some(1));
        assert_eq!(
            bools("a + 1 > 1"),
            [Some(true), Some(false), None, Some(true)]
        );
        assert_eq!(
            strs("'n' || a + 1"),
            [
                Some("n2".into()),
                Some("n-1".into()),
                None,
                Some("n11".into())
            ]
        );
    }

    #[test]
    fn division_is_true_division() {
        let half = eval("a / 2");
        assert_eq!(half.dtype(), &DataType::Float64);
        assert_eq!(half.f64().unwrap().get(0), Some(0.5));
    }

    #[test]
    fn in_between_and_like() {
        check(&[
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
                "x NOT BETWEEN -3 AND 1.5",
                [Some(false), Some(true), Some(false), None],
            ),
            ("s LIKE '%@%'", [Some(true), Some(false), None, Some(false)]),
            ("s LIKE 'He%'", [Some(false), Some(true), None, Some(false)]),
            ("s LIKE '%de'", [Some(true), Some(false), None, Some(false)]),
            (
                "s LIKE 'Hello'",
                [Some(false), Some(true), None, Some(false)],
            ),
            (
                "s LIKE 'H_l%o'",
                [Some(false), Some(true), None, Some(false)],
            ),
            (
                "s LIKE '%.d_'",
                [Some(true), Some(false), None, Some(false)],
            ),
            // Regex characters in a pattern are themselves.
            (
                "s LIKE 'ab@c.de'",
                [Some(true), Some(false), None, Some(false)],
            ),
            (
                "s LIKE 'ab@c_de'",
                [Some(true), Some(false), None, Some(false)],
            ),
            (
                "s LIKE 'ab@c\\de'",
                [Some(false), Some(false), None, Some(false)],
            ),
            (
                "s NOT LIKE '%@%'",
                [Some(false), Some(true), None, Some(true)],
            ),
            (
                "s ILIKE 'hello'",
                [Some(false), Some(true), None, Some(false)],
            ),
        ]);
        // Not 1, and NULL in the list: unknown, as in SQL.
        assert_eq!(bools("a IN (1, NULL)")[1], None);
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
        assert_eq!(
            strs("concat(s, '|', a)")[2].as_deref(),
            Some("|"),
            "concat skips NULLs"
        );
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
        assert_eq!(strs("'it''s'")[0].as_deref(), Some("it's"));
    }

    #[test]
    fn case_cast_and_dates() {
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
            ints("TRY_CAST(\"T\" AS bigint)"),
            [Some(1), Some(2), None, None]
        );
        assert_eq!(eval("a::varchar").dtype(), &DataType::String);
        assert_eq!(strs("a::varchar")[1].as_deref(), Some("-2"));
        assert_eq!(
            eval("cast(x AS decimal(10, 2))").dtype(),
            &DataType::Decimal(10, 2)
        );
        assert_eq!(
            bools("d >= DATE '2000-01-01'"),
            [Some(true), Some(false), None, Some(true)]
        );
        assert_eq!(
            ints("EXTRACT(year FROM d)"),
            [Some(2024), Some(1999), None, Some(2000)]
        );
        assert_eq!(
            ints("date_part('month', d)"),
            [Some(3), Some(12), None, Some(1)]
        );
        let noon = eval("TIMESTAMP '2024-01-31 12:00:00'");
        assert_eq!(noon.dtype(), &ColumnType::Timestamp.to_polars());
        assert_eq!(
            noon.cast(&DataType::Int64).unwrap().i64().unwrap().get(0),
            Some(1_706_702_400_000_000)
        );
    }

    #[test]
    fn a_strict_cast_fails_on_a_value_that_does_not_convert() {
        let df = df!("t" => ["1", "x"]).unwrap();
        let out = df
            .lazy()
            .select([parse("CAST(t AS bigint)").unwrap().expr])
            .collect();
        assert!(out.is_err());
    }

    #[test]
    fn errors_say_what_was_expected_and_where() {
        assert_eq!(
            err("amount >>> 1"),
            "expected a column, value, function or `(` at character 9, found `>`"
        );
        assert_eq!(
            err("a = 1 b"),
            "expected an operator or the end at character 7, found `b`"
        );
        assert_eq!(
            err("upper(a"),
            "expected `,` or `)` at character 8, found the end"
        );
        assert!(err("cast(x AS decimal(50, 2))").contains("precision <= 38"));
        assert_eq!(
            err("s LIKE"),
            "expected a quoted LIKE pattern at character 7, found the end"
        );
        assert_eq!(
            err("cast(x AS decimal(10,"),
            "expected a number at character 22, found the end"
        );
        assert_eq!(
            err("s LIKE x"),
            "expected a quoted LIKE pattern at character 8, found `x`"
        );
        assert_eq!(err("'open"), "unterminated 'quote' from character 1");
        assert_eq!(err("a = ?"), "unexpected `?` at character 5");
        assert!(err("cast(a AS blob)").starts_with("expected a type: varchar"));
        assert!(err("md5(a)").starts_with("unknown function `md5`; known: upper"));
        assert_eq!(err("upper(a, b)"), "upper() takes 1 argument, not 2");
        assert_eq!(err("coalesce()"), "coalesce() takes at least 1 argument");
        assert!(
            err("DATE 'soon'").contains("not a valid date"),
            "{}",
            err("DATE 'soon'")
        );
        assert_eq!(
            err("a AND"),
            "expected a column, value, function or `(` at character 6, found the end"
        );
        assert_eq!(
            err("NOT"),
            "expected a column, value, function or `(` at character 4, found the end"
        );
        assert_eq!(
            err("a NOT = 1"),
            "expected IN, LIKE, ILIKE or BETWEEN after NOT at character 7, found `=`"
        );
        assert_eq!(
            err("CASE END"),
            "expected `WHEN` at character 6, found `END`"
        );
    }

    #[test]
    fn columns_are_what_the_expression_reads() {
        let p = parse("upper(\"my col\") || b IN (c, 1, b) AND d LIKE 'x%'").unwrap();
        assert_eq!(p.columns, ["my col", "b", "c", "d"]);
        let p = parse("address.city = 'Oslo' AND a.b.c > 1.5").unwrap();
        assert_eq!(p.columns, ["address.city", "a.b.c"]);
    }
}
