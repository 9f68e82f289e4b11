//! YAML values of a test file, typed by the YAML 1.2 core schema: the JSON objects of inline
//! events and the values expectations compare with.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::load::yaml::{Node, NodeKind, Scalar};
use crate::span::Span;

/// A YAML value with the place it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    pub kind: LiteralKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LiteralKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A quoted scalar, or a plain one that is no null, boolean or number.
    Str(String),
    List(Vec<Literal>),
    /// In the order written (YAML keys are unique: a repeated key is E0101).
    Map(Vec<(Literal, Literal)>),
}

impl Literal {
    pub(crate) fn from_node(node: &Node) -> Literal {
        let kind = match &node.kind {
            NodeKind::Scalar(s) => scalar_kind(s),
            NodeKind::Seq(items) => {
                LiteralKind::List(items.iter().map(Literal::from_node).collect())
            }
            NodeKind::Map(entries) => LiteralKind::Map(
                entries
                    .iter()
                    .map(|(k, v)| (Literal::from_node(k), Literal::from_node(v)))
                    .collect(),
            ),
        };
        Literal {
            kind,
            span: node.span,
        }
    }

    /// The value as JSON, or the first part of it that JSON cannot hold (NaN and infinities,
    /// a key that is a list or a mapping).
    pub fn to_json(&self) -> Result<serde_json::Value, (Span, &'static str)> {
        use serde_json::Value as J;
        Ok(match &self.kind {
            LiteralKind::Null => J::Null,
            LiteralKind::Bool(b) => J::Bool(*b),
            LiteralKind::Int(i) => J::from(*i),
            LiteralKind::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => J::Number(n),
                None => return Err((self.span, "JSON has no NaN or infinity")),
            },
            LiteralKind::Str(s) => J::String(s.clone()),
            LiteralKind::List(items) => J::Array(
                items
                    .iter()
                    .map(Literal::to_json)
                    .collect::<Result<_, _>>()?,
            ),
            LiteralKind::Map(entries) => {
                let mut object = serde_json::Map::new();
                for (key, value) in entries {
                    object.insert(key.key_text()?, value.to_json()?);
                }
                J::Object(object)
            }
        })
    }

    /// A mapping key as a JSON object key: scalars by their text, as `json.dumps` writes the
    /// keys of a Python dict.
    fn key_text(&self) -> Result<String, (Span, &'static str)> {
        Ok(match &self.kind {
            LiteralKind::Null => "null".into(),
            LiteralKind::Bool(b) => b.to_string(),
            LiteralKind::Int(i) => i.to_string(),
            LiteralKind::Float(_) => self.to_json()?.to_string(),
            LiteralKind::Str(s) => s.clone(),
            LiteralKind::List(_) | LiteralKind::Map(_) => {
                return Err((self.span, "a JSON object key must be a string"));
            }
        })
    }
}

fn scalar_kind(s: &Scalar) -> LiteralKind {
    if s.is_quoted() || s.style != saphyr_parser::ScalarStyle::Plain {
        return LiteralKind::Str(s.value.clone());
    }
    plain_kind(&s.value)
}

/// The YAML 1.2 core schema's resolution of a plain scalar.
pub(crate) fn plain_kind(text: &str) -> LiteralKind {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return LiteralKind::Null,
        "true" | "True" | "TRUE" => return LiteralKind::Bool(true),
        "false" | "False" | "FALSE" => return LiteralKind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return LiteralKind::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return LiteralKind::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return LiteralKind::Float(f64::NAN),
        _ => {}
    }
    if is_decimal_integer(text) {
        // Too large for 64 bits: a float, as JSON readers take such a number.
        return match text.parse::<i64>() {
            Ok(i) => LiteralKind::Int(i),
            Err(_) => text
                .parse::<f64>()
                .map_or_else(|_| LiteralKind::Str(text.into()), LiteralKind::Float),
        };
    }
    let radix = [("0o", 8), ("0x", 16)]
        .into_iter()
        .find_map(|(prefix, radix)| Some((text.strip_prefix(prefix)?, radix)));
    if let Some((digits, radix)) = radix
        && !digits.is_empty()
        && let Ok(i) = i64::from_str_radix(digits, radix)
    {
        return LiteralKind::Int(i);
    }
    if is_float(text)
        && let Ok(f) = text.parse::<f64>()
    {
        return LiteralKind::Float(f);
    }
    LiteralKind::Str(text.into())
}

fn is_decimal_integer(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match fraction {
        None => !whole.is_empty() && digits(whole),
        Some(f) => digits(whole) && digits(f) && !(whole.is_empty() && f.is_empty()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// A date-time as test files write them: RFC 3339 (`2018-01-01T10:00:00Z`, `+01:00`), the same
/// without an offset (taken as UTC), with a space for the `T`, with fractions of a second; or a
/// date alone (midnight UTC).
pub fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%:z"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_follow_the_core_schema() {
        assert_eq!(plain_kind("~"), LiteralKind::Null);
        assert_eq!(plain_kind("True"), LiteralKind::Bool(true));
        assert_eq!(plain_kind("-12"), LiteralKind::Int(-12));
        assert_eq!(plain_kind("0x1f"), LiteralKind::Int(31));
        assert_eq!(plain_kind("4.99"), LiteralKind::Float(4.99));
        assert_eq!(plain_kind(".5e1"), LiteralKind::Float(5.0));
        assert_eq!(plain_kind("1."), LiteralKind::Float(1.0));
        assert_eq!(plain_kind("99999999999999999999"), LiteralKind::Float(1e20));
        for text in [
            "yes",
            "NO",
            "inf",
            "NaN",
            "1e",
            "1.2.3",
            "2018-01-01",
            "0x",
            "-",
        ] {
            assert_eq!(plain_kind(text), LiteralKind::Str(text.into()), "{text}");
        }
    }

    #[test]
    fn date_times_without_offset_are_utc() {
        let t = |s: &str| parse_datetime(s).map(|t| t.to_rfc3339());
        let noon = Some("2018-01-01T12:00:00+00:00".to_string());
        assert_eq!(t("2018-01-01T12:00:00"), noon);
        assert_eq!(t("2018-01-01 12:00:00"), noon);
        assert_eq!(t("2018-01-01T13:00:00+01:00"), noon);
        assert_eq!(t("2018-01-01T12:00:00Z"), noon);
        assert_eq!(
            t("2018-01-01T12:00:00.25"),
            Some("2018-01-01T12:00:00.250+00:00".to_string())
        );
        assert_eq!(
            t("2018-01-02"),
            Some("2018-01-02T00:00:00+00:00".to_string())
        );
        assert_eq!(t("2018-01-32"), None);
        assert_eq!(t("yesterday"), None);
    }
}
