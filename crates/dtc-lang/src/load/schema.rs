//! The spec format as a JSON Schema (draft-07), for editors' YAML plugins: completion of keys
//! and type names, hover descriptions, and the required keys and enumerations the loader
//! checks. Built from the loader's own key tables, so it lists exactly the keys the loader
//! takes.
//!
//! Type names are listed in their usual spelling; the loader also takes them in any case, which
//! a schema enumeration cannot say (the descriptions do).

use serde_json::{Map, Value, json};

use super::spec::{
    AGGREGATE_KEYS, ANCHOR_KEYS, DIMENSION_KEYS, FIELD_KEYS, FIELD_TYPES, IMPORT_KEYS, SPEC_KEYS,
    STORE_KEYS, STREAMING_KEYS, VERSIONS, WINDOW_KEYS, aggregate_keys,
};
use crate::syntax::AggregateKind;

const STREAMING_TYPES: &[&str] = &["Streaming", "Blurr:Transform:Streaming"];
const WINDOW_TYPES: &[&str] = &["Window", "Blurr:Transform:Window"];
const DYNAMO_TYPES: &[&str] = &["DynamoDB", "Blurr:Store:Dynamo"];
const OTHER_STORE_TYPES: &[&str] = &["Memory", "Embedded", "Blurr:Store:Memory"];

/// The aggregate kinds with their type names.
const AGGREGATE_TYPES: &[(AggregateKind, &[&str])] = &[
    (
        AggregateKind::Identity,
        &["Identity", "Blurr:Aggregate:Identity"],
    ),
    (AggregateKind::Block, &["Block", "Blurr:Aggregate:Block"]),
    (
        AggregateKind::Activity,
        &["Activity", "Blurr:Aggregate:Activity"],
    ),
    (
        AggregateKind::Variable,
        &["Variable", "Blurr:Aggregate:Variable"],
    ),
    (AggregateKind::Window, &["Window", "Blurr:Aggregate:Window"]),
];

/// An expression: written as a YAML scalar, which YAML may read as a number or boolean
/// (`Value: 1`, `Value: True`); the loader takes its text either way.
fn expression(description: &str) -> Value {
    json!({
        "type": ["string", "number", "boolean"],
        "description": description,
    })
}

fn enumeration(values: &[&str], description: &str) -> Value {
    json!({ "enum": values, "description": description })
}

fn name(description: &str) -> Value {
    json!({
        "type": "string",
        "pattern": "^[A-Za-z][A-Za-z0-9_]*$",
        "description": description,
    })
}

fn positive_integer(description: &str) -> Value {
    json!({ "type": "integer", "minimum": 1, "description": description })
}

/// A mapping whose keys are exactly `keys`, each described by `describe`.
fn mapping(keys: &[&str], required: &[&str], describe: &dyn Fn(&str) -> Value) -> Value {
    let properties: Map<String, Value> = keys
        .iter()
        .map(|key| ((*key).to_string(), describe(key)))
        .collect();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// `if Type is one of types then none of forbidden`.
fn forbid_for(types: &[&str], forbidden: impl Iterator<Item = &'static str>) -> Value {
    let properties: Map<String, Value> = forbidden.map(|k| (k.to_string(), json!(false))).collect();
    json!({
        "if": { "properties": { "Type": { "enum": types } }, "required": ["Type"] },
        "then": { "properties": properties },
    })
}

fn all_type_names(kinds: &[(AggregateKind, &[&'static str])]) -> Vec<&'static str> {
    kinds
        .iter()
        .flat_map(|(_, names)| names.iter().copied())
        .collect()
}

fn spec_key(key: &str) -> Value {
    let versions: Vec<&str> = VERSIONS.iter().map(|(v, _)| *v).collect();
    let mut types = STREAMING_TYPES.to_vec();
    types.extend(WINDOW_TYPES);
    match key {
        "Type" => enumeration(
            &types,
            "`Streaming` (raw events into blocks and identity records) or `Window` (blocks into \
             training rows); Blurr's `Blurr:Transform:...` names too; any case.",
        ),
        "Version" => json!({
            "type": "string",
            "enum": versions,
            "description": "The format version the spec is written for, quoted: '2018-03-01' \
                            and '2018-03-07' select Blurr semantics, '2026-11-01' the native \
                            format. Any other value is an error (E0203).",
        }),
        "Name" => {
            name("The spec's name, an identifier; window specs name their streaming spec by it.")
        }
        "Description" => json!({ "type": "string", "description": "Free text." }),
        "Identity" => expression(
            "Streaming: the identity (user id) of an event, e.g. `source.user_id`. An event \
             without one is rejected to the dead-letter output.",
        ),
        "Time" => expression(
            "Streaming: the event time, a datetime, e.g. `parse_time(source.event_time)`; later \
             expressions read it as `time`.",
        ),
        "When" => {
            expression("Streaming: events for which this is not true are skipped (and counted).")
        }
        "Stores" => json!({
            "type": "array",
            "items": { "$ref": "#/definitions/store" },
            "description": "Logical stores the aggregates' `Store` keys name; a run binds them \
                            to the backend of its --store option.",
        }),
        "Import" => json!({
            "type": "array",
            "items": { "$ref": "#/definitions/import" },
            "description": "Blurr's Python imports, mapped to built-ins (dateutil, datetime, math).",
        }),
        "Aggregates" => json!({
            "type": "array",
            "minItems": 1,
            "items": { "$ref": "#/definitions/aggregate" },
            "description": "The aggregates, evaluated in the order written.",
        }),
        "SourceDTC" | "SourceBTS" => name(
            "Window: the `Name` of the streaming spec whose blocks this spec reads (`SourceBTS` \
             is Blurr's spelling; give one of the two).",
        ),
        _ => json!({
            "$ref": "#/definitions/anchor",
            "description": "Window: which blocks are anchors, one training row each.",
        }),
    }
}

fn aggregate_key(key: &str) -> Value {
    match key {
        "Type" => enumeration(
            &all_type_names(AGGREGATE_TYPES),
            "Identity, Block, Activity, Variable (streaming) or Window, Variable (window); \
             Blurr's `Blurr:Aggregate:...` names too; any case.",
        ),
        "Name" => name(
            "The aggregate's name, unique in the spec, not starting with `_` or `run_`; \
             expressions read its fields as `<name>.<field>`.",
        ),
        "When" => expression("Events (or anchors) for which this is not true skip the aggregate."),
        "Store" => json!({
            "type": "string",
            "description": "The `Name` of an entry of `Stores` (Identity, Block and Activity \
                            aggregates); the default store when left out.",
        }),
        "Dimensions" => json!({
            "type": "array",
            "minItems": 1,
            "items": { "$ref": "#/definitions/dimension" },
            "description": "Identity and Block aggregates: one record (block) per values of \
                            these fields; an event whose values name an existing block resumes \
                            it. A Block has `Dimensions` or `Split`.",
        }),
        "Split" => expression(
            "Block aggregates: a boolean expression evaluated for each event with the \
             aggregate bound to the current block; `True` closes it and starts a new block, e.g. \
             `source.session_id != game_stats.session_id`.",
        ),
        "SeparateByInactiveSeconds" => positive_integer(
            "Activity aggregates: a new block starts after this many seconds without events.",
        ),
        "WindowType" => enumeration(
            &["count", "day", "hour"],
            "Window aggregates: count blocks, or days or hours of time; any case.",
        ),
        "WindowValue" => json!({
            "anyOf": [
                { "type": "integer", "not": { "enum": [0] } },
                { "type": "string", "pattern": "^[+-]?[0-9]+$" },
            ],
            "description": "Window aggregates: a non-zero integer; negative looks before the \
                            anchor (`-7`), positive after it (`+7`, the label).",
        }),
        "Source" => json!({
            "type": "string",
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*\\.[A-Za-z_][A-Za-z0-9_]*$",
            "description": "Window aggregates: `<streaming spec>.<Block or Activity aggregate>` \
                            whose blocks the window reads; `source.<field>` is the list of that \
                            field over the window's blocks.",
        }),
        _ => json!({
            "type": "array",
            "minItems": 1,
            "items": { "$ref": "#/definitions/field" },
            "description": "The aggregate's fields, evaluated in the order written.",
        }),
    }
}

fn field_key(key: &str, types: &[&str]) -> Value {
    match key {
        "Name" => name("The field's name, unique in its aggregate."),
        "Type" => enumeration(
            types,
            "The field's type (default `string`); its value is converted to it. Any case; `int` \
             = `integer`.",
        ),
        "Value" => expression(
            "The field's new value for an event (or anchor), e.g. `game_stats.games_played + 1`.",
        ),
        _ => {
            expression("The field is updated only for events (or anchors) for which this is true.")
        }
    }
}

fn store_key(key: &str) -> Value {
    let mut types = OTHER_STORE_TYPES.to_vec();
    types.extend(DYNAMO_TYPES);
    match key {
        "Type" => enumeration(
            &types,
            "Memory (in-process), Embedded (file store) or DynamoDB; Blurr's \
             `Blurr:Store:Memory` / `Blurr:Store:Dynamo` too; any case.",
        ),
        "Name" => {
            json!({ "type": "string", "description": "The name aggregates' `Store` keys use." })
        }
        "Table" => json!({ "type": "string", "description": "DynamoDB: the table name." }),
        "ReadCapacityUnits" => positive_integer("DynamoDB: provisioned read capacity."),
        "WriteCapacityUnits" => positive_integer("DynamoDB: provisioned write capacity."),
        _ => positive_integer("Days after which blocks expire (DynamoDB TTL)."),
    }
}

fn import_key(key: &str) -> Value {
    match key {
        "Module" => json!({
            "type": "string",
            "description": "dateutil, dateutil.parser, dateutil.tz, datetime or math, \
                            optionally `as <alias>`; custom Python code is not supported.",
        }),
        _ => json!({
            "type": "array",
            "items": { "type": "string" },
            "description": "Names imported from the module, each optionally `as <alias>`.",
        }),
    }
}

fn anchor_key(key: &str) -> Value {
    match key {
        "Condition" => expression(
            "A block of the anchor aggregate is an anchor when this is true, e.g. \
             `offer_ai_v1.game_stats.offer_type != ''`.",
        ),
        _ => positive_integer(
            "At most this many anchors per identity per UTC day, the earliest first.",
        ),
    }
}

/// The JSON Schema of a spec file.
pub fn json_schema() -> Value {
    let mut field_types: Vec<&str> = FIELD_TYPES.to_vec();
    field_types.push("int");
    let dimension_types = ["string", "integer", "int"];

    let mut aggregate = mapping(AGGREGATE_KEYS, &["Type", "Name", "Fields"], &aggregate_key);
    let mut rules: Vec<Value> = AGGREGATE_TYPES
        .iter()
        .map(|(kind, names)| {
            let allowed = aggregate_keys(*kind);
            forbid_for(
                names,
                AGGREGATE_KEYS
                    .iter()
                    .copied()
                    .filter(|k| !allowed.contains(k)),
            )
        })
        .collect();
    let types_of = |kind: AggregateKind| {
        AGGREGATE_TYPES
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(&[][..], |(_, names)| *names)
    };
    let requires = |kind: AggregateKind, then: Value| {
        json!({
            "if": { "properties": { "Type": { "enum": types_of(kind) } }, "required": ["Type"] },
            "then": then,
        })
    };
    rules.push(requires(
        AggregateKind::Block,
        json!({
            "oneOf": [ { "required": ["Dimensions"] }, { "required": ["Split"] } ],
        }),
    ));
    rules.push(requires(
        AggregateKind::Activity,
        json!({ "required": ["SeparateByInactiveSeconds"] }),
    ));
    rules.push(requires(
        AggregateKind::Window,
        json!({ "required": ["WindowType", "WindowValue", "Source"] }),
    ));
    if let Some(object) = aggregate.as_object_mut() {
        object.insert("allOf".into(), Value::Array(rules));
    }

    let mut store = mapping(STORE_KEYS, &["Type", "Name"], &store_key);
    if let Some(object) = store.as_object_mut() {
        let dynamo_only = STORE_KEYS
            .iter()
            .copied()
            .filter(|k| matches!(*k, "Table" | "ReadCapacityUnits" | "WriteCapacityUnits"));
        object.insert(
            "allOf".into(),
            json!([forbid_for(OTHER_STORE_TYPES, dynamo_only)]),
        );
    }

    let mut spec = mapping(
        SPEC_KEYS,
        &["Type", "Version", "Name", "Aggregates"],
        &spec_key,
    );
    let streaming_only = SPEC_KEYS
        .iter()
        .copied()
        .filter(|k| !WINDOW_KEYS.contains(k));
    let window_only = SPEC_KEYS
        .iter()
        .copied()
        .filter(|k| !STREAMING_KEYS.contains(k));
    if let Some(object) = spec.as_object_mut() {
        object.insert(
            "$schema".into(),
            json!("http://json-schema.org/draft-07/schema#"),
        );
        object.insert("title".into(), json!("DTC spec"));
        object.insert(
            "description".into(),
            json!(
                "A Data Transform Config: a streaming spec (events into blocks) or a window \
                   spec (blocks into training rows). Reference: docs/language.md."
            ),
        );
        object.insert(
            "allOf".into(),
            json!([
                forbid_for(STREAMING_TYPES, window_only),
                forbid_for(WINDOW_TYPES, streaming_only),
                {
                    "if": { "properties": { "Type": { "enum": STREAMING_TYPES } }, "required": ["Type"] },
                    "then": { "required": ["Identity", "Time"] },
                },
                {
                    "if": { "properties": { "Type": { "enum": WINDOW_TYPES } }, "required": ["Type"] },
                    "then": {
                        "required": ["Anchor"],
                        "oneOf": [ { "required": ["SourceDTC"] }, { "required": ["SourceBTS"] } ],
                    },
                },
            ]),
        );
        object.insert(
            "definitions".into(),
            json!({
                "aggregate": aggregate,
                "field": mapping(FIELD_KEYS, &["Name", "Value"], &|k| field_key(k, &field_types)),
                "dimension": mapping(DIMENSION_KEYS, &["Name", "Value"], &|k| field_key(k, &dimension_types)),
                "store": store,
                "import": mapping(IMPORT_KEYS, &["Module"], &import_key),
                "anchor": mapping(ANCHOR_KEYS, &["Condition"], &anchor_key),
            }),
        );
    }
    spec
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use serde_json::Value;

    use super::json_schema;
    use crate::load::yaml::{Node, NodeKind, parse};

    /// The JSON type a YAML node has under the core schema, as editors' plugins read it.
    fn json_type(node: &Node) -> &'static str {
        match &node.kind {
            NodeKind::Map(_) => "object",
            NodeKind::Seq(_) => "array",
            NodeKind::Scalar(s) if s.is_quoted() => "string",
            NodeKind::Scalar(s) if s.is_null() => "null",
            NodeKind::Scalar(s) => match s.value.as_str() {
                "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => "boolean",
                v if v.parse::<i64>().is_ok() => "integer",
                v if v.parse::<f64>().is_ok() => "number",
                _ => "string",
            },
        }
    }

    /// Checks `node` against `schema`, for the keywords the spec schema uses (`pattern` is
    /// not checked). Problems go to `errors`, each with the node's YAML path.
    fn check(schema: &Value, root: &Value, node: &Node, at: &str, errors: &mut Vec<String>) {
        let Some(schema) = schema.as_object() else {
            if schema == &Value::Bool(false) {
                errors.push(format!("{at}: not allowed here"));
            }
            return;
        };
        if let Some(Value::String(r)) = schema.get("$ref") {
            let name = r.trim_start_matches("#/definitions/");
            return check(&root["definitions"][name], root, node, at, errors);
        }
        let ty = json_type(node);
        if let Some(types) = schema.get("type") {
            let allowed: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            let ok = allowed
                .iter()
                .any(|t| *t == ty || (*t == "number" && ty == "integer"));
            if !ok {
                errors.push(format!("{at}: a {ty}, expected {allowed:?}"));
                return;
            }
        }
        let text = node.as_scalar().map(|s| s.value.as_str());
        if let (Some(Value::Array(values)), Some(text)) = (schema.get("enum"), text) {
            let found = values.iter().any(|v| match v {
                Value::String(s) => s == text,
                Value::Number(n) => text.parse::<i64>().ok() == n.as_i64(),
                _ => false,
            });
            if !found {
                errors.push(format!("{at}: `{text}` is none of {values:?}"));
            }
        }
        if let (Some(min), Some(value)) = (
            schema.get("minimum").and_then(Value::as_i64),
            text.and_then(|t| t.parse::<i64>().ok()),
        ) && value < min
        {
            errors.push(format!("{at}: {value} < {min}"));
        }
        match &node.kind {
            NodeKind::Map(entries) => {
                let keys: Vec<&str> = entries
                    .iter()
                    .filter_map(|(k, _)| k.as_scalar().map(|s| s.value.as_str()))
                    .collect();
                for key in schema
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if !keys.contains(&key) {
                        errors.push(format!("{at}: missing `{key}`"));
                    }
                }
                let properties = schema.get("properties").and_then(Value::as_object);
                for (key, value) in entries {
                    let Some(key) = key.as_scalar().map(|s| s.value.as_str()) else {
                        continue;
                    };
                    match properties.and_then(|p| p.get(key)) {
                        Some(sub) => check(sub, root, value, &format!("{at}.{key}"), errors),
                        None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                            errors.push(format!("{at}: unknown key `{key}`"));
                        }
                        None => {}
                    }
                }
            }
            NodeKind::Seq(items) => {
                if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                    && (items.len() as u64) < min
                {
                    errors.push(format!("{at}: fewer than {min} items"));
                }
                if let Some(sub) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        check(sub, root, item, &format!("{at}[{i}]"), errors);
                    }
                }
            }
            NodeKind::Scalar(_) => {}
        }
        let passes = |sub: &Value| {
            let mut found = Vec::new();
            check(sub, root, node, at, &mut found);
            found.is_empty()
        };
        for sub in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            check(sub, root, node, at, errors);
        }
        if let Some(subs) = schema.get("anyOf").and_then(Value::as_array)
            && !subs.iter().any(passes)
        {
            errors.push(format!("{at}: matches none of anyOf"));
        }
        if let Some(subs) = schema.get("oneOf").and_then(Value::as_array)
            && subs.iter().filter(|s| passes(s)).count() != 1
        {
            errors.push(format!("{at}: does not match exactly one of oneOf"));
        }
        if let Some(sub) = schema.get("not")
            && passes(sub)
        {
            errors.push(format!("{at}: matches `not`"));
        }
        if let (Some(condition), Some(then)) = (schema.get("if"), schema.get("then"))
            && passes(condition)
        {
            check(then, root, node, at, errors);
        }
    }

    fn problems(text: &str) -> Vec<String> {
        let schema = json_schema();
        let mut errors = Vec::new();
        match parse(text) {
            Ok(parsed) => {
                for doc in &parsed.documents {
                    check(&schema, &schema, doc, "$", &mut errors);
                }
            }
            Err(e) => errors.push(format!("YAML: {}", e.message)),
        }
        errors
    }

    fn spec_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                spec_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml")
                && !is_test_file(&path)
            {
                out.push(path);
            }
        }
    }

    /// `dtc test` files live beside the specs; the schema describes specs only.
    fn is_test_file(path: &Path) -> bool {
        let name = path.to_string_lossy();
        name.ends_with(".test.yml") || name.ends_with(".test.yaml")
    }

    fn dtc_specs() -> Vec<(PathBuf, String)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dtc-specs");
        let mut files = Vec::new();
        spec_files(&dir, &mut files);
        assert!(files.len() >= 4, "{files:?}");
        files
            .into_iter()
            .map(|f| {
                let text = std::fs::read_to_string(&f).unwrap_or_default();
                (f, text)
            })
            .collect()
    }

    #[test]
    fn every_spec_in_dtc_specs_matches_the_schema() {
        for (file, text) in dtc_specs() {
            assert_eq!(problems(&text), Vec::<String>::new(), "{}", file.display());
        }
    }

    #[test]
    fn the_schema_refuses_what_the_loader_refuses() {
        let (_, streaming) = dtc_specs()
            .into_iter()
            .find(|(f, _)| f.ends_with("offer-ai/offer-ai-streaming.yml"))
            .unwrap_or_default();
        let (_, window) = dtc_specs()
            .into_iter()
            .find(|(f, _)| f.ends_with("offer-ai/offer-ai-window.yml"))
            .unwrap_or_default();
        for (base, from, to, expected) in [
            (
                &streaming,
                "Version: '2026-11-01'\n",
                "",
                "missing `Version`",
            ),
            (&streaming, "'2026-11-01'", "'2030-01-01'", "$.Version"),
            (&streaming, "Type: Streaming", "Type: Streeming", "$.Type"),
            (
                &streaming,
                "Identity: source",
                "Identty: source",
                "unknown key `Identty`",
            ),
            (&streaming, "Type: float", "Type: double", "Type"),
            (
                &streaming,
                "    Dimensions:",
                "    WindowType: day\n    Dimensions:",
                "WindowType: not allowed",
            ),
            (
                &streaming,
                "    Dimensions:",
                "    Split: x\n    Dimensions:",
                "oneOf",
            ),
            (&window, "  Max: 1\n", "Max: 1\n", "unknown key `Max`"),
            (&window, "  Max: 1", "  Max: 0", "0 < 1"),
            (&window, "WindowValue: -1", "WindowValue: 0", "anyOf"),
            (&window, "SourceDTC: offer_ai_v1\n", "", "oneOf"),
        ] {
            assert!(base.contains(from), "{from}");
            let text = base.replacen(from, to, 1);
            let found = problems(&text);
            assert!(
                found.iter().any(|p| p.contains(expected)),
                "{from:?} -> {to:?}: {found:?}"
            );
        }
    }
}
