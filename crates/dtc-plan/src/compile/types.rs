//! Static types of expressions (docs/language.md section 9): inferred while resolving, used to report the
//! mismatches that are certain to fail at run time. `Any` (source data, unknowns) always passes.

use dtc_lang::ast::{BinOp, CmpOp};

use crate::plan::FieldType;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ty {
    Any,
    None,
    Bool,
    Int,
    Float,
    Str,
    DateTime,
    TimeDelta,
    List(Box<Ty>),
    Tuple,
    Set,
    Map,
}

impl Ty {
    pub(crate) fn list(elem: Ty) -> Ty {
        Ty::List(Box::new(elem))
    }

    /// Python's name of the type, as users see it in error messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Ty::Any => "any",
            Ty::None => "NoneType",
            Ty::Bool => "bool",
            Ty::Int => "int",
            Ty::Float => "float",
            Ty::Str => "str",
            Ty::DateTime => "datetime",
            Ty::TimeDelta => "timedelta",
            Ty::List(_) => "list",
            Ty::Tuple => "tuple",
            Ty::Set => "set",
            Ty::Map => "dict",
        }
    }

    pub(crate) fn of_field(ty: FieldType) -> Ty {
        match ty {
            FieldType::Integer => Ty::Int,
            FieldType::Float => Ty::Float,
            FieldType::Boolean => Ty::Bool,
            FieldType::String => Ty::Str,
            FieldType::DateTime => Ty::DateTime,
            FieldType::Map => Ty::Map,
            FieldType::List => Ty::list(Ty::Any),
            FieldType::Set => Ty::Set,
        }
    }

    fn is_number(&self) -> bool {
        matches!(self, Ty::Bool | Ty::Int | Ty::Float)
    }

    fn is_container(&self) -> bool {
        matches!(self, Ty::List(_) | Ty::Tuple | Ty::Set | Ty::Map)
    }

    /// The type of the items iterating over a value of this type gives, or `None` if such a
    /// value is certainly not iterable.
    pub(crate) fn iter_elem(&self) -> Option<Ty> {
        match self {
            Ty::List(elem) => Some((**elem).clone()),
            Ty::Str => Some(Ty::Str),
            Ty::Any | Ty::Tuple | Ty::Set | Ty::Map => Some(Ty::Any),
            _ => None,
        }
    }

    /// The type of a value that is one of `self` or `other` (conditional, `and`/`or`).
    pub(crate) fn join(self, other: Ty) -> Ty {
        match (self, other) {
            (a, b) if a == b => a,
            (Ty::Int | Ty::Bool, Ty::Float) | (Ty::Float, Ty::Int | Ty::Bool) => Ty::Float,
            (Ty::Int, Ty::Bool) | (Ty::Bool, Ty::Int) => Ty::Int,
            (Ty::List(_), Ty::List(_)) => Ty::list(Ty::Any),
            _ => Ty::Any,
        }
    }
}

/// Numeric result of an arithmetic operator on two numbers.
fn numeric(op: BinOp, a: &Ty, b: &Ty) -> Ty {
    let float = matches!(a, Ty::Float) || matches!(b, Ty::Float);
    match op {
        BinOp::Div => Ty::Float,
        _ if float => Ty::Float,
        _ => Ty::Int,
    }
}

/// The result type of `a op b`, or `None` when Python certainly raises a TypeError.
pub(crate) fn binary(op: BinOp, a: &Ty, b: &Ty) -> Option<Ty> {
    use Ty::*;
    if matches!(a, Any) || matches!(b, Any) {
        return Some(match (op, a, b) {
            (BinOp::Mod, Str, _) => Str,
            _ => Any,
        });
    }
    if a.is_number() && b.is_number() {
        return Some(numeric(op, a, b));
    }
    let ty = match (op, a, b) {
        (BinOp::Add, Str, Str) => Str,
        (BinOp::Add, List(x), List(y)) => {
            if x == y {
                a.clone()
            } else {
                Ty::list(Any)
            }
        }
        (BinOp::Add, Tuple, Tuple) => Tuple,
        (BinOp::Add, DateTime, TimeDelta) | (BinOp::Add, TimeDelta, DateTime) => DateTime,
        (BinOp::Add | BinOp::Sub | BinOp::Mod, TimeDelta, TimeDelta) => TimeDelta,
        (BinOp::Sub, DateTime, DateTime) => TimeDelta,
        (BinOp::Sub, DateTime, TimeDelta) => DateTime,
        (BinOp::Sub, Set, Set) => Set,
        (BinOp::Mul, Str, Int | Bool) | (BinOp::Mul, Int | Bool, Str) => Str,
        (BinOp::Mul, List(_), Int | Bool) => a.clone(),
        (BinOp::Mul, Int | Bool, List(_)) => b.clone(),
        (BinOp::Mul, Tuple, Int | Bool) | (BinOp::Mul, Int | Bool, Tuple) => Tuple,
        (BinOp::Mul, TimeDelta, Int | Bool | Float)
        | (BinOp::Mul, Int | Bool | Float, TimeDelta) => TimeDelta,
        (BinOp::Div, TimeDelta, TimeDelta) => Float,
        (BinOp::Div | BinOp::FloorDiv, TimeDelta, Int | Bool | Float) => TimeDelta,
        (BinOp::FloorDiv, TimeDelta, TimeDelta) => Int,
        // `'%s items' % n` formats.
        (BinOp::Mod, Str, _) => Str,
        _ => return Option::None,
    };
    Some(ty)
}

/// Whether `a op b` certainly raises a TypeError (`'a' < 1`, `1 in 5`).
pub(crate) fn compare_fails(op: CmpOp, a: &Ty, b: &Ty) -> bool {
    use Ty::*;
    if matches!(a, Any) || matches!(b, Any) {
        return false;
    }
    match op {
        CmpOp::Eq | CmpOp::NotEq | CmpOp::Is | CmpOp::IsNot => false,
        CmpOp::Lt | CmpOp::LtE | CmpOp::Gt | CmpOp::GtE => {
            let ordered = (a.is_number() && b.is_number())
                || matches!(
                    (a, b),
                    (Str, Str)
                        | (DateTime, DateTime)
                        | (TimeDelta, TimeDelta)
                        | (List(_), List(_))
                        | (Tuple, Tuple)
                        | (Set, Set)
                );
            !ordered
        }
        CmpOp::In | CmpOp::NotIn => match b {
            Str => !matches!(a, Str),
            _ => !b.is_container(),
        },
    }
}

/// Why a value of static type `value` can certainly not be stored in a field of type `field`,
/// with a hint, or `None` if it may convert.
pub(crate) fn field_mismatch(field: FieldType, value: &Ty) -> Option<&'static str> {
    use Ty::*;
    if matches!(value, Any) {
        return Option::None;
    }
    match field {
        FieldType::String => Option::None,
        FieldType::Integer | FieldType::Float | FieldType::Boolean => match value {
            Str => Some("convert the string explicitly, e.g. int(...), float(...) or bool(...)"),
            List(_) | Tuple | Set | Map => {
                Some("a container does not convert to a scalar; use len(...) or an index")
            }
            DateTime | TimeDelta | None => {
                Some("compute a number from it, e.g. `.total_seconds()` or `.year`")
            }
            _ => Option::None,
        },
        FieldType::DateTime => match value {
            Bool | Int | Float => {
                Some("build a datetime, e.g. datetime.fromtimestamp(...) or parse_time(...)")
            }
            List(_) | Tuple | Set | Map | TimeDelta => {
                Some("the value must be a datetime or a string parse_time(...) accepts")
            }
            _ => Option::None,
        },
        FieldType::Map => match value {
            Bool | Int | Float | Str | DateTime | TimeDelta | Set => {
                Some("build a dict, e.g. {'key': value}")
            }
            _ => Option::None,
        },
        FieldType::List | FieldType::Set => match value {
            Bool | Int | Float | DateTime | TimeDelta | None => {
                Some("wrap the value in a list, e.g. [value]")
            }
            _ => Option::None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_rules() {
        assert_eq!(binary(BinOp::Add, &Ty::Str, &Ty::Int), None);
        assert_eq!(binary(BinOp::Add, &Ty::Int, &Ty::Float), Some(Ty::Float));
        assert_eq!(binary(BinOp::Div, &Ty::Int, &Ty::Int), Some(Ty::Float));
        assert_eq!(
            binary(BinOp::Sub, &Ty::DateTime, &Ty::DateTime),
            Some(Ty::TimeDelta)
        );
        assert_eq!(binary(BinOp::Add, &Ty::Any, &Ty::Int), Some(Ty::Any));
        assert_eq!(binary(BinOp::Mod, &Ty::Str, &Ty::Int), Some(Ty::Str));
        assert_eq!(binary(BinOp::Add, &Ty::None, &Ty::Int), None);
    }

    #[test]
    fn comparison_rules() {
        assert!(compare_fails(CmpOp::Lt, &Ty::Str, &Ty::Int));
        assert!(!compare_fails(CmpOp::Eq, &Ty::Str, &Ty::Int));
        assert!(compare_fails(CmpOp::In, &Ty::Int, &Ty::Int));
        assert!(compare_fails(CmpOp::In, &Ty::Int, &Ty::Str));
        assert!(!compare_fails(CmpOp::In, &Ty::Str, &Ty::list(Ty::Str)));
        assert!(!compare_fails(CmpOp::Lt, &Ty::Any, &Ty::Int));
    }

    #[test]
    fn field_conversion_rules() {
        assert!(field_mismatch(FieldType::Integer, &Ty::Str).is_some());
        assert!(field_mismatch(FieldType::Float, &Ty::Int).is_none());
        assert!(field_mismatch(FieldType::Integer, &Ty::Bool).is_none());
        assert!(field_mismatch(FieldType::DateTime, &Ty::Int).is_some());
        assert!(field_mismatch(FieldType::DateTime, &Ty::Str).is_none());
        assert!(field_mismatch(FieldType::String, &Ty::list(Ty::Int)).is_none());
        assert!(field_mismatch(FieldType::List, &Ty::Int).is_some());
        assert!(field_mismatch(FieldType::Boolean, &Ty::Any).is_none());
    }
}
