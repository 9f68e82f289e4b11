//! Expression parser: text → [`crate::ast::Expr`].
//!
//! Three passes over one expression: a byte scan that rejects unterminated strings and
//! over-deep bracket nesting before pest sees the text (so pest's recursion stays bounded), the
//! pest grammar in `parser/grammar.pest`, and a builder that turns pest pairs into AST nodes,
//! folding operator chains with Python's associativity and checking literals.

use pest::Parser as _;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::{Pair, Pairs};

use crate::ast::{
    Arg, BinOp, CmpOp, Comprehension, Expr, ExprKind, Ident, LogicalOp, Operation, UnaryOp,
};
use crate::span::Span;

#[cfg(test)]
mod tests;

mod grammar {
    #[derive(pest_derive::Parser)]
    #[grammar = "parser/grammar.pest"]
    pub(super) struct ExprGrammar;
}

use grammar::{ExprGrammar, Rule};

/// Deepest nesting accepted, both for brackets and for the syntax tree. Later stages walk the
/// tree recursively, so the limit protects them as well as the parser.
pub const MAX_DEPTH: usize = 200;

/// A syntax error inside one expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// Absolute span (already shifted by `base`).
    pub span: Span,
    /// What is wrong, in words for the spec author (no position: that is in `span`).
    pub message: String,
}

/// Parses one expression. Every span in the result (and in the error) is `base` + the byte
/// offset inside `text`, so callers pass the offset of the expression's first character in the
/// spec file.
pub fn parse_expr(text: &str, base: usize) -> Result<Expr, ParseError> {
    let Scanned { depth, comments } = prescan(text, base)?;
    if depth <= CALLER_STACK_DEPTH {
        return parse_scanned(text, base, comments);
    }
    let whole = Span::new(base, base + text.len());
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("dtc-expr-parser".to_string())
            .stack_size(DEEP_STACK_BYTES)
            .spawn_scoped(scope, || parse_scanned(text, base, comments));
        match worker {
            Ok(handle) => handle.join().unwrap_or_else(|_| {
                Err(error(
                    whole,
                    "internal parser error: the parser thread failed",
                ))
            }),
            Err(err) => Err(error(
                whole,
                format!("cannot parse this deeply nested expression: {err}"),
            )),
        }
    })
}

/// Bracket depth up to which an expression is parsed on the caller's stack. The parser needs
/// about 13 KiB of stack per bracket level in debug builds (a few KiB in release), so this
/// stays far below a 2 MiB thread stack whatever the caller already uses.
const CALLER_STACK_DEPTH: usize = 32;

/// Stack for parsing deeper expressions, up to [`MAX_DEPTH`] levels with a wide margin.
/// Only the pages actually touched are committed.
const DEEP_STACK_BYTES: usize = 16 << 20;

/// Parses text that [`prescan`] accepted; `comments` is whether it holds any.
fn parse_scanned(text: &str, base: usize, comments: bool) -> Result<Expr, ParseError> {
    let pairs =
        ExprGrammar::parse(Rule::expression, text).map_err(|err| syntax_error(text, base, &err))?;
    let builder = Builder {
        base,
        text,
        comments,
    };
    let root = pairs
        .into_iter()
        .find(|pair| pair.as_rule() == Rule::test)
        .ok_or_else(|| builder.internal(Span::new(base, base + text.len()), Rule::expression))?;
    Ok(builder.expr(root)?.expr)
}

fn error(span: Span, message: impl Into<String>) -> ParseError {
    ParseError {
        span,
        message: message.into(),
    }
}

/// What [`prescan`] found out about an expression's text.
struct Scanned {
    /// The deepest bracket nesting.
    depth: usize,
    /// Whether the text holds a comment.
    comments: bool,
}

/// Finds unterminated strings and too-deep bracket nesting with a flat scan, so that the
/// recursive stages only ever see bounded nesting.
fn prescan(text: &str, base: usize) -> Result<Scanned, ParseError> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut max_depth = 0usize;
    let mut comments = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                comments = true;
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            quote @ (b'\'' | b'"') => {
                let start = i;
                i += 1;
                loop {
                    match bytes.get(i) {
                        Some(&b) if b == quote => break,
                        Some(b'\\') => i += 2,
                        Some(b'\n') | None => {
                            let end = i.min(bytes.len());
                            return Err(error(
                                Span::new(base + start, base + end),
                                "unterminated string",
                            ));
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                max_depth = max_depth.max(depth);
                if depth > MAX_DEPTH {
                    return Err(error(
                        Span::new(base + i, base + i + 1),
                        format!("expression is nested too deeply (more than {MAX_DEPTH} levels)"),
                    ));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(Scanned {
        depth: max_depth,
        comments,
    })
}

/// Turns pest's "which rules were tried at the furthest position" into a message a spec author
/// can act on.
fn syntax_error(text: &str, base: usize, err: &pest::error::Error<Rule>) -> ParseError {
    let pos = match err.location {
        InputLocation::Pos(pos) => pos,
        InputLocation::Span((start, _)) => start,
    };
    let positives = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.as_slice(),
        ErrorVariant::CustomError { message } => {
            return error(
                Span::new(base + pos, base + pos),
                format!("expression is too complex to parse ({message})"),
            );
        }
    };
    let expected = expected_description(positives);
    match found_token(text, pos) {
        None => error(
            Span::new(base + text.len(), base + text.len()),
            format!("unexpected end of expression: expected {expected}"),
        ),
        Some(token) => {
            let found = if token.starts_with(['\'', '"']) {
                "a string".to_string()
            } else {
                format!("`{token}`")
            };
            // The one mistake Python users make here often enough to deserve a hint.
            let hint = if token == "=" {
                " (use `==` to compare)"
            } else {
                ""
            };
            error(
                Span::new(base + pos, base + pos + token.len()),
                format!("expected {expected}, found {found}{hint}"),
            )
        }
    }
}

/// What pest wanted, most specific first: a missing closing bracket or name beats the long tail
/// of operators that could also have continued the expression.
fn expected_description(positives: &[Rule]) -> String {
    let has = |rule: Rule| positives.contains(&rule);
    let closers: Vec<&str> = [
        (Rule::rparen, "`)`"),
        (Rule::rbracket, "`]`"),
        (Rule::rbrace, "`}`"),
    ]
    .into_iter()
    .filter(|(rule, _)| has(*rule))
    .map(|(_, text)| text)
    .collect();
    if has(Rule::attr_name) {
        return "an attribute name after `.`".to_string();
    }
    if has(Rule::targets) {
        return "a name".to_string();
    }
    let starts_expression = positives.iter().any(|&rule| starts_expression(rule));
    match (starts_expression, closers.is_empty()) {
        (true, true) => return "an expression".to_string(),
        (true, false) => return format!("an expression or {}", closers.join(" or ")),
        (false, false) => return closers.join(" or "),
        (false, true) => {}
    }
    for (rule, text) in [
        (Rule::kw_else, "`else`"),
        (Rule::kw_in, "`in`"),
        (Rule::colon, "`:`"),
    ] {
        if has(rule) {
            return text.to_string();
        }
    }
    if has(Rule::EOI) {
        "an operator or the end of the expression".to_string()
    } else {
        "an operator".to_string()
    }
}

/// Rules that can only be tried where an operand may begin.
fn starts_expression(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::test
            | Rule::or_test
            | Rule::and_test
            | Rule::not_test
            | Rule::comparison
            | Rule::arith
            | Rule::term
            | Rule::factor
            | Rule::power
            | Rule::postfix
            | Rule::argument
            | Rule::kwarg
            | Rule::lower
            | Rule::upper
            | Rule::step
            | Rule::unary_op
            | Rule::kw_not
            | Rule::int
            | Rule::float
            | Rule::string
            | Rule::constant
            | Rule::name
            | Rule::list_display
            | Rule::brace_display
            | Rule::paren_display
    )
}

/// The token starting at byte `pos`, for "found `…`" in messages; `None` at the end.
fn found_token(text: &str, pos: usize) -> Option<&str> {
    let rest = text.get(pos..)?;
    let first = rest.chars().next()?;
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let len = if is_word(first) {
        rest.find(|c: char| !(is_word(c) || first.is_ascii_digit() && c == '.'))
            .unwrap_or(rest.len())
    } else if first == '\'' || first == '"' {
        string_token_len(rest, first)
    } else if ["**", "//", "==", "!=", "<=", ">="]
        .iter()
        .any(|op| rest.starts_with(op))
    {
        2
    } else {
        first.len_utf8()
    };
    rest.get(..len)
}

/// Length of the string literal at the start of `rest` (quotes included), or of the rest of the
/// line if it is not closed.
fn string_token_len(rest: &str, quote: char) -> usize {
    let mut escaped = false;
    for (i, c) in rest.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '\n' => return i,
            _ if c == quote => return i + 1,
            _ => {}
        }
    }
    rest.len()
}

/// An expression being built, with its tree depth so the limit is checked as nodes are made.
struct Node {
    expr: Expr,
    depth: usize,
    /// Where the operand was written, parentheses included; `expr.span` leaves them out like
    /// Python does, but an enclosing node must cover them.
    outer: Span,
}

struct Builder<'t> {
    base: usize,
    /// The expression's text.
    text: &'t str,
    /// Whether the text holds a comment.
    comments: bool,
}

impl Builder<'_> {
    /// The pair's place without trailing whitespace and comments: pest puts the whitespace
    /// skipped before an optional or repeated part that then matched nothing inside the rule.
    /// Without comments that is only whitespace, cut off the text; otherwise the end is taken
    /// from the pair's last token, a walk down the tree.
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let pest = pair.as_span();
        let end = if self.comments {
            let mut last = pair.clone();
            while let Some(child) = last.clone().into_inner().next_back() {
                last = child;
            }
            last.as_span().end()
        } else {
            let within = self.text.get(pest.start()..pest.end()).unwrap_or_default();
            pest.start() + within.trim_end_matches([' ', '\t', '\r', '\n']).len()
        };
        Span::new(self.base + pest.start(), self.base + end)
    }

    fn ident(&self, pair: &Pair<'_, Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(pair),
        }
    }

    /// A grammar rule showed up where the grammar does not allow it: a bug here, reported as an
    /// error rather than a panic because the input is user text.
    fn internal(&self, span: Span, rule: Rule) -> ParseError {
        error(
            span,
            format!("internal parser error: unexpected {rule:?} (please report this expression)"),
        )
    }

    fn node(&self, kind: ExprKind, span: Span, child_depth: usize) -> Result<Node, ParseError> {
        let depth = child_depth + 1;
        if depth > MAX_DEPTH {
            return Err(error(
                span,
                format!("expression is nested too deeply (more than {MAX_DEPTH} levels)"),
            ));
        }
        Ok(Node {
            expr: Expr { kind, span },
            depth,
            outer: span,
        })
    }

    fn leaf(&self, kind: ExprKind, pair: &Pair<'_, Rule>) -> Result<Node, ParseError> {
        self.node(kind, self.span(pair), 0)
    }

    /// Builds any expression-level pair. Levels that hold a single operand (most of them, in
    /// practice) are skipped in a loop, so the recursion depth per bracket stays small.
    fn expr(&self, pair: Pair<'_, Rule>) -> Result<Node, ParseError> {
        let outer = self.span(&pair);
        let mut node = self.expr_inner(pair)?;
        node.outer = outer;
        Ok(node)
    }

    fn expr_inner(&self, pair: Pair<'_, Rule>) -> Result<Node, ParseError> {
        let mut pair = pair;
        while is_passthrough(pair.as_rule()) {
            let mut inner = pair.clone().into_inner();
            match (inner.next(), inner.next()) {
                (Some(only), None) => pair = only,
                _ => break,
            }
        }
        match pair.as_rule() {
            Rule::test => self.conditional(pair),
            Rule::or_test => self.logical(pair, LogicalOp::Or),
            Rule::and_test => self.logical(pair, LogicalOp::And),
            Rule::not_test => self.not(pair),
            Rule::comparison => self.comparison(pair),
            Rule::arith | Rule::term => self.binary(pair),
            Rule::factor => self.unary(pair),
            Rule::power => self.power(pair),
            Rule::postfix => self.postfix(pair),
            Rule::int => self.int(&pair),
            Rule::float => self.float(&pair),
            Rule::string => {
                let value = decode_string(pair.as_str(), self.base + pair.as_span().start())?;
                self.leaf(ExprKind::Str(value), &pair)
            }
            Rule::constant => {
                let kind = match pair.as_str() {
                    "True" | "true" => ExprKind::Bool(true),
                    "False" | "false" => ExprKind::Bool(false),
                    _ => ExprKind::None,
                };
                self.leaf(kind, &pair)
            }
            Rule::name => self.leaf(ExprKind::Name(pair.as_str().to_string()), &pair),
            Rule::list_display => self.list(pair),
            Rule::paren_display => self.paren(pair),
            Rule::brace_display => self.brace(pair),
            rule => Err(self.internal(self.span(&pair), rule)),
        }
    }

    /// `a if c else b if d else e` = `a if c else (b if d else e)`: operands come as
    /// body, cond, body, cond, …, last orelse, and fold from the right.
    fn conditional(&self, pair: Pair<'_, Rule>) -> Result<Node, ParseError> {
        let mut operands = self.operands(pair.into_inner())?;
        let Some(mut acc) = operands.pop() else {
            return Err(self.internal(Span::default(), Rule::test));
        };
        while let (Some(cond), Some(body)) = (operands.pop(), operands.pop()) {
            let span = body.outer.to(acc.outer);
            let depth = body.depth.max(cond.depth).max(acc.depth);
            let kind = ExprKind::IfElse {
                body: Box::new(body.expr),
                cond: Box::new(cond.expr),
                orelse: Box::new(acc.expr),
            };
            acc = self.node(kind, span, depth)?;
        }
        Ok(acc)
    }

    /// Builds the operand children of a chain, skipping keyword tokens.
    fn operands(&self, pairs: Pairs<'_, Rule>) -> Result<Vec<Node>, ParseError> {
        pairs
            .filter(|pair| !matches!(pair.as_rule(), Rule::kw_if | Rule::kw_else))
            .map(|pair| self.expr(pair))
            .collect()
    }

    /// `a and b and c`: one node holding every operand, so a long chain is no deeper than a
    /// short one.
    fn logical(&self, pair: Pair<'_, Rule>, op: LogicalOp) -> Result<Node, ParseError> {
        let span = self.span(&pair);
        let mut depth = 0;
        let mut operands = Vec::new();
        for child in pair.into_inner() {
            if matches!(child.as_rule(), Rule::kw_and | Rule::kw_or) {
                continue;
            }
            let operand = self.expr(child)?;
            depth = depth.max(operand.depth);
            operands.push(operand.expr);
        }
        if operands.len() < 2 {
            return Err(self.internal(span, Rule::or_test));
        }
        self.node(ExprKind::Logical(op, operands), span, depth)
    }

    fn not(&self, pair: Pair<'_, Rule>) -> Result<Node, ParseError> {
        let mut nots = Vec::new();
        let mut operand = None;
        for child in pair.into_inner() {
            match child.as_rule() {
                Rule::kw_not => nots.push(self.span(&child)),
                _ => operand = Some(self.expr(child)?),
            }
        }
        let Some(mut acc) = operand else {
            return Err(self.internal(Span::default(), Rule::not_test));
        };
        for not_span in nots.into_iter().rev() {
            let span = not_span.to(acc.outer);
            let depth = acc.depth;
            acc = self.node(ExprKind::Not(Box::new(acc.expr)), span, depth)?;
        }
        Ok(acc)
    }

    fn comparison(&self, pair: Pair<'_, Rule>) -> Result<Node, ParseError> {
        let span = self.span(&pair);
        let mut children = pair.into_inner();
        let Some(first) = children.next() else {
            return Err(self.internal(span, Rule::comparison));
        };
        let first = self.expr(first)?;
        let mut depth = first.depth;
        let mut rest = Vec::new();
        while let (Some(op), Some(operand)) = (children.next(), children.next()) {
            let op = self.cmp_op(op)?;
            let operand = self.expr(operand)?;
            depth = depth.max(operand.depth);
            rest.push((op, operand.expr));
        }
        self.node(ExprKind::Compare(Box::new(first.expr), rest), span, depth)
    }

    fn cmp_op(&self, pair: Pair<'_, Rule>) -> Result<CmpOp, ParseError> {
        let span = self.span(&pair);
        let rule = pair.into_inner().next().map(|op| op.as_rule());
        Ok(match rule {
            Some(Rule::eq) => CmpOp::Eq,
            Some(Rule::ne) => CmpOp::NotEq,
            Some(Rule::lt) => CmpOp::Lt,
            Some(Rule::le) => CmpOp::LtE,
            Some(Rule::gt) => CmpOp::Gt,
            Some(Rule::ge) => CmpOp::GtE,
            Some(Rule::kw_in) => CmpOp::In,
            Some(Rule::not_in) => CmpOp::NotIn,
            Some(Rule::kw_is) => CmpOp::Is,
            Some(Rule::is_not) => CmpOp::IsNot,
            _ => return Err(self.internal(span, Rule::comp_op)),
        })
    }

    /// `+ -` and `* / // %` chains, applied from the left: one node for the whole chain, so
    /// its length does not count as nesting.
    fn binary(&self, pair: Pair<'_, Rule>) -> Result<Node, ParseError> {
        let span = self.span(&pair);
        let mut children = pair.into_inner();
        let Some(first) = children.next() else {
            return Err(self.internal(span, Rule::arith));
        };
        let first = self.expr(first)?;
        let mut depth = first.depth;
        let mut operations = Vec::new();
        while let (Some(op), Some(rhs)) = (children.next(), children.next()) {
            let op = match op.as_str() {
                "+" => BinOp::Add,
                "-" => BinOp::Sub,
                "*" => BinOp::Mul,
                "/" => BinOp::Div,
                "//" => BinOp::FloorDiv,
                "%" => BinOp::Mod,
                _ => return Err(self.internal(self.span(&op), op.as_rule())),
            };
            let rhs = self.expr(rhs)?;
            depth = depth.max(rhs.depth);
            operations.push(Operation {
                op,
                span: first.outer.to(rhs.outer),
                rhs: rhs.expr,
            });
        }
        let span = operations
            .last()
            .map_or(first.outer, |last| first.outer.to(last.span));
        self.node(
            ExprKind::Binary(Box::new(first.expr), operations),
            span,
            depth,
        )
    }

    fn unary(&self, pair: Pair<'_, Rule>) -> Result<Node, ParseError> {
        let mut ops = Vec::new();
        let mut operand = None;
        for child in pair.into_inner() {
            match child.as_rule() {
                Rule::unary_op => ops.push(self.unary_op(&child)),
                _ => operand = Some(self.expr(child)?),
            }
        }
        let Some(operand) = operand else {
            return Err(self.internal(Span::default(), Rule::factor));
        };
        self.apply_unary(ops, operand)
    }

    fn unary_op(&self, pair: &Pair<'_, Rule>) -> (UnaryOp, Span) {
        let op = if pair.as_str() == "-" {
            UnaryOp::Neg
        } else {
            UnaryOp::Pos
        };
        (op, self.span(pair))
    }

    /// Applies prefix operators, the innermost (last written) first.
    fn apply_unary(&self, ops: Vec<(UnaryOp, Span)>, operand: Node) -> Result<Node, ParseError> {
        let mut acc = operand;
        for (op, op_span) in ops.into_iter().rev() {
            let span = op_span.to(acc.outer);
            let depth = acc.depth;
            acc = self.node(ExprKind::Unary(op, Box::new(acc.expr)), span, depth)?;
        }
        Ok(acc)
    }

    /// `a ** -b ** c` = `a ** (-(b ** c))`: each operand after `**` carries the prefix
    /// operators written before it, and the chain folds from the right.
    fn power(&self, pair: Pair<'_, Rule>) -> Result<Node, ParseError> {
        let mut segments: Vec<(Vec<(UnaryOp, Span)>, Node)> = Vec::new();
        let mut ops = Vec::new();
        for child in pair.into_inner() {
            match child.as_rule() {
                Rule::pow_op => {}
                Rule::unary_op => ops.push(self.unary_op(&child)),
                _ => segments.push((std::mem::take(&mut ops), self.expr(child)?)),
            }
        }
        let Some((last_ops, last)) = segments.pop() else {
            return Err(self.internal(Span::default(), Rule::power));
        };
        let mut acc = self.apply_unary(last_ops, last)?;
        while let Some((ops, base)) = segments.pop() {
            let span = base.outer.to(acc.outer);
            let depth = base.depth.max(acc.depth);
            let power = Operation {
                op: BinOp::Pow,
                rhs: acc.expr,
                span,
            };
            let kind = ExprKind::Binary(Box::new(base.expr), vec![power]);
            acc = self.apply_unary(ops, self.node(kind, span, depth)?)?;
        }
        Ok(acc)
    }

    /// An atom followed by calls, subscripts and attribute accesses, applied left to right.
    fn postfix(&self, pair: Pair<'_, Rule>) -> Result<Node, ParseError> {
        let span = self.span(&pair);
        let mut children = pair.into_inner();
        let Some(atom) = children.next() else {
            return Err(self.internal(span, Rule::postfix));
        };
        let mut acc = self.expr(atom)?;
        for trailer in children {
            let span = acc.outer.to(self.span(&trailer));
            acc = match trailer.as_rule() {
                Rule::attr => {
                    let Some(name) = trailer
                        .into_inner()
                        .find(|p| p.as_rule() == Rule::attr_name)
                    else {
                        return Err(self.internal(span, Rule::attr));
                    };
                    let depth = acc.depth;
                    self.node(
                        ExprKind::Attr(Box::new(acc.expr), self.ident(&name)),
                        span,
                        depth,
                    )?
                }
                Rule::call => self.call(acc, trailer, span)?,
                Rule::subscript => self.subscript(acc, trailer, span)?,
                rule => return Err(self.internal(span, rule)),
            };
        }
        Ok(acc)
    }

    fn call(&self, func: Node, pair: Pair<'_, Rule>, span: Span) -> Result<Node, ParseError> {
        let mut args: Vec<Arg> = Vec::new();
        let mut generators = Vec::new();
        let mut generators_span: Option<Span> = None;
        let mut depth = func.depth;
        for child in pair.into_inner() {
            match child.as_rule() {
                Rule::argument => {
                    generators_span.get_or_insert(self.span(&child));
                    let (arg, arg_depth) = self.argument(child, &args)?;
                    depth = depth.max(arg_depth);
                    args.push(arg);
                }
                Rule::comp_for => {
                    let end = self.span(&child);
                    generators_span = generators_span.map(|start| start.to(end));
                    let (generator, gen_depth) = self.comp_for(child)?;
                    depth = depth.max(gen_depth);
                    generators.push(generator);
                }
                _ => {}
            }
        }
        if !generators.is_empty() {
            // `f(x for x in xs)`: a generator expression as the only argument (the grammar
            // allows nothing else), evaluated eagerly like the list comprehension it equals.
            let elt = match args.pop() {
                Some(Arg {
                    keyword: None,
                    value,
                }) => value,
                Some(Arg {
                    keyword: Some(keyword),
                    ..
                }) => {
                    return Err(error(
                        keyword.span,
                        "a generator expression cannot be a keyword argument",
                    ));
                }
                None => return Err(self.internal(span, Rule::comp_for)),
            };
            let comp_span = generators_span.unwrap_or(elt.span);
            let comp = self.node(
                ExprKind::ListComp {
                    elt: Box::new(elt),
                    generators,
                },
                comp_span,
                depth,
            )?;
            depth = comp.depth;
            args.push(Arg {
                keyword: None,
                value: comp.expr,
            });
        }
        self.node(
            ExprKind::Call {
                func: Box::new(func.expr),
                args,
            },
            span,
            depth,
        )
    }

    /// One call argument; `before` are the arguments already read, to apply Python's rules on
    /// their order.
    fn argument(&self, pair: Pair<'_, Rule>, before: &[Arg]) -> Result<(Arg, usize), ParseError> {
        let span = self.span(&pair);
        let Some(inner) = pair.into_inner().next() else {
            return Err(self.internal(span, Rule::argument));
        };
        if inner.as_rule() != Rule::kwarg {
            if before.iter().any(|arg| arg.keyword.is_some()) {
                return Err(error(span, "positional argument follows keyword argument"));
            }
            let value = self.expr(inner)?;
            return Ok((
                Arg {
                    keyword: None,
                    value: value.expr,
                },
                value.depth,
            ));
        }
        let mut parts = inner.into_inner().filter(|p| p.as_rule() != Rule::assign);
        let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
            return Err(self.internal(span, Rule::kwarg));
        };
        let keyword = self.ident(&name);
        let repeated = before
            .iter()
            .filter_map(|arg| arg.keyword.as_ref())
            .any(|k| k.name == keyword.name);
        if repeated {
            return Err(error(
                keyword.span,
                format!("keyword argument repeated: `{}`", keyword.name),
            ));
        }
        let value = self.expr(value)?;
        Ok((
            Arg {
                keyword: Some(keyword),
                value: value.expr,
            },
            value.depth,
        ))
    }

    fn subscript(&self, value: Node, pair: Pair<'_, Rule>, span: Span) -> Result<Node, ParseError> {
        let mut depth = value.depth;
        let mut colons = 0;
        let (mut lower, mut upper, mut step) = (None, None, None);
        for child in pair.into_inner() {
            let slot = match child.as_rule() {
                Rule::colon => {
                    colons += 1;
                    continue;
                }
                Rule::lower => &mut lower,
                Rule::upper => &mut upper,
                Rule::step => &mut step,
                _ => continue,
            };
            let child_span = self.span(&child);
            let Some(inner) = child.into_inner().next() else {
                return Err(self.internal(child_span, Rule::subscript));
            };
            let bound = self.expr(inner)?;
            depth = depth.max(bound.depth);
            *slot = Some(Box::new(bound.expr));
        }
        let kind = match (colons, lower) {
            (0, Some(index)) => ExprKind::Index(Box::new(value.expr), index),
            (0, None) => return Err(self.internal(span, Rule::subscript)),
            (_, lower) => ExprKind::Slice {
                value: Box::new(value.expr),
                lower,
                upper,
                step,
            },
        };
        self.node(kind, span, depth)
    }

    fn int(&self, pair: &Pair<'_, Rule>) -> Result<Node, ParseError> {
        let digits: String = pair.as_str().chars().filter(|&c| c != '_').collect();
        if digits.len() > 1 && digits.starts_with('0') && digits.bytes().any(|b| b != b'0') {
            return Err(error(
                self.span(pair),
                "leading zeros are not allowed in integer literals",
            ));
        }
        match digits.parse::<i64>() {
            Ok(value) => self.leaf(ExprKind::Int(value), pair),
            Err(_) => Err(error(
                self.span(pair),
                format!(
                    "integer literal `{}` is too large (integers are 64-bit, at most {})",
                    pair.as_str(),
                    i64::MAX
                ),
            )),
        }
    }

    fn float(&self, pair: &Pair<'_, Rule>) -> Result<Node, ParseError> {
        let text: String = pair.as_str().chars().filter(|&c| c != '_').collect();
        match text.parse::<f64>() {
            Ok(value) => self.leaf(ExprKind::Float(value), pair),
            Err(_) => Err(error(
                self.span(pair),
                format!("invalid float literal `{}`", pair.as_str()),
            )),
        }
    }

    /// Elements of a display: operand children only (brackets and commas dropped), plus the
    /// comprehension clauses if there are any.
    fn display_items(
        &self,
        pair: Pair<'_, Rule>,
    ) -> Result<(Vec<Node>, Vec<Comprehension>, usize, bool), ParseError> {
        let mut items = Vec::new();
        let mut generators = Vec::new();
        let mut depth = 0;
        let mut saw_separator = false;
        for child in pair.into_inner() {
            match child.as_rule() {
                Rule::test => {
                    let item = self.expr(child)?;
                    depth = depth.max(item.depth);
                    items.push(item);
                }
                Rule::comp_for => {
                    let (generator, gen_depth) = self.comp_for(child)?;
                    depth = depth.max(gen_depth);
                    generators.push(generator);
                }
                Rule::comma | Rule::colon => saw_separator = true,
                _ => {}
            }
        }
        Ok((items, generators, depth, saw_separator))
    }

    fn comprehension(
        &self,
        mut items: Vec<Node>,
        generators: Vec<Comprehension>,
        span: Span,
        depth: usize,
    ) -> Result<Node, ParseError> {
        let Some(elt) = items.pop() else {
            return Err(self.internal(span, Rule::comp_for));
        };
        self.node(
            ExprKind::ListComp {
                elt: Box::new(elt.expr),
                generators,
            },
            span,
            depth,
        )
    }

    fn list(&self, pair: Pair<'_, Rule>) -> Result<Node, ParseError> {
        let span = self.span(&pair);
        let (items, generators, depth, _) = self.display_items(pair)?;
        if !generators.is_empty() {
            return self.comprehension(items, generators, span, depth);
        }
        let items = items.into_iter().map(|item| item.expr).collect();
        self.node(ExprKind::List(items), span, depth)
    }

    /// `(a)` is `a` itself; `()`, `(a,)` and `(a, b)` are tuples; `(x for x in xs)` is a
    /// generator expression, built as the equivalent list comprehension.
    fn paren(&self, pair: Pair<'_, Rule>) -> Result<Node, ParseError> {
        let span = self.span(&pair);
        let (mut items, generators, depth, has_comma) = self.display_items(pair)?;
        if !generators.is_empty() {
            return self.comprehension(items, generators, span, depth);
        }
        if !has_comma
            && items.len() == 1
            && let Some(inner) = items.pop()
        {
            return Ok(inner);
        }
        let items = items.into_iter().map(|item| item.expr).collect();
        self.node(ExprKind::Tuple(items), span, depth)
    }

    /// `{}` and `{k: v, …}` are dicts, `{a, …}` is a set.
    fn brace(&self, pair: Pair<'_, Rule>) -> Result<Node, ParseError> {
        let span = self.span(&pair);
        let is_dict = pair
            .clone()
            .into_inner()
            .all(|child| child.as_rule() != Rule::test)
            || pair
                .clone()
                .into_inner()
                .any(|child| child.as_rule() == Rule::colon);
        let (items, _, depth, _) = self.display_items(pair)?;
        let mut items = items.into_iter().map(|item| item.expr);
        if !is_dict {
            return self.node(ExprKind::Set(items.collect()), span, depth);
        }
        let mut entries = Vec::new();
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            entries.push((key, value));
        }
        self.node(ExprKind::Dict(entries), span, depth)
    }

    fn comp_for(&self, pair: Pair<'_, Rule>) -> Result<(Comprehension, usize), ParseError> {
        let span = self.span(&pair);
        let mut targets = Vec::new();
        let mut iter = None;
        let mut ifs = Vec::new();
        let mut depth = 0;
        for child in pair.into_inner() {
            match child.as_rule() {
                Rule::targets => targets.extend(
                    child
                        .into_inner()
                        .filter(|p| p.as_rule() == Rule::name)
                        .map(|p| self.ident(&p)),
                ),
                Rule::comp_if => {
                    let child_span = self.span(&child);
                    let Some(cond) = child.into_inner().find(|p| p.as_rule() == Rule::or_test)
                    else {
                        return Err(self.internal(child_span, Rule::comp_if));
                    };
                    let cond = self.expr(cond)?;
                    depth = depth.max(cond.depth);
                    ifs.push(cond.expr);
                }
                Rule::or_test => {
                    let node = self.expr(child)?;
                    depth = depth.max(node.depth);
                    iter = Some(node.expr);
                }
                _ => {}
            }
        }
        let Some(iter) = iter else {
            return Err(self.internal(span, Rule::comp_for));
        };
        Ok((Comprehension { targets, iter, ifs }, depth))
    }
}

/// Precedence levels that only wrap their operand when no operator of that level was written.
fn is_passthrough(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::test
            | Rule::or_test
            | Rule::and_test
            | Rule::not_test
            | Rule::comparison
            | Rule::arith
            | Rule::term
            | Rule::factor
            | Rule::power
            | Rule::postfix
    )
}

/// Decodes a quoted literal (quotes included) with Python's escapes. `start` is the absolute
/// offset of the opening quote, for error spans. Unknown escapes keep their backslash, as in
/// Python.
fn decode_string(literal: &str, start: usize) -> Result<String, ParseError> {
    let inner = literal
        .get(1..literal.len().saturating_sub(1))
        .unwrap_or_default();
    let inner_start = start + 1;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some((_, escape)) = chars.next() else {
            out.push('\\');
            break;
        };
        match escape {
            '\n' => {}
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            '0'..='7' => {
                let mut value = escape.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.peek().and_then(|&(_, d)| d.to_digit(8)) {
                        Some(d) => {
                            value = value * 8 + d;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(value).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            'x' | 'u' | 'U' => {
                let width = match escape {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let mut value = 0u32;
                let mut end = i + 2;
                for _ in 0..width {
                    match chars
                        .peek()
                        .and_then(|&(j, d)| d.to_digit(16).map(|d| (j, d)))
                    {
                        Some((j, d)) => {
                            value = value * 16 + d;
                            end = j + 1;
                            chars.next();
                        }
                        None => {
                            return Err(error(
                                Span::new(inner_start + i, inner_start + end),
                                format!("invalid `\\{escape}` escape: expected {width} hex digits"),
                            ));
                        }
                    }
                }
                let Some(decoded) = char::from_u32(value) else {
                    return Err(error(
                        Span::new(inner_start + i, inner_start + end),
                        format!("`\\{escape}` escape is not a valid Unicode character"),
                    ));
                };
                out.push(decoded);
            }
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}
