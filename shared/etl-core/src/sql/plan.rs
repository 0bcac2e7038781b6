//! The typed plan of an expression: every node carries its result type, every implicit
//! conversion is an explicit [`Node::Cast`], and every operator's operands already have the
//! types it computes in. A back end executes the plan as written and decides nothing.

use crate::types::ColumnType;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Typed {
    pub ty: ColumnType,
    pub node: Node,
}

/// A literal value; a decimal's scale is its node's type's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    /// Unscaled: 1.50 as decimal(3,2) is 150.
    Decimal(i128),
    Str(String),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01 UTC.
    Timestamp(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Column(String),
    Literal(Value),
    /// From the operand's type to this node's. `strict`: a value that does not convert is an
    /// error (CAST, and implicit widenings, which cannot fail); otherwise NULL (TRY_CAST).
    Cast {
        expr: Box<Typed>,
        strict: bool,
    },
    Neg(Box<Typed>),
    Not(Box<Typed>),
    /// Both operands are of the type the operator computes in: this node's type for
    /// `+ - * %`, double for `/`.
    Arith {
        op: Arith,
        left: Box<Typed>,
        right: Box<Typed>,
    },
    /// Both operands are of one type.
    Compare {
        op: Cmp,
        left: Box<Typed>,
        right: Box<Typed>,
    },
    And(Box<Typed>, Box<Typed>),
    Or(Box<Typed>, Box<Typed>),
    IsNull(Box<Typed>),
    Like {
        expr: Box<Typed>,
        pattern: String,
        escape: Option<char>,
        case_insensitive: bool,
    },
    /// `||` of two strings: NULL if either is.
    Concat(Box<Typed>, Box<Typed>),
    /// The first branch whose condition is true gives the value.
    Case {
        branches: Vec<(Typed, Typed)>,
        otherwise: Box<Typed>,
    },
    Func {
        func: Func,
        args: Vec<Typed>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Both,
    Start,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Upper,
    Lower,
    /// Strips spaces, or the characters of its second argument.
    Trim(Side),
    /// Characters (code points).
    Length,
    /// `(text, start, [length])`, 1-based.
    Substr,
    /// `(text, from, to)`: every occurrence, literally.
    Replace,
    /// Text of every argument, NULLs skipped.
    ConcatSkipNulls,
    Coalesce,
    Abs,
    StartsWith,
    EndsWith,
    /// `(text, pattern)`: the pattern matches somewhere in the text.
    RegexpLike,
    DatePart(Part),
}

impl Typed {
    pub fn new(ty: ColumnType, node: Node) -> Self {
        Self { ty, node }
    }

    pub fn is_null_literal(&self) -> bool {
        matches!(self.node, Node::Literal(Value::Null))
    }

    /// Whether evaluating this node alone (not its operands) can fail at run time.
    pub fn can_fail_here(&self) -> bool {
        match &self.node {
            Node::Cast { expr, strict } => *strict && !super::check::widens(expr.ty, self.ty),
            Node::Neg(_) => self.ty == ColumnType::Bigint,
            Node::Arith { op, .. } => match op {
                Arith::Add | Arith::Sub | Arith::Mul => {
                    matches!(self.ty, ColumnType::Bigint | ColumnType::Decimal { .. })
                }
                Arith::Mod => self.ty != ColumnType::Double,
                Arith::Div => false,
            },
            Node::Func {
                func: Func::Abs, ..
            } => self.ty == ColumnType::Bigint,
            _ => false,
        }
    }

    /// Whether evaluating this node or any operand can fail at run time.
    pub fn can_fail(&self) -> bool {
        self.can_fail_here() || self.children().iter().any(|c| c.can_fail())
    }

    pub fn children(&self) -> Vec<&Typed> {
        match &self.node {
            Node::Column(_) | Node::Literal(_) => vec![],
            Node::Cast { expr, .. }
            | Node::Neg(expr)
            | Node::Not(expr)
            | Node::IsNull(expr)
            | Node::Like { expr, .. } => vec![expr],
            Node::Arith { left, right, .. }
            | Node::Compare { left, right, .. }
            | Node::And(left, right)
            | Node::Or(left, right)
            | Node::Concat(left, right) => vec![left, right],
            Node::Case {
                branches,
                otherwise,
            } => branches
                .iter()
                .flat_map(|(c, v)| [c, v])
                .chain([otherwise.as_ref()])
                .collect(),
            Node::Func { args, .. } => args.iter().collect(),
        }
    }
}
