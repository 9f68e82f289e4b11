//! The syntax tree of one spec file: what the YAML said, with places, after key names, aliases
//! and Blurr type names were recognised and expressions were parsed.
//!
//! Names are still strings here; binding them is the resolver's job (`dtc-plan`). A node that
//! could not be read is absent (`None`) and the reason is already in the diagnostics, so the
//! resolver can keep checking the rest of the spec.

use crate::ast::Expr;
use crate::span::{FileId, Span, Spanned};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecKind {
    Streaming,
    Window,
}

/// Which semantics a spec asked for through its `Version` (docs/language.md section 15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `'2018-03-01'` / `'2018-03-07'`: reproduce Blurr's behaviour.
    Blurr,
    Native,
}

/// An expression as written in the spec: its text and its parsed tree.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprNode {
    pub text: String,
    /// The YAML scalar holding the expression.
    pub span: Span,
    pub expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub file: FileId,
    pub kind: Spanned<SpecKind>,
    pub version: Spanned<String>,
    pub dialect: Dialect,
    pub name: Spanned<String>,
    pub description: Option<String>,
    /// Streaming only.
    pub identity: Option<ExprNode>,
    /// Streaming only.
    pub time: Option<ExprNode>,
    /// Streaming only: transform-level filter.
    pub when: Option<ExprNode>,
    pub stores: Vec<StoreDecl>,
    pub imports: Vec<ImportDecl>,
    pub aggregates: Vec<AggregateDecl>,
    /// Window only: `SourceBTS` / `SourceDTC`.
    pub source_dtc: Option<Spanned<String>>,
    /// Window only.
    pub anchor: Option<AnchorDecl>,
    /// The whole document.
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    Embedded,
    DynamoDb,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoreDecl {
    pub kind: Spanned<StoreKind>,
    pub name: Spanned<String>,
    /// DynamoDB table name.
    pub table: Option<Spanned<String>>,
    pub read_capacity_units: Option<Spanned<i64>>,
    pub write_capacity_units: Option<Spanned<i64>>,
    /// Days after which blocks expire.
    pub retention_days: Option<Spanned<i64>>,
    pub span: Span,
}

/// `{Module: dateutil, Identifiers: [parser, tz]}`; each identifier may carry an `as` alias.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportDecl {
    pub module: Spanned<String>,
    /// Alias of the module itself (`Module: datetime as dt`).
    pub module_alias: Option<Spanned<String>>,
    pub identifiers: Vec<ImportedName>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImportedName {
    pub name: Spanned<String>,
    pub alias: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateKind {
    Identity,
    Block,
    Activity,
    Variable,
    Window,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowType {
    Count,
    Day,
    Hour,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AggregateDecl {
    pub kind: Spanned<AggregateKind>,
    pub name: Spanned<String>,
    pub when: Option<ExprNode>,
    pub store: Option<Spanned<String>>,
    /// Identity (optional) and Block aggregates; a Block has these or `split`.
    pub dimensions: Option<Spanned<Vec<FieldDecl>>>,
    /// Block aggregates: a new block starts when this is true for an event.
    pub split: Option<ExprNode>,
    /// Activity aggregates.
    pub separate_by_inactive_seconds: Option<Spanned<i64>>,
    /// Window aggregates.
    pub window_type: Option<Spanned<WindowType>>,
    /// Window aggregates: negative = before the anchor.
    pub window_value: Option<Spanned<i64>>,
    /// Window aggregates: `<streaming name>.<block aggregate name>`.
    pub source: Option<Spanned<SourceRef>>,
    pub fields: Spanned<Vec<FieldDecl>>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceRef {
    pub streaming: Spanned<String>,
    pub aggregate: Spanned<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    Integer,
    Float,
    Boolean,
    String,
    DateTime,
    Map,
    List,
    Set,
}

impl FieldType {
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Integer => "integer",
            FieldType::Float => "float",
            FieldType::Boolean => "boolean",
            FieldType::String => "string",
            FieldType::DateTime => "datetime",
            FieldType::Map => "map",
            FieldType::List => "list",
            FieldType::Set => "set",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldDecl {
    pub name: Spanned<String>,
    /// `string` when the spec gave none (span = the field's span then).
    pub ty: Spanned<FieldType>,
    pub value: Option<ExprNode>,
    pub when: Option<ExprNode>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnchorDecl {
    pub condition: Option<ExprNode>,
    pub max: Option<Spanned<i64>>,
    pub span: Span,
}
