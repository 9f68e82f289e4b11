//! Built-in functions (docs/language.md section 7.1) and the Python imports they stand for
//! (section 8).

use std::collections::HashMap;

use dtc_lang::diagnostic::{Code, Diagnostic};
use dtc_lang::span::FileId;
use dtc_lang::syntax::ImportDecl;

use super::types::Ty;
use crate::hint::did_you_mean;
use crate::plan::Builtin;
use crate::value::Value;

/// How a built-in takes its arguments. Keyword arguments are placed by `params` name.
#[derive(Debug, PartialEq)]
pub(crate) struct Signature {
    /// The name used in messages.
    pub name: &'static str,
    pub builtin: Builtin,
    /// Parameter names in positional order.
    pub params: &'static [&'static str],
    /// How many leading parameters must be given.
    pub required: usize,
    /// Extra positional arguments allowed beyond `params` (`min(a, b, c)`), no keywords then.
    pub variadic: bool,
    /// Parameters from this index on may be given by keyword.
    pub keywords_from: usize,
    /// Arguments from this index on are checked and then dropped (timezones: every datetime
    /// is UTC-aware already).
    pub keep: usize,
    /// Missing parameters below `keep` are filled with `0` (`timedelta`, `datetime`).
    pub pad_zero: bool,
}

const fn sig(
    name: &'static str,
    builtin: Builtin,
    params: &'static [&'static str],
    required: usize,
) -> Signature {
    Signature {
        name,
        builtin,
        params,
        required,
        variadic: false,
        keywords_from: usize::MAX,
        keep: usize::MAX,
        pad_zero: false,
    }
}

const fn variadic(name: &'static str, builtin: Builtin) -> Signature {
    Signature {
        variadic: true,
        ..sig(name, builtin, &["iterable"], 1)
    }
}

static LEN: Signature = sig("len", Builtin::Len, &["obj"], 1);
static COUNT: Signature = sig("count", Builtin::Count, &["obj"], 1);
static SUM: Signature = sig("sum", Builtin::Sum, &["iterable", "start"], 1);
static MIN: Signature = variadic("min", Builtin::Min);
static MAX: Signature = variadic("max", Builtin::Max);
static ABS: Signature = sig("abs", Builtin::Abs, &["x"], 1);
static ROUND: Signature = Signature {
    keywords_from: 1,
    ..sig("round", Builtin::Round, &["number", "ndigits"], 1)
};
static INT: Signature = sig("int", Builtin::Int, &["x", "base"], 0);
static FLOAT: Signature = sig("float", Builtin::Float, &["x"], 0);
static STR: Signature = sig("str", Builtin::Str, &["object"], 0);
static BOOL: Signature = sig("bool", Builtin::Bool, &["x"], 0);
static LIST: Signature = sig("list", Builtin::List, &["iterable"], 0);
static SET: Signature = sig("set", Builtin::Set, &["iterable"], 0);
static DICT: Signature = sig("dict", Builtin::Dict, &["iterable"], 0);
static TUPLE: Signature = sig("tuple", Builtin::Tuple, &["iterable"], 0);
static SORTED: Signature = Signature {
    keywords_from: 1,
    ..sig("sorted", Builtin::Sorted, &["iterable", "reverse"], 1)
};
static REVERSED: Signature = sig("reversed", Builtin::Reversed, &["sequence"], 1);
static ANY: Signature = sig("any", Builtin::Any, &["iterable"], 1);
static ALL: Signature = sig("all", Builtin::All, &["iterable"], 1);
static ZIP: Signature = variadic("zip", Builtin::Zip);
static RANGE: Signature = sig("range", Builtin::Range, &["start", "stop", "step"], 1);
static ENUMERATE: Signature = Signature {
    keywords_from: 1,
    ..sig("enumerate", Builtin::Enumerate, &["iterable", "start"], 1)
};
static FIRST: Signature = Signature {
    keywords_from: 1,
    ..sig("first", Builtin::First, &["iterable", "default"], 1)
};
static LAST: Signature = Signature {
    keywords_from: 1,
    ..sig("last", Builtin::Last, &["iterable", "default"], 1)
};
static PARSE_TIME: Signature = sig("parse_time", Builtin::ParseTime, &["s", "format"], 1);
static PARSER_PARSE: Signature = sig("parse", Builtin::ParseTime, &["timestr"], 1);
static STRPTIME: Signature = sig("strptime", Builtin::Strptime, &["date_string", "format"], 2);
static FROM_TIMESTAMP: Signature = Signature {
    keywords_from: 1,
    keep: 1,
    ..sig(
        "fromtimestamp",
        Builtin::FromTimestamp,
        &["timestamp", "tz"],
        1,
    )
};
static UTC_FROM_TIMESTAMP: Signature = sig(
    "utcfromtimestamp",
    Builtin::FromTimestamp,
    &["timestamp"],
    1,
);
static NOW: Signature = Signature {
    keywords_from: 0,
    keep: 0,
    ..sig("now", Builtin::UtcNow, &["tz"], 0)
};
static UTC_NOW: Signature = sig("utcnow", Builtin::UtcNow, &[], 0);
static TIMEDELTA: Signature = Signature {
    keywords_from: 0,
    pad_zero: true,
    ..sig(
        "timedelta",
        Builtin::TimeDelta,
        &[
            "days",
            "seconds",
            "microseconds",
            "milliseconds",
            "minutes",
            "hours",
            "weeks",
        ],
        0,
    )
};
static DATETIME: Signature = Signature {
    keywords_from: 0,
    keep: 7,
    pad_zero: true,
    ..sig(
        "datetime",
        Builtin::DateTime,
        &[
            "year",
            "month",
            "day",
            "hour",
            "minute",
            "second",
            "microsecond",
            "tzinfo",
        ],
        3,
    )
};
static DATE: Signature = Signature {
    keywords_from: 0,
    ..sig("date", Builtin::Date, &["year", "month", "day"], 3)
};
static FLOOR: Signature = sig("floor", Builtin::MathFloor, &["x"], 1);
static CEIL: Signature = sig("ceil", Builtin::MathCeil, &["x"], 1);
static SQRT: Signature = sig("sqrt", Builtin::MathSqrt, &["x"], 1);
static LOG: Signature = sig("log", Builtin::MathLog, &["x", "base"], 1);
static EXP: Signature = sig("exp", Builtin::MathExp, &["x"], 1);
static POW: Signature = sig("pow", Builtin::MathPow, &["x", "y"], 2);

/// Something callable by name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Callable {
    Builtin(&'static Signature),
    /// `tz.tzutc()`: the UTC timezone, only meaningful as a dropped timezone argument.
    TzUtc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Module {
    Dateutil,
    DateutilParser,
    DateutilTz,
    Datetime,
    Math,
}

/// A name that is not a value: a module, a class with functions, or a function.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bound {
    Module(Module),
    /// `datetime.datetime`: callable, and holds `strptime`, `fromtimestamp`, ...
    DatetimeClass,
    /// `datetime.timezone`: holds `utc`.
    TimezoneClass,
    Func(Callable),
    Const(Value, Ty),
}

/// The UTC timezone constant: only used as an argument that the resolver drops.
pub(crate) fn utc() -> Bound {
    Bound::Const(Value::str("UTC"), Ty::Any)
}

impl Module {
    fn path(self) -> &'static str {
        match self {
            Module::Dateutil => "dateutil",
            Module::DateutilParser => "dateutil.parser",
            Module::DateutilTz => "dateutil.tz",
            Module::Datetime => "datetime",
            Module::Math => "math",
        }
    }

    fn from_path(path: &str) -> Option<Module> {
        [
            Module::Dateutil,
            Module::DateutilParser,
            Module::DateutilTz,
            Module::Datetime,
            Module::Math,
        ]
        .into_iter()
        .find(|m| m.path() == path)
    }
}

/// The members of a namespace, for lookups and hints.
pub(crate) fn members(bound: &Bound) -> &'static [&'static str] {
    match bound {
        Bound::Module(Module::Dateutil) => &["parser", "tz"],
        Bound::Module(Module::DateutilParser) => &["parse"],
        Bound::Module(Module::DateutilTz) => &["tzutc", "UTC"],
        Bound::Module(Module::Datetime) => &["datetime", "date", "timedelta", "timezone"],
        Bound::Module(Module::Math) => &["floor", "ceil", "sqrt", "log", "exp", "pow", "pi", "e"],
        Bound::DatetimeClass => &[
            "strptime",
            "fromtimestamp",
            "utcfromtimestamp",
            "utcnow",
            "now",
        ],
        Bound::TimezoneClass => &["utc"],
        Bound::Func(_) | Bound::Const(..) => &[],
    }
}

/// `namespace.name`.
pub(crate) fn member(bound: &Bound, name: &str) -> Option<Bound> {
    let func = |s: &'static Signature| Some(Bound::Func(Callable::Builtin(s)));
    match (bound, name) {
        (Bound::Module(Module::Dateutil), "parser") => Some(Bound::Module(Module::DateutilParser)),
        (Bound::Module(Module::Dateutil), "tz") => Some(Bound::Module(Module::DateutilTz)),
        (Bound::Module(Module::DateutilParser), "parse") => func(&PARSER_PARSE),
        (Bound::Module(Module::DateutilTz), "tzutc") => Some(Bound::Func(Callable::TzUtc)),
        (Bound::Module(Module::DateutilTz), "UTC") => Some(utc()),
        (Bound::Module(Module::Datetime), "datetime") => Some(Bound::DatetimeClass),
        (Bound::Module(Module::Datetime), "date") => func(&DATE),
        (Bound::Module(Module::Datetime), "timedelta") => func(&TIMEDELTA),
        (Bound::Module(Module::Datetime), "timezone") => Some(Bound::TimezoneClass),
        (Bound::Module(Module::Math), "floor") => func(&FLOOR),
        (Bound::Module(Module::Math), "ceil") => func(&CEIL),
        (Bound::Module(Module::Math), "sqrt") => func(&SQRT),
        (Bound::Module(Module::Math), "log") => func(&LOG),
        (Bound::Module(Module::Math), "exp") => func(&EXP),
        (Bound::Module(Module::Math), "pow") => func(&POW),
        (Bound::Module(Module::Math), "pi") => {
            Some(Bound::Const(Value::Float(std::f64::consts::PI), Ty::Float))
        }
        (Bound::Module(Module::Math), "e") => {
            Some(Bound::Const(Value::Float(std::f64::consts::E), Ty::Float))
        }
        (Bound::DatetimeClass, "strptime") => func(&STRPTIME),
        (Bound::DatetimeClass, "fromtimestamp") => func(&FROM_TIMESTAMP),
        (Bound::DatetimeClass, "utcfromtimestamp") => func(&UTC_FROM_TIMESTAMP),
        (Bound::DatetimeClass, "utcnow") => func(&UTC_NOW),
        (Bound::DatetimeClass, "now") => func(&NOW),
        (Bound::TimezoneClass, "utc") => Some(utc()),
        _ => None,
    }
}

/// The signature used when a namespace itself is called (`datetime(2018, 3, 1)`).
pub(crate) fn call_signature(bound: &Bound) -> Option<Callable> {
    match bound {
        Bound::Func(callable) => Some(*callable),
        Bound::DatetimeClass => Some(Callable::Builtin(&DATETIME)),
        _ => None,
    }
}

/// Names every spec can use without an import.
pub(crate) const BUILTIN_NAMES: &[&str] = &[
    "len",
    "count",
    "sum",
    "min",
    "max",
    "abs",
    "round",
    "int",
    "float",
    "str",
    "bool",
    "list",
    "set",
    "dict",
    "tuple",
    "sorted",
    "reversed",
    "any",
    "all",
    "zip",
    "range",
    "enumerate",
    "first",
    "last",
    "parse_time",
    "datetime",
    "timedelta",
];

pub(crate) fn builtin(name: &str) -> Option<Bound> {
    let s: &'static Signature = match name {
        "len" => &LEN,
        "count" => &COUNT,
        "sum" => &SUM,
        "min" => &MIN,
        "max" => &MAX,
        "abs" => &ABS,
        "round" => &ROUND,
        "int" => &INT,
        "float" => &FLOAT,
        "str" => &STR,
        "bool" => &BOOL,
        "list" => &LIST,
        "set" => &SET,
        "dict" => &DICT,
        "tuple" => &TUPLE,
        "sorted" => &SORTED,
        "reversed" => &REVERSED,
        "any" => &ANY,
        "all" => &ALL,
        "zip" => &ZIP,
        "range" => &RANGE,
        "enumerate" => &ENUMERATE,
        "first" => &FIRST,
        "last" => &LAST,
        "parse_time" => &PARSE_TIME,
        "timedelta" => &TIMEDELTA,
        "datetime" => return Some(Bound::DatetimeClass),
        _ => return None,
    };
    Some(Bound::Func(Callable::Builtin(s)))
}

const SUPPORTED: &str = "supported imports: dateutil (parser, tz), dateutil.parser (parse), \
dateutil.tz (tzutc, UTC), datetime (datetime, date, timedelta, timezone), math (floor, ceil, \
sqrt, log, exp, pow, pi, e); built-in functions: len, count, sum, min, max, abs, round, int, \
float, str, bool, list, set, dict, tuple, sorted, reversed, any, all, zip, range, enumerate, \
first, last, parse_time, datetime, timedelta";

/// Binds the names a spec's `Import` list introduces; unsupported modules and names are E0407.
pub(crate) fn bind_imports(
    file: FileId,
    imports: &[ImportDecl],
    diags: &mut Vec<Diagnostic>,
) -> HashMap<String, Bound> {
    let mut bound = HashMap::new();
    for import in imports {
        let path = import.module.value.as_str();
        let Some(module) = Module::from_path(path) else {
            let known = [
                "dateutil",
                "dateutil.parser",
                "dateutil.tz",
                "datetime",
                "math",
            ];
            let mut hint = SUPPORTED.to_string();
            if let Some(guess) = did_you_mean(path, known) {
                hint = format!("{guess} {hint}");
            }
            diags.push(
                Diagnostic::new(
                    Code::E0407,
                    file,
                    import.module.span,
                    format!(
                        "module `{path}` is not supported: custom Python code is not supported"
                    ),
                )
                .with_label("unsupported module")
                .with_hint(hint),
            );
            continue;
        };
        if import.identifiers.is_empty() {
            match &import.module_alias {
                Some(alias) => {
                    bound.insert(alias.value.clone(), Bound::Module(module));
                }
                None => {
                    // `import dateutil.parser` binds `dateutil`, like Python.
                    let root = path.split('.').next().unwrap_or(path);
                    let root_module = Module::from_path(root).unwrap_or(module);
                    bound.insert(root.to_string(), Bound::Module(root_module));
                }
            }
            continue;
        }
        let namespace = Bound::Module(module);
        for ident in &import.identifiers {
            let name = ident.name.value.as_str();
            match member(&namespace, name) {
                Some(value) => {
                    let local = ident.alias.as_ref().unwrap_or(&ident.name);
                    bound.insert(local.value.clone(), value);
                }
                None => {
                    let mut diag = Diagnostic::new(
                        Code::E0407,
                        file,
                        ident.name.span,
                        format!(
                            "`{name}` from module `{path}` is not supported: custom Python code is not supported"
                        ),
                    )
                    .with_label("unsupported name");
                    let mut hint = SUPPORTED.to_string();
                    if let Some(guess) = did_you_mean(name, members(&namespace).iter().copied()) {
                        hint = format!("{guess} {hint}");
                    }
                    diag = diag.with_hint(hint);
                    diags.push(diag);
                }
            }
        }
    }
    bound
}
