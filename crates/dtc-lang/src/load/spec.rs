//! YAML node tree → [`Spec`], reporting every problem found on the way.

use std::collections::HashMap;

use crate::diagnostic::{Code, Diagnostic};
use crate::span::{FileId, Span, Spanned};
use crate::syntax::{
    AggregateDecl, AggregateKind, AnchorDecl, Dialect, ExprNode, FieldDecl, FieldType, ImportDecl,
    ImportedName, SourceRef, Spec, SpecKind, StoreDecl, StoreKind, WindowType,
};

use super::expr::{ExprCache, parse_scalar_expr};
use super::names::{did_you_mean, is_identifier, name_problem};
use super::reader::{Entries, NodeReader, line_of, value_of};
use super::yaml::{Node, NodeKind};

pub(super) const SPEC_KEYS: &[&str] = &[
    "Type",
    "Version",
    "Name",
    "Description",
    "Identity",
    "Time",
    "When",
    "Stores",
    "Import",
    "Aggregates",
    "SourceBTS",
    "SourceDTC",
    "Anchor",
];
pub(super) const STREAMING_KEYS: &[&str] = &[
    "Type",
    "Version",
    "Name",
    "Description",
    "Identity",
    "Time",
    "When",
    "Stores",
    "Import",
    "Aggregates",
];
pub(super) const WINDOW_KEYS: &[&str] = &[
    "Type",
    "Version",
    "Name",
    "Description",
    "Stores",
    "Import",
    "Aggregates",
    "SourceBTS",
    "SourceDTC",
    "Anchor",
];
pub(super) const AGGREGATE_KEYS: &[&str] = &[
    "Type",
    "Name",
    "When",
    "Store",
    "Dimensions",
    "Split",
    "SeparateByInactiveSeconds",
    "WindowType",
    "WindowValue",
    "Source",
    "Fields",
];
pub(super) const FIELD_KEYS: &[&str] = &["Name", "Type", "Value", "When"];
pub(super) const DIMENSION_KEYS: &[&str] = &["Name", "Type", "Value"];
pub(super) const STORE_KEYS: &[&str] = &[
    "Type",
    "Name",
    "Table",
    "ReadCapacityUnits",
    "WriteCapacityUnits",
    "Retention",
];
pub(super) const IMPORT_KEYS: &[&str] = &["Module", "Identifiers"];
pub(super) const ANCHOR_KEYS: &[&str] = &["Condition", "Max"];
pub(super) const FIELD_TYPES: &[&str] = &[
    "integer", "float", "boolean", "string", "datetime", "map", "list", "set",
];
/// The format versions this build implements, each with the semantics it selects. Closed: a
/// spec written for a later format must not run with an older format's semantics.
pub(super) const VERSIONS: &[(&str, Dialect)] = &[
    ("2018-03-01", Dialect::Blurr),
    ("2018-03-07", Dialect::Blurr),
    ("2026-11-01", Dialect::Native),
];

/// `'2018-03-01'`, `'2018-03-07'` (Blurr semantics) and `'2026-11-01'` (native), for hints.
fn known_versions() -> String {
    let list = |dialect: Dialect| {
        VERSIONS
            .iter()
            .filter(|(_, d)| *d == dialect)
            .map(|(v, _)| format!("'{v}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "this dtc knows the versions {} (Blurr semantics) and {} (native)",
        list(Dialect::Blurr),
        list(Dialect::Native)
    )
}

/// Every place a key can be written, for the hint on a key written in the wrong one: a
/// `Max` at the top level belongs under `Anchor`.
const KEY_PLACES: &[(&str, &[&str])] = &[
    ("at the top level of a spec", SPEC_KEYS),
    ("under `Anchor`", ANCHOR_KEYS),
    ("in an aggregate (an entry of `Aggregates`)", AGGREGATE_KEYS),
    (
        "in a field (an entry of `Fields` or `Dimensions`)",
        FIELD_KEYS,
    ),
    ("in a store (an entry of `Stores`)", STORE_KEYS),
    ("in an import (an entry of `Import`)", IMPORT_KEYS),
];

/// "`Max` belongs under `Anchor`" when `key` is a key of other places than the one it was
/// written in.
fn belongs_elsewhere(key: &str) -> Option<String> {
    let places: Vec<&str> = KEY_PLACES
        .iter()
        .filter(|(_, keys)| keys.contains(&key))
        .map(|(place, _)| *place)
        .collect();
    let (last, others) = places.split_last()?;
    let places = if others.is_empty() {
        (*last).to_string()
    } else {
        format!("{} or {last}", others.join(", "))
    };
    Some(format!("`{key}` belongs {places}; check its indentation"))
}

/// Keys allowed on an aggregate of `kind`.
pub(super) fn aggregate_keys(kind: AggregateKind) -> &'static [&'static str] {
    match kind {
        AggregateKind::Identity => &["Type", "Name", "When", "Store", "Dimensions", "Fields"],
        AggregateKind::Block => &[
            "Type",
            "Name",
            "When",
            "Store",
            "Dimensions",
            "Split",
            "Fields",
        ],
        AggregateKind::Activity => &[
            "Type",
            "Name",
            "When",
            "Store",
            "SeparateByInactiveSeconds",
            "Fields",
        ],
        AggregateKind::Variable => &["Type", "Name", "When", "Fields"],
        AggregateKind::Window => &[
            "Type",
            "Name",
            "When",
            "WindowType",
            "WindowValue",
            "Source",
            "Fields",
        ],
    }
}

fn aggregate_kind_name(kind: AggregateKind) -> &'static str {
    match kind {
        AggregateKind::Identity => "Identity",
        AggregateKind::Block => "Block",
        AggregateKind::Activity => "Activity",
        AggregateKind::Variable => "Variable",
        AggregateKind::Window => "Window",
    }
}

/// Lower-cased type name without Blurr's `Blurr:<Group>:` prefix.
fn type_key(name: &str, group: &str) -> String {
    let lower = name.trim().to_lowercase();
    let prefix = format!("blurr:{group}:");
    lower
        .strip_prefix(&prefix)
        .map_or(lower.clone(), str::to_string)
}

pub(crate) struct Loader<'t> {
    file: FileId,
    text: &'t str,
    pub diagnostics: Vec<Diagnostic>,
    /// Every store name declared, including stores dropped for other errors, so a bad store
    /// `Type` is not also reported as an unknown store at each use.
    store_names: Vec<String>,
    exprs: ExprCache,
}

impl NodeReader for Loader<'_> {
    fn file(&self) -> FileId {
        self.file
    }

    fn diagnostics(&mut self) -> &mut Vec<Diagnostic> {
        &mut self.diagnostics
    }
}

impl<'t> Loader<'t> {
    pub fn new(file: FileId, text: &'t str) -> Self {
        Loader {
            file,
            text,
            diagnostics: Vec::new(),
            store_names: Vec::new(),
            exprs: ExprCache::default(),
        }
    }

    /// Reads `node` as a mapping whose keys must be among `allowed`; keys in `known` but not in
    /// `allowed` belong to another kind of spec/aggregate (`kind_note` says which).
    fn mapping<'a>(
        &mut self,
        node: &'a Node,
        what: &str,
        known: &[&str],
        allowed: &[&str],
        kind_note: &dyn Fn(&str) -> String,
    ) -> Option<Entries<'a>> {
        self.mapping_with(node, what, allowed, |this, span, key| {
            if known.contains(&key) {
                return this
                    .diag(Code::E0206, span, kind_note(key))
                    .with_label("not allowed here");
            }
            let d = this.diag(Code::E0200, span, format!("unknown key `{key}` in {what}"));
            // A key of another place was most likely written at the wrong indentation; a near
            // miss of a key of this place, misspelt.
            match belongs_elsewhere(key) {
                Some(hint) => d.with_label("not a key of this mapping").with_hint(hint),
                None => match did_you_mean(key, allowed.iter().copied()) {
                    Some(hint) => d.with_label("unknown key").with_hint(hint),
                    None => d.with_label("unknown key"),
                },
            }
        })
    }

    /// `message` about `value`, which is none of `choices`: the hint is the nearest choice, or
    /// `otherwise` when none is near.
    fn unknown_choice(
        &self,
        code: Code,
        span: Span,
        message: String,
        value: &str,
        choices: &[&str],
        otherwise: &str,
    ) -> Diagnostic {
        let hint = did_you_mean(value, choices.iter().copied()).unwrap_or_else(|| otherwise.into());
        self.diag(code, span, message).with_hint(hint)
    }

    /// A name that must be an identifier (E0204 otherwise; the name is still returned so later
    /// checks can refer to it).
    fn name(&mut self, node: &Node, what: &str) -> Option<Spanned<String>> {
        let name = self.string(node, what)?;
        if let Some(problem) = name_problem(&name.value) {
            self.report(
                self.diag(
                    Code::E0204,
                    name.span,
                    format!("invalid {what} `{}`", name.value),
                )
                .with_label("invalid name")
                .with_hint(problem),
            );
        }
        Some(name)
    }

    fn expr(&mut self, node: &Node, what: &str) -> Option<ExprNode> {
        let s = self.scalar(node, what)?;
        match parse_scalar_expr(
            &mut self.exprs,
            self.text,
            &s.value,
            s.content_start,
            node.span,
        ) {
            Ok(expr) => Some(ExprNode {
                text: s.value.clone(),
                span: node.span,
                expr,
            }),
            Err(e) => {
                self.report(
                    self.diag(Code::E0400, e.span, e.message)
                        .with_label(format!("in `{what}`")),
                );
                None
            }
        }
    }

    /// An integer written as a plain YAML integer (or, with `allow_string`, as a quoted one).
    fn integer(&self, node: &Node, allow_string: bool) -> Option<i64> {
        let s = node.as_scalar()?;
        let style_ok =
            s.style == saphyr_parser::ScalarStyle::Plain || (allow_string && s.is_quoted());
        if !style_ok {
            return None;
        }
        // `i64::from_str` takes an optional sign, so `+3` and `-7` parse as written.
        s.value.trim().parse::<i64>().ok()
    }

    /// A plain integer of at least 1; anything else is reported by `code` with `message`.
    fn positive_integer(
        &mut self,
        node: &Node,
        code: Code,
        message: &str,
        hint: Option<&str>,
    ) -> Option<Spanned<i64>> {
        if let Some(v) = self.integer(node, false).filter(|v| *v >= 1) {
            return Some(Spanned::new(v, node.span));
        }
        let mut d = self
            .diag(code, node.span, message)
            .with_label("not a positive integer");
        if let Some(hint) = hint {
            d = d.with_hint(hint);
        }
        self.report(d);
        None
    }

    /// Loads one document.
    pub fn spec(&mut self, doc: &Node) -> Option<Spec> {
        let NodeKind::Map(_) = &doc.kind else {
            let found = doc.shape();
            self.report(
                self.diag(
                    Code::E0102,
                    doc.span,
                    format!("a spec must be a YAML mapping, found {found}"),
                )
                .with_label("expected `Type: ...`, `Name: ...`, ..."),
            );
            return None;
        };
        // The kind decides which keys are allowed, so read `Type` before checking keys.
        let type_node = value_of(doc, "Type");
        let kind = type_node.and_then(|n| self.spec_kind(n));
        let allowed = match kind.as_ref().map(|k| k.value) {
            Some(SpecKind::Streaming) => STREAMING_KEYS,
            Some(SpecKind::Window) => WINDOW_KEYS,
            None => SPEC_KEYS,
        };
        let kind_name = match kind.as_ref().map(|k| k.value) {
            Some(SpecKind::Window) => "window",
            _ => "streaming",
        };
        let note = |key: &str| format!("`{key}` is not allowed in a {kind_name} spec");
        let entries = self.mapping(doc, "a spec", SPEC_KEYS, allowed, &note)?;
        if type_node.is_none() {
            self.require(&entries, "Type", "the spec");
        }

        let version = self
            .require(&entries, "Version", "the spec")
            .and_then(|n| self.version(n));
        let name = self
            .require(&entries, "Name", "the spec")
            .and_then(|n| self.name(n, "spec name"));
        let description = entries
            .get("Description")
            .and_then(|n| self.string(n, "Description"))
            .map(|s| s.value);

        let is_streaming = kind.as_ref().map(|k| k.value) == Some(SpecKind::Streaming);
        let is_window = kind.as_ref().map(|k| k.value) == Some(SpecKind::Window);
        let (mut identity, mut time, mut when) = (None, None, None);
        if is_streaming {
            identity = self
                .require(&entries, "Identity", "a streaming spec")
                .and_then(|n| self.expr(n, "Identity"));
            time = self
                .require(&entries, "Time", "a streaming spec")
                .and_then(|n| self.expr(n, "Time"));
            when = entries.get("When").and_then(|n| self.expr(n, "When"));
        }
        let mut source_dtc = None;
        let mut anchor = None;
        if is_window {
            source_dtc = self.source_dtc(&entries);
            anchor = self
                .require(&entries, "Anchor", "a window spec")
                .and_then(|n| self.anchor(n));
        }

        let stores = entries
            .get("Stores")
            .map(|n| self.stores(n))
            .unwrap_or_default();
        let imports = entries
            .get("Import")
            .map(|n| self.imports(n))
            .unwrap_or_default();
        let aggregates = self
            .require(&entries, "Aggregates", "the spec")
            .map(|n| self.aggregates(n, kind.as_ref().map(|k| k.value)))
            .unwrap_or_default();

        let (kind, version, name) = (kind?, version?, name?);
        // An unknown version is already an error, so the dialect it gets here never runs.
        let dialect = VERSIONS
            .iter()
            .find(|(v, _)| *v == version.value)
            .map_or(Dialect::Native, |(_, d)| *d);
        Some(Spec {
            file: self.file,
            kind,
            version,
            dialect,
            name,
            description,
            identity,
            time,
            when,
            stores,
            imports,
            aggregates,
            source_dtc,
            anchor,
            span: doc.span,
        })
    }

    fn spec_kind(&mut self, node: &Node) -> Option<Spanned<SpecKind>> {
        let s = self.scalar(node, "Type")?;
        let kind = match type_key(&s.value, "transform").as_str() {
            "streaming" => SpecKind::Streaming,
            "window" => SpecKind::Window,
            _ => {
                let d = self.unknown_choice(
                    Code::E0202,
                    node.span,
                    format!("unknown spec type `{}`", s.value),
                    &s.value,
                    &["Streaming", "Window"],
                    "a spec's `Type` is `Streaming` or `Window` (Blurr: `Blurr:Transform:Streaming`, `Blurr:Transform:Window`)",
                );
                self.report(d.with_label("unknown type"));
                return None;
            }
        };
        Some(Spanned::new(kind, node.span))
    }

    fn version(&mut self, node: &Node) -> Option<Spanned<String>> {
        let s = self.scalar(node, "Version")?;
        let value = s.value.clone();
        if !is_date(&value) {
            self.report(
                self.diag(
                    Code::E0203,
                    node.span,
                    format!("`Version` must be a date 'YYYY-MM-DD', found `{value}`"),
                )
                .with_label("not a date")
                .with_hint(format!(
                    "write the format version the spec is written for; {}",
                    known_versions()
                )),
            );
        } else if !VERSIONS.iter().any(|(v, _)| *v == value) {
            self.report(
                self.diag(
                    Code::E0203,
                    node.span,
                    format!("unknown format version `{value}`"),
                )
                .with_label("not a version this dtc knows")
                .with_hint(format!(
                    "{}; a spec for a later version needs a later dtc",
                    known_versions()
                )),
            );
        } else if !s.is_quoted() {
            self.report(
                self.diag(Code::E0203, node.span, "`Version` must be a quoted string")
                    .with_label("unquoted date")
                    .with_hint(format!("write `Version: '{value}'`")),
            );
        }
        Some(Spanned::new(value, node.span))
    }

    fn source_dtc(&mut self, entries: &Entries<'_>) -> Option<Spanned<String>> {
        match (entries.get("SourceBTS"), entries.get("SourceDTC")) {
            (Some(a), Some(b)) => {
                let later = if a.span.start > b.span.start { a } else { b };
                self.report(
                    self.diag(
                        Code::E0206,
                        later.span,
                        "`SourceBTS` and `SourceDTC` are the same key; give only one",
                    )
                    .with_label("second source"),
                );
                self.name(a, "source spec name")
            }
            (Some(n), None) | (None, Some(n)) => self.name(n, "source spec name"),
            (None, None) => {
                self.report(
                    self.diag(Code::E0201, entries.anchor, "missing key `SourceDTC` in a window spec")
                        .with_hint("name the streaming spec whose blocks this window spec reads (`SourceDTC`, or Blurr's `SourceBTS`)"),
                );
                None
            }
        }
    }

    fn anchor(&mut self, node: &Node) -> Option<AnchorDecl> {
        let note = |key: &str| format!("`{key}` is not allowed in `Anchor`");
        let entries = self.mapping(node, "`Anchor`", ANCHOR_KEYS, ANCHOR_KEYS, &note)?;
        let condition = self
            .require(&entries, "Condition", "`Anchor`")
            .and_then(|n| self.expr(n, "Anchor.Condition"));
        let max = entries.get("Max").and_then(|n| {
            self.positive_integer(
                n,
                Code::E0308,
                "`Anchor.Max` must be an integer of at least 1",
                Some("leave `Max` out to keep every anchor"),
            )
        });
        Some(AnchorDecl {
            condition,
            max,
            span: node.span,
        })
    }

    fn sequence<'a>(&mut self, node: &'a Node, what: &str) -> Option<&'a [Node]> {
        match &node.kind {
            NodeKind::Seq(items) => Some(items),
            _ => {
                let found = node.shape();
                self.report(
                    self.diag(
                        Code::E0102,
                        node.span,
                        format!("`{what}` must be a list, found {found}"),
                    )
                    .with_label("expected a list (`- ...` entries)"),
                );
                None
            }
        }
    }

    fn stores(&mut self, node: &Node) -> Vec<StoreDecl> {
        let mut stores: Vec<StoreDecl> = Vec::new();
        for item in self.sequence(node, "Stores").unwrap_or_default() {
            let Some(store) = self.store(item) else {
                continue;
            };
            if let Some(first) = stores.iter().find(|s| s.name.value == store.name.value) {
                let line = line_of(self.text, first.name.span.start);
                self.report(
                    self.diag(
                        Code::E0205,
                        store.name.span,
                        format!("duplicate store name `{}`", store.name.value),
                    )
                    .with_label("declared again here")
                    .with_hint(format!(
                        "the first `{}` is on line {line}",
                        store.name.value
                    )),
                );
                continue;
            }
            stores.push(store);
        }
        stores
    }

    fn store(&mut self, node: &Node) -> Option<StoreDecl> {
        let kind = value_of(node, "Type").and_then(|n| self.store_kind(n));
        let allowed: &[&str] = match kind.as_ref().map(|k| k.value) {
            Some(StoreKind::DynamoDb) | None => STORE_KEYS,
            Some(_) => &["Type", "Name", "Retention"],
        };
        let note = |key: &str| format!("`{key}` only applies to DynamoDB stores");
        let entries = self.mapping(node, "a store", STORE_KEYS, allowed, &note)?;
        if entries.get("Type").is_none() {
            self.require(&entries, "Type", "a store");
        }
        let name = self.required_string(&entries, "Name", "a store");
        if let Some(name) = &name {
            self.store_names.push(name.value.clone());
        }
        let table = entries.get("Table").and_then(|n| {
            let table = self.string(n, "Table")?;
            if table.value.trim().is_empty() || table.value.chars().any(char::is_whitespace) {
                self.report(
                    self.diag(Code::E0311, n.span, "`Table` must be a DynamoDB table name")
                        .with_label("not a table name"),
                );
                return None;
            }
            Some(table)
        });
        let read_capacity_units = self.positive_option(&entries, "ReadCapacityUnits");
        let write_capacity_units = self.positive_option(&entries, "WriteCapacityUnits");
        let retention_days = self.positive_option(&entries, "Retention");
        Some(StoreDecl {
            kind: kind?,
            name: name?,
            table,
            read_capacity_units,
            write_capacity_units,
            retention_days,
            span: node.span,
        })
    }

    fn positive_option(&mut self, entries: &Entries<'_>, key: &str) -> Option<Spanned<i64>> {
        let node = entries.get(key)?;
        self.positive_integer(
            node,
            Code::E0311,
            &format!("store option `{key}` must be an integer of at least 1"),
            None,
        )
    }

    fn store_kind(&mut self, node: &Node) -> Option<Spanned<StoreKind>> {
        let s = self.scalar(node, "Type")?;
        let kind = match type_key(&s.value, "store").as_str() {
            "memory" => StoreKind::Memory,
            "embedded" => StoreKind::Embedded,
            "dynamodb" | "dynamo" => StoreKind::DynamoDb,
            _ => {
                let d = self.unknown_choice(
                    Code::E0202,
                    node.span,
                    format!("unknown store type `{}`", s.value),
                    &s.value,
                    &["Memory", "Embedded", "DynamoDB"],
                    "a store's `Type` is `Memory`, `Embedded` or `DynamoDB` (Blurr: `Blurr:Store:Memory`, `Blurr:Store:Dynamo`)",
                );
                self.report(d.with_label("unknown type"));
                return None;
            }
        };
        Some(Spanned::new(kind, node.span))
    }

    fn imports(&mut self, node: &Node) -> Vec<ImportDecl> {
        let items = self.sequence(node, "Import").unwrap_or_default();
        items.iter().filter_map(|item| self.import(item)).collect()
    }

    fn import(&mut self, node: &Node) -> Option<ImportDecl> {
        let note = |key: &str| format!("`{key}` is not allowed in an import");
        let entries = self.mapping(node, "an import", IMPORT_KEYS, IMPORT_KEYS, &note)?;
        let module_node = self.require(&entries, "Module", "an import")?;
        let (module, module_alias) = self.import_name(module_node, true)?;
        let mut identifiers = Vec::new();
        if let Some(list) = entries.get("Identifiers") {
            for item in self.sequence(list, "Identifiers").unwrap_or_default() {
                if let Some((name, alias)) = self.import_name(item, false) {
                    identifiers.push(ImportedName { name, alias });
                }
            }
        }
        Some(ImportDecl {
            module,
            module_alias,
            identifiers,
            span: node.span,
        })
    }

    /// `name` or `name as alias`; modules may be dotted (`dateutil.parser`).
    fn import_name(
        &mut self,
        node: &Node,
        dotted: bool,
    ) -> Option<(Spanned<String>, Option<Spanned<String>>)> {
        let s = self.scalar(node, "Identifiers")?;
        let linear = !s.is_quoted()
            || self
                .text
                .get(s.content_start..s.content_start + s.value.len())
                == Some(s.value.as_str());
        let place = |start: usize, len: usize| {
            if linear {
                Span::new(s.content_start + start, s.content_start + start + len)
            } else {
                node.span
            }
        };
        let words: Vec<(usize, &str)> = s
            .value
            .split_whitespace()
            .map(|w| (w.as_ptr() as usize - s.value.as_ptr() as usize, w))
            .collect();
        let (name, alias) = match words.as_slice() {
            [(i, n)] => ((*i, *n), None),
            [(i, n), (_, "as"), (j, a)] => ((*i, *n), Some((*j, *a))),
            _ => {
                self.report(
                    self.diag(
                        Code::E0204,
                        node.span,
                        format!("cannot read import `{}`", s.value),
                    )
                    .with_label("expected `name` or `name as alias`"),
                );
                return None;
            }
        };
        let valid = if dotted {
            name.1.split('.').all(is_identifier)
        } else {
            is_identifier(name.1)
        };
        let mut ok = valid;
        if !valid {
            self.report(
                self.diag(
                    Code::E0204,
                    place(name.0, name.1.len()),
                    format!("invalid import name `{}`", name.1),
                )
                .with_label("not a Python name"),
            );
        }
        if let Some((j, a)) = alias
            && !is_identifier(a)
        {
            ok = false;
            self.report(
                self.diag(
                    Code::E0204,
                    place(j, a.len()),
                    format!("invalid alias `{a}`"),
                )
                .with_label("not an identifier"),
            );
        }
        ok.then(|| {
            (
                Spanned::new(name.1.to_string(), place(name.0, name.1.len())),
                alias.map(|(j, a)| Spanned::new(a.to_string(), place(j, a.len()))),
            )
        })
    }

    fn aggregates(&mut self, node: &Node, spec_kind: Option<SpecKind>) -> Vec<AggregateDecl> {
        let Some(items) = self.sequence(node, "Aggregates") else {
            return Vec::new();
        };
        if items.is_empty() {
            self.report(
                self.diag(
                    Code::E0102,
                    node.span,
                    "`Aggregates` must list at least one aggregate",
                )
                .with_label("empty list"),
            );
        }
        let mut aggregates: Vec<AggregateDecl> = Vec::new();
        let mut names: HashMap<String, Span> = HashMap::new();
        for item in items {
            let Some(agg) = self.aggregate(item, spec_kind) else {
                continue;
            };
            if let Some(first) = names.get(&agg.name.value) {
                let line = line_of(self.text, first.start);
                self.report(
                    self.diag(
                        Code::E0205,
                        agg.name.span,
                        format!("duplicate aggregate name `{}`", agg.name.value),
                    )
                    .with_label("defined again here")
                    .with_hint(format!(
                        "the first `{}` is on line {line}; aggregate names are unique in a spec",
                        agg.name.value
                    )),
                );
                continue;
            }
            names.insert(agg.name.value.clone(), agg.name.span);
            aggregates.push(agg);
        }
        aggregates
    }

    fn aggregate_kind(
        &mut self,
        node: &Node,
        spec_kind: Option<SpecKind>,
    ) -> Option<Spanned<AggregateKind>> {
        let s = self.scalar(node, "Type")?;
        let kind = match type_key(&s.value, "aggregate").as_str() {
            "identity" => AggregateKind::Identity,
            "block" => AggregateKind::Block,
            "activity" => AggregateKind::Activity,
            "variable" => AggregateKind::Variable,
            "window" => AggregateKind::Window,
            _ => {
                let d = self.unknown_choice(
                    Code::E0202,
                    node.span,
                    format!("unknown aggregate type `{}`", s.value),
                    &s.value,
                    &["Identity", "Block", "Activity", "Variable", "Window"],
                    "an aggregate's `Type` is `Identity`, `Block`, `Activity`, `Variable` or `Window`",
                );
                self.report(d.with_label("unknown type"));
                return None;
            }
        };
        let fits = match spec_kind {
            Some(SpecKind::Streaming) => kind != AggregateKind::Window,
            Some(SpecKind::Window) => {
                matches!(kind, AggregateKind::Window | AggregateKind::Variable)
            }
            None => true,
        };
        if !fits {
            let (spec, allowed) = match spec_kind {
                Some(SpecKind::Window) => ("window", "Window and Variable"),
                _ => ("streaming", "Identity, Block, Activity and Variable"),
            };
            self.report(
                self.diag(
                    Code::E0202,
                    node.span,
                    format!(
                        "a {spec} spec cannot hold {} aggregates",
                        aggregate_kind_name(kind)
                    ),
                )
                .with_label("wrong aggregate type for this spec")
                .with_hint(format!("{spec} specs hold {allowed} aggregates")),
            );
            return None;
        }
        Some(Spanned::new(kind, node.span))
    }

    fn aggregate(&mut self, node: &Node, spec_kind: Option<SpecKind>) -> Option<AggregateDecl> {
        let type_node = value_of(node, "Type");
        let kind = type_node.and_then(|n| self.aggregate_kind(n, spec_kind));
        let allowed = kind
            .as_ref()
            .map_or(AGGREGATE_KEYS, |k| aggregate_keys(k.value));
        let kind_name = kind.as_ref().map_or("", |k| aggregate_kind_name(k.value));
        let note = |key: &str| {
            let owners = match key {
                "Dimensions" => "Identity and Block aggregates",
                "Split" => "Block aggregates",
                "SeparateByInactiveSeconds" => "Activity aggregates",
                "WindowType" | "WindowValue" | "Source" => "Window aggregates",
                "Store" => "Identity, Block and Activity aggregates",
                _ => "other aggregates",
            };
            format!("`{key}` is not allowed on a {kind_name} aggregate (only {owners} take it)")
        };
        let entries = self.mapping(node, "an aggregate", AGGREGATE_KEYS, allowed, &note)?;
        if type_node.is_none() {
            self.require(&entries, "Type", "an aggregate");
        }
        let name = self
            .require(&entries, "Name", "an aggregate")
            .and_then(|n| self.name(n, "aggregate name"));
        let when = entries.get("When").and_then(|n| self.expr(n, "When"));
        let kind_value = kind.as_ref().map(|k| k.value);
        let allows = |key: &str| allowed.contains(&key);

        let store = if allows("Store") {
            entries.get("Store").and_then(|n| {
                let store = self.string(n, "Store")?;
                if !self.store_names.contains(&store.value) {
                    let hint = did_you_mean(&store.value, self.store_names.iter().map(String::as_str))
                        .unwrap_or_else(|| "declare the store under `Stores`, or leave `Store` out to use the default store".into());
                    self.report(
                        self.diag(Code::E0310, n.span, format!("unknown store `{}`", store.value))
                            .with_label("no entry in `Stores` has this name")
                            .with_hint(hint),
                    );
                }
                Some(store)
            })
        } else {
            None
        };

        let split = if allows("Split") {
            entries.get("Split").and_then(|n| self.expr(n, "Split"))
        } else {
            None
        };
        let mut dimensions = None;
        if allows("Dimensions") {
            match entries.get("Dimensions") {
                Some(n) => {
                    let dims = self.fields(n, "Dimensions", true);
                    if kind_value == Some(AggregateKind::Block)
                        && matches!(&n.kind, NodeKind::Seq(v) if v.is_empty())
                    {
                        self.report(
                            self.diag(
                                Code::E0302,
                                n.span,
                                "a Block aggregate needs at least one dimension",
                            )
                            .with_label("empty `Dimensions`"),
                        );
                    }
                    dimensions = dims.map(|d| Spanned::new(d, n.span));
                }
                None if kind_value == Some(AggregateKind::Block)
                    && entries.get("Split").is_none() =>
                {
                    self.report(
                        self.diag(Code::E0302, entries.anchor, "a Block aggregate needs `Dimensions` or `Split`")
                            .with_label("Block aggregate without `Dimensions` or `Split`")
                            .with_hint("events with the same dimension values (e.g. a session id) form one block; with `Split: <condition>` a block ends when the condition is true for an event; for blocks split by inactivity use an Activity aggregate"),
                    );
                }
                None => {}
            }
        }
        if let (Some(split), Some(dims)) = (entries.get("Split"), entries.get("Dimensions"))
            && kind_value == Some(AggregateKind::Block)
        {
            let line = line_of(self.text, dims.span.start);
            self.report(
                self.diag(
                    Code::E0313,
                    split.span,
                    "a Block aggregate takes `Dimensions` or `Split`, not both",
                )
                .with_label("`Split` beside `Dimensions`")
                .with_hint(format!(
                    "`Dimensions` (line {line}) gathers the events with the same values into one block, wherever they are; `Split` starts a new block when its condition is true; keep one"
                )),
            );
        }

        let mut separate_by_inactive_seconds = None;
        if kind_value == Some(AggregateKind::Activity) {
            match entries.get("SeparateByInactiveSeconds") {
                Some(n) => {
                    separate_by_inactive_seconds = self.positive_integer(
                        n,
                        Code::E0304,
                        "`SeparateByInactiveSeconds` must be an integer of at least 1",
                        None,
                    );
                }
                None => {
                    self.report(
                        self.diag(Code::E0304, entries.anchor, "an Activity aggregate needs `SeparateByInactiveSeconds`")
                            .with_label("Activity aggregate without `SeparateByInactiveSeconds`")
                            .with_hint("a new block starts after this many seconds without events, e.g. `SeparateByInactiveSeconds: 1800`"),
                    );
                }
            }
        }

        let (mut window_type, mut window_value, mut source) = (None, None, None);
        if kind_value == Some(AggregateKind::Window) {
            window_type = self
                .require(&entries, "WindowType", "a Window aggregate")
                .and_then(|n| self.window_type(n));
            window_value = self
                .require(&entries, "WindowValue", "a Window aggregate")
                .and_then(|n| match self.integer(n, true) {
                    Some(v) if v != 0 => Some(Spanned::new(v, n.span)),
                    _ => {
                        self.report(
                            self.diag(Code::E0306, n.span, "`WindowValue` must be a non-zero integer")
                                .with_label("not a non-zero integer")
                                .with_hint("negative values look before the anchor (`-7`), positive ones after it (`+7`)"),
                        );
                        None
                    }
                });
            source = self
                .require(&entries, "Source", "a Window aggregate")
                .and_then(|n| self.source_ref(n));
        }

        let fields = match self.require(&entries, "Fields", "an aggregate") {
            Some(n) => {
                let fields = self.fields(n, "Fields", false);
                if matches!(&fields, Some(f) if f.is_empty()) {
                    self.report(
                        self.diag(Code::E0300, n.span, "`Fields` must list at least one field")
                            .with_label("no fields"),
                    );
                }
                Spanned::new(fields.unwrap_or_default(), n.span)
            }
            None => Spanned::new(Vec::new(), node.span),
        };

        // Dimension and field names share the aggregate's namespace (`game_stats.session_id`).
        // Indexed, since an aggregate may have thousands of fields.
        let mut seen: HashMap<&str, Span> = HashMap::new();
        let dims = dimensions.iter().flat_map(|d| d.value.iter());
        for field in dims.chain(fields.value.iter()) {
            if let Some(first) = seen.get(field.name.value.as_str()) {
                let line = line_of(self.text, first.start);
                let d = self
                    .diag(Code::E0205, field.name.span, format!("duplicate field name `{}`", field.name.value))
                    .with_label("defined again here")
                    .with_hint(format!("the first `{}` is on line {line}; field and dimension names are unique in an aggregate", field.name.value));
                self.report(d);
            } else {
                seen.insert(&field.name.value, field.name.span);
            }
        }

        Some(AggregateDecl {
            kind: kind?,
            name: name?,
            when,
            store,
            dimensions,
            split,
            separate_by_inactive_seconds,
            window_type,
            window_value,
            source,
            fields,
            span: node.span,
        })
    }

    fn window_type(&mut self, node: &Node) -> Option<Spanned<WindowType>> {
        let s = self.scalar(node, "WindowType")?;
        let ty = match s.value.trim().to_lowercase().as_str() {
            "count" => WindowType::Count,
            "day" => WindowType::Day,
            "hour" => WindowType::Hour,
            _ => {
                let d = self.unknown_choice(
                    Code::E0305,
                    node.span,
                    format!("unknown window type `{}`", s.value),
                    &s.value,
                    &["count", "day", "hour"],
                    "`WindowType` is `count`, `day` or `hour`",
                );
                self.report(d.with_label("unknown window type"));
                return None;
            }
        };
        Some(Spanned::new(ty, node.span))
    }

    fn source_ref(&mut self, node: &Node) -> Option<Spanned<SourceRef>> {
        let s = self.scalar(node, "Source")?;
        let parts: Vec<&str> = s.value.split('.').collect();
        let [streaming, aggregate] = parts.as_slice() else {
            self.report(
                self.diag(
                    Code::E0307,
                    node.span,
                    format!(
                        "`Source` must be `<streaming spec>.<aggregate>`, found `{}`",
                        s.value
                    ),
                )
                .with_label("expected two names joined by `.`")
                .with_hint("e.g. `Source: offer_ai_v1.game_stats`"),
            );
            return None;
        };
        if !is_identifier(streaming) || !is_identifier(aggregate) {
            self.report(
                self.diag(
                    Code::E0307,
                    node.span,
                    format!(
                        "`Source` must be `<streaming spec>.<aggregate>`, found `{}`",
                        s.value
                    ),
                )
                .with_label("not two identifiers"),
            );
            return None;
        }
        let linear = self
            .text
            .get(s.content_start..s.content_start + s.value.len())
            == Some(s.value.as_str());
        let (a, b) = if linear {
            let split = s.content_start + streaming.len();
            (
                Span::new(s.content_start, split),
                Span::new(split + 1, split + 1 + aggregate.len()),
            )
        } else {
            (node.span, node.span)
        };
        Some(Spanned::new(
            SourceRef {
                streaming: Spanned::new((*streaming).to_string(), a),
                aggregate: Spanned::new((*aggregate).to_string(), b),
            },
            node.span,
        ))
    }

    /// `Fields` or `Dimensions`: a list of field mappings. `None` if the node is not a list.
    fn fields(&mut self, node: &Node, what: &str, dimension: bool) -> Option<Vec<FieldDecl>> {
        let items = self.sequence(node, what)?;
        Some(
            items
                .iter()
                .filter_map(|item| self.field(item, dimension))
                .collect(),
        )
    }

    fn field(&mut self, node: &Node, dimension: bool) -> Option<FieldDecl> {
        let (what, allowed) = if dimension {
            ("a dimension", DIMENSION_KEYS)
        } else {
            ("a field", FIELD_KEYS)
        };
        let note = |key: &str| format!("`{key}` is not allowed on a dimension");
        let entries = self.mapping(node, what, FIELD_KEYS, allowed, &note)?;
        let name = self.require(&entries, "Name", what).and_then(|n| {
            self.name(
                n,
                if dimension {
                    "dimension name"
                } else {
                    "field name"
                },
            )
        });
        let ty = match entries.get("Type") {
            Some(n) => self.field_type(n, dimension),
            None => Some(Spanned::new(FieldType::String, node.span)),
        };
        let value = self
            .require(&entries, "Value", what)
            .and_then(|n| self.expr(n, "Value"));
        let when = entries.get("When").and_then(|n| self.expr(n, "When"));
        Some(FieldDecl {
            name: name?,
            ty: ty?,
            value,
            when,
            span: node.span,
        })
    }

    fn field_type(&mut self, node: &Node, dimension: bool) -> Option<Spanned<FieldType>> {
        let s = self.scalar(node, "Type")?;
        let ty = match s.value.trim().to_lowercase().as_str() {
            "integer" | "int" => FieldType::Integer,
            "float" => FieldType::Float,
            "boolean" => FieldType::Boolean,
            "string" => FieldType::String,
            "datetime" => FieldType::DateTime,
            "map" => FieldType::Map,
            "list" => FieldType::List,
            "set" => FieldType::Set,
            _ => {
                let d = self.unknown_choice(
                    Code::E0301,
                    node.span,
                    format!("unknown field type `{}`", s.value),
                    &s.value,
                    FIELD_TYPES,
                    &format!("field types: {}", FIELD_TYPES.join(", ")),
                );
                self.report(d.with_label("unknown type"));
                return None;
            }
        };
        if dimension && !matches!(ty, FieldType::String | FieldType::Integer) {
            self.report(
                self.diag(
                    Code::E0303,
                    node.span,
                    format!(
                        "a dimension must be of type string or integer, not {}",
                        ty.name()
                    ),
                )
                .with_label("not a dimension type")
                .with_hint(
                    "dimension values identify a block; cast them, e.g. `Value: str(source.day)`",
                ),
            );
            return None;
        }
        Some(Spanned::new(ty, node.span))
    }
}

/// `YYYY-MM-DD` with a real month and day.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| {
        s.get(r)
            .filter(|p| p.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|p| p.parse::<u32>().ok())
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    i32::try_from(y)
        .ok()
        .and_then(|y| chrono::NaiveDate::from_ymd_opt(y, m, d))
        .is_some()
}
