use proptest::prelude::*;

use super::{MAX_DEPTH, ParseError, parse_expr};
use crate::ast::{Arg, Comprehension, Expr, ExprKind, UnaryOp};
use crate::span::Span;

/// Compact, fully bracketed rendering of a tree, so a test states the shape it expects in one
/// line.
fn sexp(expr: &Expr) -> String {
    let list = |items: &[Expr]| items.iter().map(sexp).collect::<Vec<_>>().join(" ");
    let opt = |e: &Option<Box<Expr>>| e.as_deref().map_or("_".to_string(), sexp);
    match &expr.kind {
        ExprKind::Int(v) => v.to_string(),
        ExprKind::Float(v) => format!("{v:?}"),
        ExprKind::Str(s) => format!("{s:?}"),
        ExprKind::Bool(true) => "True".to_string(),
        ExprKind::Bool(false) => "False".to_string(),
        ExprKind::None => "None".to_string(),
        ExprKind::List(items) => format!("[{}]", list(items)),
        ExprKind::Set(items) => format!("(set {})", list(items)),
        ExprKind::Dict(entries) => {
            let entries: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}:{}", sexp(k), sexp(v)))
                .collect();
            format!("(dict {})", entries.join(" "))
        }
        ExprKind::Tuple(items) => format!("(tuple {})", list(items)),
        ExprKind::Name(name) => name.clone(),
        ExprKind::Attr(value, attr) => format!("(. {} {})", sexp(value), attr.name),
        ExprKind::Index(value, index) => format!("([] {} {})", sexp(value), sexp(index)),
        ExprKind::Slice {
            value,
            lower,
            upper,
            step,
        } => format!(
            "([:] {} {} {} {})",
            sexp(value),
            opt(lower),
            opt(upper),
            opt(step)
        ),
        ExprKind::Call { func, args } => {
            let args: Vec<String> = args.iter().map(arg).collect();
            format!("(call {} {})", sexp(func), args.join(" "))
        }
        ExprKind::Unary(UnaryOp::Neg, operand) => format!("(neg {})", sexp(operand)),
        ExprKind::Unary(UnaryOp::Pos, operand) => format!("(pos {})", sexp(operand)),
        // Chains render folded to the left, the order they are applied in.
        ExprKind::Binary(first, rest) => rest.iter().fold(sexp(first), |acc, operation| {
            format!("({} {acc} {})", operation.op.symbol(), sexp(&operation.rhs))
        }),
        ExprKind::Logical(op, operands) => {
            let op = match op {
                crate::ast::LogicalOp::And => "and",
                crate::ast::LogicalOp::Or => "or",
            };
            let mut operands = operands.iter().map(sexp);
            let first = operands.next().unwrap_or_default();
            operands.fold(first, |acc, operand| format!("({op} {acc} {operand})"))
        }
        ExprKind::Not(operand) => format!("(not {})", sexp(operand)),
        ExprKind::Compare(first, rest) => {
            let mut out = format!("(cmp {}", sexp(first));
            for (op, operand) in rest {
                out.push_str(&format!(" {} {}", op.symbol(), sexp(operand)));
            }
            out + ")"
        }
        ExprKind::IfElse { body, cond, orelse } => {
            format!("(if {} {} {})", sexp(cond), sexp(body), sexp(orelse))
        }
        ExprKind::ListComp { elt, generators } => {
            let generators: Vec<String> = generators.iter().map(generator).collect();
            format!("(listcomp {} {})", sexp(elt), generators.join(" "))
        }
    }
}

fn arg(arg: &Arg) -> String {
    match &arg.keyword {
        Some(keyword) => format!("{}={}", keyword.name, sexp(&arg.value)),
        None => sexp(&arg.value),
    }
}

fn generator(comp: &Comprehension) -> String {
    let targets: Vec<&str> = comp.targets.iter().map(|t| t.name.as_str()).collect();
    let mut out = format!("(for {} in {}", targets.join(","), sexp(&comp.iter));
    for cond in &comp.ifs {
        out.push_str(&format!(" if {}", sexp(cond)));
    }
    out + ")"
}

fn parse(text: &str) -> Expr {
    match parse_expr(text, 0) {
        Ok(expr) => expr,
        Err(err) => panic!("{text:?} did not parse: {err:?}"),
    }
}

fn shape(text: &str) -> String {
    sexp(&parse(text))
}

fn parse_err(text: &str, base: usize) -> ParseError {
    match parse_expr(text, base) {
        Ok(expr) => panic!("{text:?} parsed as {}", sexp(&expr)),
        Err(err) => err,
    }
}

#[test]
fn integers() {
    assert_eq!(shape("0"), "0");
    assert_eq!(shape("42"), "42");
    assert_eq!(shape("1_000"), "1000");
    assert_eq!(shape("9223372036854775807"), "9223372036854775807");
}

#[test]
fn floats() {
    assert_eq!(shape("1.5"), "1.5");
    assert_eq!(shape(".5"), "0.5");
    assert_eq!(shape("1e3"), "1000.0");
    assert_eq!(shape("2.5E-2"), "0.025");
    assert_eq!(shape("3."), "3.0");
}

#[test]
fn strings_in_both_quotes_with_escapes() {
    assert_eq!(shape("'abc'"), "\"abc\"");
    assert_eq!(shape("\"it's\""), "\"it's\"");
    assert_eq!(shape(r#"'a\nb\tc\\d\'e\"f'"#), "\"a\\nb\\tc\\\\d'e\\\"f\"");
    assert_eq!(shape(r"'caf\u00e9'"), "\"café\"");
    assert_eq!(shape(r"'\x41\101'"), "\"AA\"");
    assert_eq!(shape("'# not a comment'"), "\"# not a comment\"");
    // Python keeps unknown escapes as written.
    assert_eq!(shape(r"'\d'"), "\"\\\\d\"");
}

#[test]
fn constants_in_python_and_json_spelling() {
    for (text, expected) in [
        ("True", "True"),
        ("true", "True"),
        ("False", "False"),
        ("false", "False"),
        ("None", "None"),
        ("null", "None"),
    ] {
        assert_eq!(shape(text), expected, "{text}");
    }
    assert_eq!(shape("Trueish"), "Trueish");
    assert_eq!(shape("none"), "none");
}

#[test]
fn names() {
    assert_eq!(shape("source"), "source");
    assert_eq!(shape("_start_time"), "_start_time");
    assert_eq!(shape("games_played2"), "games_played2");
    assert_eq!(shape("iffy"), "iffy");
    assert_eq!(shape("notes"), "notes");
}

#[test]
fn lists() {
    assert_eq!(shape("[]"), "[]");
    assert_eq!(shape("[a, 1]"), "[a 1]");
    assert_eq!(shape("[a, 1,]"), "[a 1]");
}

#[test]
fn sets_and_dicts() {
    assert_eq!(shape("{a, b}"), "(set a b)");
    assert_eq!(shape("{a,}"), "(set a)");
    assert_eq!(shape("{}"), "(dict )");
    assert_eq!(shape("{'k': v}"), "(dict \"k\":v)");
    assert_eq!(shape("{'k': v, 1: [2],}"), "(dict \"k\":v 1:[2])");
}

#[test]
fn tuples_and_parentheses() {
    assert_eq!(shape("(a, b)"), "(tuple a b)");
    assert_eq!(shape("(a,)"), "(tuple a)");
    assert_eq!(shape("()"), "(tuple )");
    assert_eq!(shape("(a)"), "a");
    assert_eq!(shape("(1 + 2) * 3"), "(* (+ 1 2) 3)");
}

#[test]
fn attributes_calls_and_method_calls() {
    assert_eq!(shape("source.a.b"), "(. (. source a) b)");
    assert_eq!(shape("f()"), "(call f )");
    assert_eq!(shape("f(x, y)"), "(call f x y)");
    assert_eq!(shape("f(x, y,)"), "(call f x y)");
    assert_eq!(shape("timedelta(days=7)"), "(call timedelta days=7)");
    assert_eq!(shape("f(x, k=v == w)"), "(call f x k=(cmp v == w))");
    assert_eq!(
        shape("s.split(',')"),
        "(call (. s split) \",\")",
        "a method call is a Call of an Attr"
    );
    assert_eq!(shape("source.in"), "(. source in)");
}

#[test]
fn index_and_slices() {
    assert_eq!(shape("a[0]"), "([] a 0)");
    assert_eq!(shape("a[-1]"), "([] a (neg 1))");
    assert_eq!(
        shape("source['key with space']"),
        "([] source \"key with space\")"
    );
    assert_eq!(shape("a[1:3]"), "([:] a 1 3 _)");
    assert_eq!(shape("a[:2]"), "([:] a _ 2 _)");
    assert_eq!(shape("a[1:]"), "([:] a 1 _ _)");
    assert_eq!(shape("a[::2]"), "([:] a _ _ 2)");
    assert_eq!(shape("a[:]"), "([:] a _ _ _)");
    assert_eq!(shape("a[1:2:]"), "([:] a 1 2 _)");
    assert_eq!(shape("x.y(1)[2].z"), "(. ([] (call (. x y) 1) 2) z)");
}

#[test]
fn list_comprehensions() {
    assert_eq!(
        shape("[x.strip() for x in s.split(',') if x]"),
        "(listcomp (call (. x strip) ) (for x in (call (. s split) \",\") if x))"
    );
    assert_eq!(
        shape("[x * y for x in a if x if x > 1 for y in b if y]"),
        "(listcomp (* x y) (for x in a if x if (cmp x > 1)) (for y in b if y))"
    );
    assert_eq!(
        shape("[k for k, v in d.items()]"),
        "(listcomp k (for k,v in (call (. d items) )))"
    );
    assert_eq!(shape("[k for (k, v) in d]"), "(listcomp k (for k,v in d))");
    assert_eq!(
        shape("[a if c else b for x in xs]"),
        "(listcomp (if c a b) (for x in xs))"
    );
}

#[test]
fn generator_arguments_become_list_comprehensions() {
    assert_eq!(
        shape("sum(x for x in xs if x)"),
        "(call sum (listcomp x (for x in xs if x)))"
    );
    assert_eq!(shape("(x for x in xs)"), "(listcomp x (for x in xs))");
}

#[test]
fn arithmetic_precedence() {
    assert_eq!(shape("1 + 2 * 3"), "(+ 1 (* 2 3))");
    assert_eq!(shape("1 - 2 - 3"), "(- (- 1 2) 3)");
    assert_eq!(shape("a / b // c % d"), "(% (// (/ a b) c) d)");
    assert_eq!(shape("-a * b"), "(* (neg a) b)");
    assert_eq!(shape("- -a"), "(neg (neg a))");
    assert_eq!(shape("+a"), "(pos a)");
}

#[test]
fn power_binds_tighter_than_unary_and_is_right_associative() {
    assert_eq!(shape("-2 ** 2"), "(neg (** 2 2))");
    assert_eq!(shape("2 ** -1"), "(** 2 (neg 1))");
    assert_eq!(shape("2 ** 3 ** 4"), "(** 2 (** 3 4))");
    assert_eq!(shape("2 ** -3 ** 4"), "(** 2 (neg (** 3 4)))");
    assert_eq!(shape("a.b ** c[0]"), "(** (. a b) ([] c 0))");
}

#[test]
fn logical_precedence() {
    assert_eq!(shape("a or b and c"), "(or a (and b c))");
    assert_eq!(shape("a and b or c"), "(or (and a b) c)");
    assert_eq!(shape("not a == b"), "(not (cmp a == b))");
    assert_eq!(shape("not a and b"), "(and (not a) b)");
    assert_eq!(shape("not not a"), "(not (not a))");
}

#[test]
fn conditional_is_lowest_and_right_associative() {
    assert_eq!(shape("x if c else y"), "(if c x y)");
    assert_eq!(shape("x if c else y if d else z"), "(if c x (if d y z))");
    assert_eq!(
        shape("a or b if c and d else e"),
        "(if (and c d) (or a b) e)"
    );
}

#[test]
fn comparisons_chain_into_one_node() {
    assert_eq!(shape("0 < x <= 5"), "(cmp 0 < x <= 5)");
    assert_eq!(shape("(0 < x) <= 5"), "(cmp (cmp 0 < x) <= 5)");
    for op in [
        "==", "!=", "<", "<=", ">", ">=", "in", "not in", "is", "is not",
    ] {
        assert_eq!(shape(&format!("a {op} b")), format!("(cmp a {op} b)"));
    }
    assert_eq!(shape("a not in b"), "(cmp a not in b)");
    assert_eq!(shape("a is not None"), "(cmp a is not None)");
    assert_eq!(shape("a + 1 == b * 2"), "(cmp (+ a 1) == (* b 2))");
}

#[test]
fn whitespace_newlines_and_comments() {
    assert_eq!(shape("  a\n  +\tb  "), "(+ a b)");
    assert_eq!(shape("[1,  # first\n 2  # second\n]  # done"), "[1 2]");
    assert_eq!(shape("a not\n in b"), "(cmp a not in b)");
}

#[test]
fn spans_are_shifted_by_base() {
    let base = 1000;
    let Ok(expr) = parse_expr("f(a, k=b.c) + 1", base) else {
        panic!("did not parse");
    };
    assert_eq!(expr.span, Span::new(1000, 1015));
    let ExprKind::Binary(call, rest) = &expr.kind else {
        panic!("not a binary: {}", sexp(&expr));
    };
    assert_eq!(call.span, Span::new(1000, 1011));
    assert_eq!(rest[0].rhs.span, Span::new(1014, 1015));
    assert_eq!(rest[0].span, Span::new(1000, 1015));
    let ExprKind::Call { func, args } = &call.kind else {
        panic!("not a call: {}", sexp(call));
    };
    assert_eq!(func.span, Span::new(1000, 1001));
    assert_eq!(args[0].value.span, Span::new(1002, 1003));
    let keyword = args[1].keyword.as_ref().map(|k| k.span);
    assert_eq!(keyword, Some(Span::new(1005, 1006)));
    assert_eq!(args[1].value.span, Span::new(1007, 1010));
    let ExprKind::Attr(_, attr) = &args[1].value.kind else {
        panic!("not an attribute");
    };
    assert_eq!(attr.span, Span::new(1009, 1010));
}

#[test]
fn spans_of_folded_chains_and_comprehension_targets() {
    let Ok(expr) = parse_expr("-a ** b  # c", 7) else {
        panic!("did not parse");
    };
    assert_eq!(expr.span, Span::new(7, 14));
    let ExprKind::Unary(_, power) = &expr.kind else {
        panic!("not unary");
    };
    assert_eq!(power.span, Span::new(8, 14));
    let Ok(expr) = parse_expr("[v for k, v in d]", 50) else {
        panic!("did not parse");
    };
    let ExprKind::ListComp { generators, .. } = &expr.kind else {
        panic!("not a comprehension");
    };
    let spans: Vec<Span> = generators[0].targets.iter().map(|t| t.span).collect();
    assert_eq!(spans, [Span::new(57, 58), Span::new(60, 61)]);
    assert_eq!(generators[0].iter.span, Span::new(65, 66));
}

#[test]
fn spans_cover_parentheses_of_operands_but_not_their_own() {
    let Ok(expr) = parse_expr("-(a + b) * (c).d", 0) else {
        panic!("did not parse");
    };
    assert_eq!(expr.span, Span::new(0, 16));
    let ExprKind::Binary(neg, rest) = &expr.kind else {
        panic!("not binary: {}", sexp(&expr));
    };
    assert_eq!(neg.span, Span::new(0, 8));
    assert_eq!(rest[0].rhs.span, Span::new(11, 16));
    let ExprKind::Unary(_, sum) = &neg.kind else {
        panic!("not unary");
    };
    assert_eq!(sum.span, Span::new(2, 7));
}

#[test]
fn error_incomplete_operator() {
    let err = parse_err("1 +", 10);
    assert_eq!(err.span, Span::new(13, 13));
    assert_eq!(
        err.message,
        "unexpected end of expression: expected an expression"
    );
}

#[test]
fn error_unclosed_bracket() {
    let err = parse_err("(1", 10);
    assert_eq!(err.span, Span::new(12, 12));
    assert_eq!(err.message, "unexpected end of expression: expected `)`");
    let err = parse_err("[1, 2", 0);
    assert_eq!(err.message, "unexpected end of expression: expected `]`");
}

#[test]
fn error_unterminated_string() {
    let err = parse_err("x + 'abc", 10);
    assert_eq!(err.span, Span::new(14, 18));
    assert_eq!(err.message, "unterminated string");
    let err = parse_err("\"ab\ncd\"", 0);
    assert_eq!(err.span, Span::new(0, 3));
    assert_eq!(err.message, "unterminated string");
}

#[test]
fn error_double_dot() {
    let err = parse_err("a..b", 10);
    assert_eq!(err.span, Span::new(12, 13));
    assert_eq!(
        err.message,
        "expected an attribute name after `.`, found `.`"
    );
}

#[test]
fn error_missing_argument() {
    let err = parse_err("f(,)", 10);
    assert_eq!(err.span, Span::new(12, 13));
    assert_eq!(err.message, "expected an expression or `)`, found `,`");
}

#[test]
fn error_two_operands() {
    let err = parse_err("1 22", 10);
    assert_eq!(err.span, Span::new(12, 14));
    assert_eq!(
        err.message,
        "expected an operator or the end of the expression, found `22`"
    );
}

#[test]
fn error_other_syntax() {
    let cases = [
        (
            "",
            (0, 0),
            "unexpected end of expression: expected an expression",
        ),
        (")", (0, 1), "expected an expression, found `)`"),
        (
            "a = b",
            (2, 3),
            "expected an operator or the end of the expression, found `=` (use `==` to compare)",
        ),
        (
            "a if b",
            (6, 6),
            "unexpected end of expression: expected `else`",
        ),
        ("[x for in y]", (7, 9), "expected a name, found `in`"),
        ("[x for x y]", (9, 10), "expected `in`, found `y`"),
        ("{1: 2, 3}", (8, 9), "expected `:`, found `}`"),
        ("a[]", (2, 3), "expected an expression, found `]`"),
        (
            "'a' 'b'",
            (4, 7),
            "expected an operator or the end of the expression, found a string",
        ),
        (
            "f(a=1, 2)",
            (7, 8),
            "positional argument follows keyword argument",
        ),
        ("f(a=1, a=2)", (7, 8), "keyword argument repeated: `a`"),
        (
            "f(k=x for x in y)",
            (2, 3),
            "a generator expression cannot be a keyword argument",
        ),
        (
            "007",
            (0, 3),
            "leading zeros are not allowed in integer literals",
        ),
        (
            r"'\u12'",
            (1, 5),
            "invalid `\\u` escape: expected 4 hex digits",
        ),
        (
            r"'\ud800'",
            (1, 7),
            "`\\u` escape is not a valid Unicode character",
        ),
    ];
    for (text, (start, end), message) in cases {
        let err = parse_err(text, 0);
        assert_eq!(
            (err.span, err.message.as_str()),
            (Span::new(start, end), message),
            "{text:?}"
        );
    }
}

#[test]
fn error_integer_overflow() {
    let err = parse_err("x + 9223372036854775808", 5);
    assert_eq!(err.span, Span::new(9, 28));
    assert!(err.message.contains("too large"), "{}", err.message);
}

#[test]
fn nesting_up_to_the_limit_parses() {
    let depth = MAX_DEPTH;
    let parens = format!("{}x{}", "(".repeat(depth), ")".repeat(depth));
    assert_eq!(shape(&parens), "x");
    let lists = format!("{}x{}", "[".repeat(depth - 1), "]".repeat(depth - 1));
    assert!(parse_expr(&lists, 0).is_ok());
    let calls = format!("{}x{}", "f(".repeat(depth - 1), ")".repeat(depth - 1));
    assert!(parse_expr(&calls, 0).is_ok());
}

#[test]
fn too_deep_brackets_are_an_error_at_the_offending_bracket() {
    let depth = MAX_DEPTH + 1;
    let text = format!("{}x{}", "(".repeat(depth), ")".repeat(depth));
    let err = parse_err(&text, 3);
    assert_eq!(err.span, Span::new(3 + MAX_DEPTH, 4 + MAX_DEPTH));
    assert!(err.message.contains("nested too deeply"), "{}", err.message);
    let text = format!("{}x{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert!(parse_err(&text, 0).message.contains("nested too deeply"));
}

#[test]
fn long_nesting_chains_are_an_error_not_a_stack_overflow() {
    let n = 5_000;
    for text in [
        format!("{}x", "-".repeat(n)),
        format!("{}x", "not ".repeat(n)),
        format!("{}x", "x ** ".repeat(n)),
        format!("{}x", "x if c else ".repeat(n)),
        format!("{}x{}", "(x + ".repeat(n), ")".repeat(n)),
    ] {
        let err = parse_err(&text, 0);
        assert!(err.message.contains("nested too deeply"), "{}", err.message);
    }
}

#[test]
fn left_associative_chains_do_not_count_as_nesting() {
    let n = 5_000;
    for (op, sep) in [
        ("+", " + "),
        ("-", " - "),
        ("*", " * "),
        ("//", " // "),
        ("and", " and "),
        ("or", " or "),
    ] {
        let terms: Vec<String> = (0..n).map(|i| format!("x{i}")).collect();
        let text = terms.join(sep);
        let expr = match parse_expr(&text, 0) {
            Ok(expr) => expr,
            Err(e) => panic!("`{op}` chain: {}", e.message),
        };
        let operands = match &expr.kind {
            ExprKind::Binary(first, rest) => {
                assert!(rest.iter().all(|o| o.op.symbol() == op));
                assert_eq!(first.kind, ExprKind::Name("x0".into()));
                rest.len() + 1
            }
            ExprKind::Logical(_, operands) => operands.len(),
            other => panic!("`{op}` chain: {other:?}"),
        };
        assert_eq!(operands, n, "{op}");
        assert_eq!(expr.span, Span::new(0, text.len()));
    }
    // A chain at the deepest nesting allowed still parses: its length adds no depth.
    let chain = vec!["x"; 300].join(" + ");
    let text = format!(
        "{}{chain}{}",
        "[".repeat(MAX_DEPTH - 2),
        "]".repeat(MAX_DEPTH - 2)
    );
    assert!(parse_expr(&text, 0).is_ok());
}

#[test]
fn failing_nested_input_does_not_backtrack_exponentially() {
    let depth = 150;
    for (open, close) in [
        ("{a:", "}"),
        ("a[", ":]"),
        ("f(", ")"),
        ("[", " for]"),
        ("(", ",)"),
    ] {
        let text = format!("{}1 +{}", open.repeat(depth), close.repeat(depth));
        assert!(parse_expr(&text, 0).is_err(), "{text}");
    }
}

/// Python's precedence levels, lowest first, for rendering generated trees with only the
/// parentheses Python needs.
const IF: u8 = 1;
const OR: u8 = 2;
const AND: u8 = 3;
const NOT: u8 = 4;
const CMP: u8 = 5;
const ADD: u8 = 6;
const MUL: u8 = 7;
const UNARY: u8 = 8;
const POW: u8 = 9;
const ATOM: u8 = 10;

/// A generated expression: its text with minimal parentheses, its precedence level, and the
/// shape the parser must produce.
#[derive(Debug, Clone)]
struct Generated {
    text: String,
    level: u8,
    shape: String,
}

fn wrap(g: &Generated, needs_parens: bool) -> String {
    if needs_parens {
        format!("({})", g.text)
    } else {
        g.text.clone()
    }
}

fn atom() -> impl Strategy<Value = Generated> {
    prop_oneof![
        "[a-z][a-z0-9_]{0,3}"
            .prop_filter("keyword", |s| {
                !matches!(
                    s.as_str(),
                    "and"
                        | "or"
                        | "not"
                        | "in"
                        | "is"
                        | "if"
                        | "else"
                        | "for"
                        | "true"
                        | "false"
                        | "null"
                )
            })
            .prop_map(|name| Generated {
                text: name.clone(),
                level: ATOM,
                shape: name,
            }),
        (0i64..1000).prop_map(|n| Generated {
            text: n.to_string(),
            level: ATOM,
            shape: n.to_string(),
        }),
        "[a-z ]{0,4}".prop_map(|s| Generated {
            text: format!("'{s}'"),
            level: ATOM,
            shape: format!("{s:?}"),
        }),
    ]
}

fn binary(op: &'static str, level: u8, lhs: Generated, rhs: Generated) -> Generated {
    let (left_parens, right_parens) = if op == "**" {
        (lhs.level <= level, rhs.level < UNARY)
    } else {
        (lhs.level < level, rhs.level <= level)
    };
    Generated {
        text: format!(
            "{} {op} {}",
            wrap(&lhs, left_parens),
            wrap(&rhs, right_parens)
        ),
        level,
        shape: format!("({op} {} {})", lhs.shape, rhs.shape),
    }
}

fn generated() -> impl Strategy<Value = Generated> {
    atom().prop_recursive(6, 48, 3, |inner| {
        prop_oneof![
            (
                prop::sample::select(vec![
                    ("+", ADD),
                    ("-", ADD),
                    ("*", MUL),
                    ("/", MUL),
                    ("//", MUL),
                    ("%", MUL),
                    ("**", POW),
                    ("and", AND),
                    ("or", OR),
                ]),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|((op, level), lhs, rhs)| binary(op, level, lhs, rhs)),
            (
                prop::sample::select(vec![
                    "==", "!=", "<", "<=", ">", ">=", "in", "not in", "is", "is not"
                ]),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(op, lhs, rhs)| Generated {
                    text: format!(
                        "{} {op} {}",
                        wrap(&lhs, lhs.level <= CMP),
                        wrap(&rhs, rhs.level <= CMP)
                    ),
                    level: CMP,
                    shape: format!("(cmp {} {op} {})", lhs.shape, rhs.shape),
                }),
            (prop::bool::ANY, inner.clone()).prop_map(|(neg, operand)| {
                let (op, name) = if neg { ("-", "neg") } else { ("+", "pos") };
                Generated {
                    text: format!("{op}{}", wrap(&operand, operand.level < UNARY)),
                    level: UNARY,
                    shape: format!("({name} {})", operand.shape),
                }
            }),
            inner.clone().prop_map(|operand| Generated {
                text: format!("not {}", wrap(&operand, operand.level < NOT)),
                level: NOT,
                shape: format!("(not {})", operand.shape),
            }),
            (inner.clone(), inner.clone(), inner.clone()).prop_map(|(body, cond, orelse)| {
                Generated {
                    text: format!(
                        "{} if {} else {}",
                        wrap(&body, body.level <= IF),
                        wrap(&cond, cond.level <= IF),
                        wrap(&orelse, orelse.level < IF)
                    ),
                    level: IF,
                    shape: format!("(if {} {} {})", cond.shape, body.shape, orelse.shape),
                }
            }),
            (inner.clone(), prop::collection::vec(inner.clone(), 0..3)).prop_map(|(func, args)| {
                let texts: Vec<String> = args.iter().map(|a| a.text.clone()).collect();
                let shapes: Vec<String> = args.iter().map(|a| a.shape.clone()).collect();
                Generated {
                    text: format!("{}({})", wrap(&func, func.level < ATOM), texts.join(", ")),
                    level: ATOM,
                    shape: format!("(call {} {})", func.shape, shapes.join(" ")),
                }
            }),
            (inner.clone(), inner.clone()).prop_map(|(value, index)| Generated {
                text: format!("{}[{}]", wrap(&value, value.level < ATOM), index.text),
                level: ATOM,
                shape: format!("([] {} {})", value.shape, index.shape),
            }),
            prop::collection::vec(inner, 0..3).prop_map(|items| {
                let texts: Vec<String> = items.iter().map(|a| a.text.clone()).collect();
                let shapes: Vec<String> = items.iter().map(|a| a.shape.clone()).collect();
                Generated {
                    text: format!("[{}]", texts.join(", ")),
                    level: ATOM,
                    shape: format!("[{}]", shapes.join(" ")),
                }
            }),
        ]
    })
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(text in ".{0,64}", base in 0usize..1000) {
        if let Err(err) = parse_expr(&text, base) {
            prop_assert!(err.span.start >= base && err.span.end <= base + text.len());
            prop_assert!(err.span.start <= err.span.end);
        }
    }

    #[test]
    fn never_panics_on_expression_like_text(
        text in r##"[-+*/%<>=!()\[\]{}.,:'"#\\a-c0-9 \n]{0,48}|(not |and |or |in |is |if |else |for |[a-c0-9(),.\[\]:+-])*"##
    ) {
        if let Err(err) = parse_expr(&text, 0) {
            prop_assert!(err.span.end <= text.len());
            prop_assert!(!err.message.is_empty());
        }
    }

    #[test]
    fn generated_expressions_parse_with_python_precedence(g in generated()) {
        let expr = parse_expr(&g.text, 0).map_err(|e| TestCaseError::fail(format!("{:?}: {e:?}", g.text)))?;
        prop_assert_eq!(sexp(&expr), g.shape, "{}", g.text);
        prop_assert_eq!(expr.span, Span::new(0, g.text.len()));
    }
}
