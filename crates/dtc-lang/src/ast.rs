//! Syntax tree of the expression language (docs/language.md section 5).
//!
//! The parser produces these nodes; the resolver in `dtc-plan` turns them into slots. Every node
//! carries a [`Span`] of byte offsets into the spec file, so later stages can point at the exact
//! character without re-reading the source.

use crate::span::Span;

/// An expression with the place it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

/// A name as written, with its place (attribute names, comprehension targets, keywords).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    None,
    List(Vec<Expr>),
    Set(Vec<Expr>),
    Dict(Vec<(Expr, Expr)>),
    Tuple(Vec<Expr>),
    /// A bare name: `source`, `time`, `game_stats`, `len`, a comprehension variable.
    Name(String),
    /// `value.attr`
    Attr(Box<Expr>, Ident),
    /// `value[index]`
    Index(Box<Expr>, Box<Expr>),
    /// `value[lower:upper:step]`, each bound optional.
    Slice {
        value: Box<Expr>,
        lower: Option<Box<Expr>>,
        upper: Option<Box<Expr>>,
        step: Option<Box<Expr>>,
    },
    /// `func(args)`; a method call is a call whose `func` is an [`ExprKind::Attr`].
    Call {
        func: Box<Expr>,
        args: Vec<Arg>,
    },
    Unary(UnaryOp, Box<Expr>),
    /// `a + b - c`: the first operand, then each operator with its right operand, applied from
    /// the left. A chain is one node however long it is, so no stage recurses once per operand
    /// and a flat sum of many terms is no deeper than `a + b`. `**` is right-associative:
    /// `a ** b ** c` is a one-operator chain whose operand is the chain `b ** c`.
    Binary(Box<Expr>, Vec<Operation>),
    /// `a and b and c` / `a or b or c`: the operands in order, one node for the whole chain
    /// (short-circuit, returns an operand like Python).
    Logical(LogicalOp, Vec<Expr>),
    Not(Box<Expr>),
    /// `a < b <= c`: the first operand, then each (operator, operand) pair in order.
    Compare(Box<Expr>, Vec<(CmpOp, Expr)>),
    /// `body if cond else orelse`
    IfElse {
        body: Box<Expr>,
        cond: Box<Expr>,
        orelse: Box<Expr>,
    },
    /// `[elt for target in iter if cond ...]`
    ListComp {
        elt: Box<Expr>,
        generators: Vec<Comprehension>,
    },
}

/// One step of a [`ExprKind::Binary`] chain: `op rhs`, applied to the result of the steps
/// before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op: BinOp,
    pub rhs: Expr,
    /// From the chain's first operand to `rhs`: where the operation this step performs was
    /// written (`a + b` in `a + b + c`), for messages about it.
    pub span: Span,
}

/// A call argument: positional, or keyword (`timedelta(days=7)`).
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    pub keyword: Option<Ident>,
    pub value: Expr,
}

/// One `for targets in iter if cond...` clause of a list comprehension.
#[derive(Debug, Clone, PartialEq)]
pub struct Comprehension {
    /// One name, or several for tuple unpacking (`for k, v in d.items()`).
    pub targets: Vec<Ident>,
    pub iter: Expr,
    pub ifs: Vec<Expr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Pos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicalOp {
    And,
    Or,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtE,
    Gt,
    GtE,
    In,
    NotIn,
    Is,
    IsNot,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::FloorDiv => "//",
            BinOp::Mod => "%",
            BinOp::Pow => "**",
        }
    }
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::NotEq => "!=",
            CmpOp::Lt => "<",
            CmpOp::LtE => "<=",
            CmpOp::Gt => ">",
            CmpOp::GtE => ">=",
            CmpOp::In => "in",
            CmpOp::NotIn => "not in",
            CmpOp::Is => "is",
            CmpOp::IsNot => "is not",
        }
    }
}
