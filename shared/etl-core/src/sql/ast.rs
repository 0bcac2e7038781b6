//! The parsed, untyped form of an expression: what the user wrote, before names and types
//! are resolved. [`super::check`] turns it into a typed plan.

use std::fmt;

use crate::types::ColumnType;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ast {
    Column(String),
    Null,
    Bool(bool),
    /// An integer literal that fits a bigint.
    Int(i64),
    /// A literal with a decimal point and no exponent (`2.50`), or an integer too large for a
    /// bigint: an exact number, typed `decimal(p,s)` as in SQL.
    Exact(String),
    /// A literal with an exponent (`1e3`): a double.
    Float(f64),
    Str(String),
    /// `DATE '...'` and `TIMESTAMP '...'`, parsed when typed.
    Date(String),
    Timestamp(String),
    Neg(Box<Ast>),
    Not(Box<Ast>),
    Binary {
        op: BinOp,
        left: Box<Ast>,
        right: Box<Ast>,
    },
    IsNull {
        expr: Box<Ast>,
        negated: bool,
    },
    InList {
        expr: Box<Ast>,
        list: Vec<Ast>,
        negated: bool,
    },
    Between {
        expr: Box<Ast>,
        low: Box<Ast>,
        high: Box<Ast>,
        negated: bool,
    },
    Like {
        expr: Box<Ast>,
        pattern: String,
        escape: Option<char>,
        case_insensitive: bool,
        negated: bool,
    },
    Case {
        operand: Option<Box<Ast>>,
        branches: Vec<(Ast, Ast)>,
        otherwise: Option<Box<Ast>>,
    },
    Cast {
        expr: Box<Ast>,
        to: ColumnType,
        /// TRY_CAST: NULL where the value does not convert.
        try_: bool,
    },
    /// A function call; the name is lowercase.
    Call {
        name: String,
        args: Vec<Ast>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Concat,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Add => "+",
            Self::Sub => "-",
            Self::Mul => "*",
            Self::Div => "/",
            Self::Mod => "%",
            Self::Concat => "||",
            Self::Eq => "=",
            Self::NotEq => "<>",
            Self::Lt => "<",
            Self::LtEq => "<=",
            Self::Gt => ">",
            Self::GtEq => ">=",
            Self::And => "AND",
            Self::Or => "OR",
        }
    }
}

/// Quotes a string literal as SQL writes it.
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Renders the expression back as SQL, fully parenthesised, for error messages.
impl fmt::Display for Ast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Column(c) => {
                if c.chars()
                    .all(|ch| ch.is_alphanumeric() || ch == '_' || ch == '.')
                {
                    f.write_str(c)
                } else {
                    write!(f, "\"{}\"", c.replace('"', "\"\""))
                }
            }
            Self::Null => f.write_str("NULL"),
            Self::Bool(b) => f.write_str(if *b { "TRUE" } else { "FALSE" }),
            Self::Int(i) => write!(f, "{i}"),
            Self::Exact(s) => f.write_str(s),
            Self::Float(x) => write!(f, "{x:e}"),
            Self::Str(s) => f.write_str(&quote(s)),
            Self::Date(s) => write!(f, "DATE {}", quote(s)),
            Self::Timestamp(s) => write!(f, "TIMESTAMP {}", quote(s)),
            Self::Neg(e) => write!(f, "-{e}"),
            Self::Not(e) => write!(f, "NOT {e}"),
            Self::Binary { op, left, right } => write!(f, "({left} {} {right})", op.symbol()),
            Self::IsNull { expr, negated } => {
                write!(f, "{expr} IS {}NULL", if *negated { "NOT " } else { "" })
            }
            Self::InList {
                expr,
                list,
                negated,
            } => {
                let items: Vec<String> = list.iter().map(ToString::to_string).collect();
                let not = if *negated { "NOT " } else { "" };
                write!(f, "{expr} {not}IN ({})", items.join(", "))
            }
            Self::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let not = if *negated { "NOT " } else { "" };
                write!(f, "{expr} {not}BETWEEN {low} AND {high}")
            }
            Self::Like {
                expr,
                pattern,
                escape,
                case_insensitive,
                negated,
            } => {
                let not = if *negated { "NOT " } else { "" };
                let op = if *case_insensitive { "ILIKE" } else { "LIKE" };
                write!(f, "{expr} {not}{op} {}", quote(pattern))?;
                if let Some(c) = escape {
                    write!(f, " ESCAPE {}", quote(&c.to_string()))?;
                }
                Ok(())
            }
            Self::Case {
                operand,
                branches,
                otherwise,
            } => {
                f.write_str("CASE")?;
                if let Some(o) = operand {
                    write!(f, " {o}")?;
                }
                for (w, t) in branches {
                    write!(f, " WHEN {w} THEN {t}")?;
                }
                if let Some(e) = otherwise {
                    write!(f, " ELSE {e}")?;
                }
                f.write_str(" END")
            }
            Self::Cast { expr, to, try_ } => {
                let name = if *try_ { "TRY_CAST" } else { "CAST" };
                write!(f, "{name}({expr} AS {})", sql_type_name(*to))
            }
            Self::Call { name, args } => {
                let items: Vec<String> = args.iter().map(ToString::to_string).collect();
                write!(f, "{name}({})", items.join(", "))
            }
        }
    }
}

/// The SQL name of a spec type, as CAST takes it.
pub(crate) fn sql_type_name(t: ColumnType) -> String {
    match t {
        ColumnType::String => "varchar".into(),
        other => other.to_string(),
    }
}

impl Ast {
    /// The columns the expression reads, in order of first mention.
    pub(crate) fn columns(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.visit_columns(&mut out);
        out
    }

    fn visit_columns(&self, out: &mut Vec<String>) {
        let mut visit = |e: &Ast| e.visit_columns(out);
        match self {
            Self::Column(c) => {
                if !out.contains(c) {
                    out.push(c.clone());
                }
            }
            Self::Null
            | Self::Bool(_)
            | Self::Int(_)
            | Self::Exact(_)
            | Self::Float(_)
            | Self::Str(_)
            | Self::Date(_)
            | Self::Timestamp(_) => {}
            Self::Neg(e) | Self::Not(e) => visit(e),
            Self::Binary { left, right, .. } => {
                visit(left);
                visit(right);
            }
            Self::IsNull { expr, .. } | Self::Like { expr, .. } | Self::Cast { expr, .. } => {
                visit(expr);
            }
            Self::InList { expr, list, .. } => {
                visit(expr);
                list.iter().for_each(visit);
            }
            Self::Between {
                expr, low, high, ..
            } => {
                visit(expr);
                visit(low);
                visit(high);
            }
            Self::Case {
                operand,
                branches,
                otherwise,
            } => {
                if let Some(o) = operand {
                    visit(o);
                }
                for (w, t) in branches {
                    visit(w);
                    visit(t);
                }
                if let Some(o) = otherwise {
                    visit(o);
                }
            }
            Self::Call { args, .. } => args.iter().for_each(visit),
        }
    }
}
