//! Tokenizer and recursive-descent parser: expression text to [`Ast`]. Names and types are
//! not looked at here; errors say what was expected and where (1-based character).

use super::ast::{Ast, BinOp};
use crate::types::ColumnType;

/// Parses one expression.
pub(crate) fn parse(text: &str) -> Result<Ast, String> {
    let tokens = tokenize(text)?;
    let mut p = Parser { tokens, at: 0 };
    let expr = p.expr()?;
    match p.peek() {
        Tok::End => Ok(expr),
        _ => Err(p.unexpected("an operator or the end")),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(i64),
    /// A number with a decimal point and no exponent, as written.
    Exact(String),
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
            let (mut point, mut exponent) = (false, false);
            while let Some(&(j, d)) = chars.peek() {
                let exponent_sign = (d == '+' || d == '-') && text[..j].ends_with(['e', 'E']);
                if d == '.' {
                    point = true;
                } else if d == 'e' || d == 'E' {
                    exponent = true;
                } else if !(d.is_ascii_digit() || exponent_sign) {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            let s = &text[i..end];
            let bad = || format!("`{s}` at character {} is not a number", at(i));
            if exponent {
                Tok::Float(s.parse().map_err(|_| bad())?)
            } else if point {
                if s.matches('.').count() > 1 {
                    return Err(bad());
                }
                Tok::Exact(s.to_string())
            } else {
                match s.parse() {
                    Ok(v) => Tok::Int(v),
                    // Past a bigint: an exact decimal, as SQL types it.
                    Err(_) => Tok::Exact(s.to_string()),
                }
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
}

type Parsed = Result<Ast, String>;

fn boxed(a: Ast) -> Box<Ast> {
    Box::new(a)
}

impl Parser {
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
            Tok::Exact(s) => format!("`{s}`"),
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

    fn binary(op: BinOp, left: Ast, right: Ast) -> Ast {
        Ast::Binary {
            op,
            left: boxed(left),
            right: boxed(right),
        }
    }

    fn expr(&mut self) -> Parsed {
        let mut e = self.and()?;
        while self.keyword("OR") {
            e = Self::binary(BinOp::Or, e, self.and()?);
        }
        Ok(e)
    }

    fn and(&mut self) -> Parsed {
        let mut e = self.not()?;
        while self.keyword("AND") {
            e = Self::binary(BinOp::And, e, self.not()?);
        }
        Ok(e)
    }

    fn not(&mut self) -> Parsed {
        if self.keyword("NOT") {
            Ok(Ast::Not(boxed(self.not()?)))
        } else {
            self.predicate()
        }
    }

    /// A comparison, or IS [NOT] NULL, [NOT] IN, [NOT] LIKE/ILIKE, [NOT] BETWEEN.
    fn predicate(&mut self) -> Parsed {
        let left = self.concat()?;
        if let &Tok::Sym(op @ ("=" | "<>" | "<" | "<=" | ">" | ">=")) = self.peek() {
            self.at += 1;
            let right = self.concat()?;
            let op = match op {
                "=" => BinOp::Eq,
                "<>" => BinOp::NotEq,
                "<" => BinOp::Lt,
                "<=" => BinOp::LtEq,
                ">" => BinOp::Gt,
                _ => BinOp::GtEq,
            };
            return Ok(Self::binary(op, left, right));
        }
        if self.keyword("IS") {
            let negated = self.keyword("NOT");
            self.expect_keyword("NULL")?;
            return Ok(Ast::IsNull {
                expr: boxed(left),
                negated,
            });
        }
        let negated = self.keyword("NOT");
        if self.keyword("IN") {
            self.expect_symbol("(")?;
            let mut list = vec![self.concat()?];
            while self.symbol(",") {
                list.push(self.concat()?);
            }
            self.expect_symbol(")")?;
            Ok(Ast::InList {
                expr: boxed(left),
                list,
                negated,
            })
        } else if self.keyword("LIKE") {
            self.like(left, false, negated)
        } else if self.keyword("ILIKE") {
            self.like(left, true, negated)
        } else if self.keyword("BETWEEN") {
            let low = self.concat()?;
            self.expect_keyword("AND")?;
            let high = self.concat()?;
            Ok(Ast::Between {
                expr: boxed(left),
                low: boxed(low),
                high: boxed(high),
                negated,
            })
        } else if negated {
            Err(self.unexpected("IN, LIKE, ILIKE or BETWEEN after NOT"))
        } else {
            Ok(left)
        }
    }

    fn like(&mut self, expr: Ast, case_insensitive: bool, negated: bool) -> Parsed {
        let pattern = self.quoted("a quoted LIKE pattern")?;
        let escape = if self.keyword("ESCAPE") {
            let at = self.at;
            let e = self.quoted("a quoted escape character")?;
            let mut chars = e.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Some(c),
                _ => {
                    self.at = at;
                    return Err(self.unexpected("one escape character"));
                }
            }
        } else {
            None
        };
        if let Some(c) = escape {
            // Each escape must be followed by the character it escapes.
            let mut it = pattern.chars();
            while let Some(p) = it.next() {
                if p == c && it.next().is_none() {
                    return Err(format!(
                        "LIKE pattern '{pattern}' ends with its escape character `{c}`"
                    ));
                }
            }
        }
        Ok(Ast::Like {
            expr: boxed(expr),
            pattern,
            escape,
            case_insensitive,
            negated,
        })
    }

    fn quoted(&mut self, what: &str) -> Result<String, String> {
        self.next_if(|t| match t {
            Tok::Str(s) => Some(s.clone()),
            _ => None,
        })
        .ok_or_else(|| self.unexpected(what))
    }

    /// `||` binds looser than arithmetic, as in PostgreSQL: `'n' || 1 + 1` is `n2`.
    fn concat(&mut self) -> Parsed {
        let mut e = self.additive()?;
        while self.symbol("||") {
            e = Self::binary(BinOp::Concat, e, self.additive()?);
        }
        Ok(e)
    }

    fn additive(&mut self) -> Parsed {
        let mut e = self.term()?;
        loop {
            let op = if self.symbol("+") {
                BinOp::Add
            } else if self.symbol("-") {
                BinOp::Sub
            } else {
                return Ok(e);
            };
            e = Self::binary(op, e, self.term()?);
        }
    }

    fn term(&mut self) -> Parsed {
        let mut e = self.unary()?;
        loop {
            let op = if self.symbol("*") {
                BinOp::Mul
            } else if self.symbol("/") {
                BinOp::Div
            } else if self.symbol("%") {
                BinOp::Mod
            } else {
                return Ok(e);
            };
            e = Self::binary(op, e, self.unary()?);
        }
    }

    fn unary(&mut self) -> Parsed {
        if self.symbol("-") {
            // A negative literal stays a literal (`-5`, not `0 - 5`), so that the smallest
            // bigint can be written.
            let negated = match self.peek().clone() {
                Tok::Int(i) => Some(Ast::Int(-i)),
                Tok::Exact(s) if s == "9223372036854775808" => Some(Ast::Int(i64::MIN)),
                Tok::Exact(s) => Some(Ast::Exact(format!("-{s}"))),
                Tok::Float(f) => Some(Ast::Float(-f)),
                _ => None,
            };
            return match negated {
                Some(lit) => {
                    self.at += 1;
                    self.postfix(lit)
                }
                None => Ok(Ast::Neg(boxed(self.unary()?))),
            };
        }
        if self.symbol("+") {
            return self.unary();
        }
        let e = self.primary()?;
        self.postfix(e)
    }

    /// `x::type`, PostgreSQL's strict cast.
    fn postfix(&mut self, mut e: Ast) -> Parsed {
        while self.symbol("::") {
            e = Ast::Cast {
                expr: boxed(e),
                to: self.type_name()?,
                try_: false,
            };
        }
        Ok(e)
    }

    fn primary(&mut self) -> Parsed {
        let pos = self.at;
        match self.next() {
            Tok::Int(i) => Ok(Ast::Int(i)),
            Tok::Exact(s) => Ok(Ast::Exact(s)),
            Tok::Float(f) => Ok(Ast::Float(f)),
            Tok::Str(s) => Ok(Ast::Str(s)),
            Tok::Quoted(name) => Ok(Ast::Column(name)),
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
    fn word(&mut self, w: String) -> Parsed {
        let upper = w.to_ascii_uppercase();
        match upper.as_str() {
            "NULL" => return Ok(Ast::Null),
            "TRUE" => return Ok(Ast::Bool(true)),
            "FALSE" => return Ok(Ast::Bool(false)),
            "CASE" => return self.case(),
            "DATE" | "TIMESTAMP" if matches!(self.peek(), Tok::Str(_)) => {
                let Tok::Str(s) = self.next() else {
                    unreachable!("peeked")
                };
                return Ok(if upper == "DATE" {
                    Ast::Date(s)
                } else {
                    Ast::Timestamp(s)
                });
            }
            "CAST" | "TRY_CAST" => {
                self.expect_symbol("(")?;
                let e = self.expr()?;
                self.expect_keyword("AS")?;
                let to = self.type_name()?;
                self.expect_symbol(")")?;
                return Ok(Ast::Cast {
                    expr: boxed(e),
                    to,
                    try_: upper == "TRY_CAST",
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
                return Ok(Ast::Call {
                    name: "date_part".into(),
                    args: vec![Ast::Str(part.to_ascii_lowercase()), e],
                });
            }
            _ => {}
        }
        if is_reserved(&upper) {
            // Point at the keyword itself, which `primary` consumed.
            self.at -= 1;
            return Err(self.unexpected("a column, value, function or `(`"));
        }
        if !self.symbol("(") {
            return Ok(Ast::Column(w));
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
        Ok(Ast::Call {
            name: w.to_lowercase(),
            args,
        })
    }

    /// `CASE WHEN c THEN v ... [ELSE v] END`, or `CASE x WHEN v THEN r ... END`.
    fn case(&mut self) -> Parsed {
        let operand = if matches!(self.peek(), Tok::Word(w) if w.eq_ignore_ascii_case("WHEN")) {
            None
        } else if matches!(self.peek(), Tok::Word(w) if ["END", "ELSE"].iter().any(|k| w.eq_ignore_ascii_case(k)))
        {
            return Err(self.unexpected("`WHEN`"));
        } else {
            Some(boxed(self.expr()?))
        };
        let mut branches = Vec::new();
        while self.keyword("WHEN") {
            let when_value = self.expr()?;
            self.expect_keyword("THEN")?;
            branches.push((when_value, self.expr()?));
        }
        if branches.is_empty() {
            return Err(self.unexpected("`WHEN`"));
        }
        let otherwise = if self.keyword("ELSE") {
            Some(boxed(self.expr()?))
        } else {
            None
        };
        self.expect_keyword("END")?;
        Ok(Ast::Case {
            operand,
            branches,
            otherwise,
        })
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
            | "ESCAPE"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text)
            .err()
            .unwrap_or_else(|| panic!("`{text}` parsed"))
    }

    fn shown(text: &str) -> String {
        parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .to_string()
    }

    #[test]
    fn precedence_is_sqls() {
        assert_eq!(
            shown("a = 1 OR b = 2 AND c"),
            "((a = 1) OR ((b = 2) AND c))"
        );
        assert_eq!(shown("a + 2 * 3 > 1"), "((a + (2 * 3)) > 1)");
        assert_eq!(shown("'n' || a + 1"), "('n' || (a + 1))");
        assert_eq!(shown("NOT a = 1 AND b"), "(NOT (a = 1) AND b)");
        assert_eq!(shown("-a - -1"), "(-a - -1)");
    }

    #[test]
    fn literals_keep_their_sql_kinds() {
        assert_eq!(parse("2.50"), Ok(Ast::Exact("2.50".into())));
        assert_eq!(parse("-0.5"), Ok(Ast::Exact("-0.5".into())));
        assert_eq!(parse("1e3"), Ok(Ast::Float(1000.0)));
        assert_eq!(parse("-9223372036854775808"), Ok(Ast::Int(i64::MIN)));
        assert_eq!(
            parse("99999999999999999999"),
            Ok(Ast::Exact("99999999999999999999".into()))
        );
        assert_eq!(parse("'it''s'"), Ok(Ast::Str("it's".into())));
        assert!(err("1.2.3").contains("is not a number"));
    }

    #[test]
    fn like_takes_an_escape() {
        assert_eq!(
            parse(r"s LIKE 'a\_b' ESCAPE '\'"),
            Ok(Ast::Like {
                expr: boxed(Ast::Column("s".into())),
                pattern: r"a\_b".into(),
                escape: Some('\\'),
                case_insensitive: false,
                negated: false,
            })
        );
        assert_eq!(
            err("s LIKE 'a' ESCAPE 'xy'"),
            "expected one escape character at character 19, found 'xy'"
        );
        assert!(err(r"s LIKE 'a\' ESCAPE '\'").contains("ends with its escape character"));
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
}
