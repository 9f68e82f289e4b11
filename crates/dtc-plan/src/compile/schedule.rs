//! Field schedules: which fields of a streaming aggregate an event can update (see
//! [`FieldSchedule`]).

use dtc_lang::ast::CmpOp;
use indexmap::IndexMap;

use crate::plan::{CExpr, FieldPlan, FieldSchedule, ScheduledField, Slot};
use crate::value::{Str, Value};

/// A `When` that is false unless source path `path` holds one of `strings`.
struct Guard {
    path: u32,
    strings: Vec<Str>,
    /// The guard is the whole `When`, not only its first condition.
    whole: bool,
}

/// The schedule of `fields`, guarded on the source path most of their `When`s test. Built in
/// time proportional to the fields and the schedule's size, whatever the number of paths and
/// strings the guards use.
pub(crate) fn schedule(fields: &[FieldPlan]) -> FieldSchedule {
    let guards: Vec<Option<Guard>> = fields
        .iter()
        .map(|f| f.when.as_ref().and_then(guard))
        .collect();
    let mut counts: IndexMap<u32, usize> = IndexMap::new();
    for g in guards.iter().flatten() {
        *counts.entry(g.path).or_insert(0) += 1;
    }
    // Ties go to the path guarding an earlier field, so the choice does not depend on hashing.
    let best = counts
        .iter()
        .map(|(path, n)| (*path, *n))
        .reduce(|best, c| if c.1 > best.1 { c } else { best });
    let Some((path, _)) = best.filter(|&(_, n)| n >= 2) else {
        return FieldSchedule {
            path: None,
            cases: Vec::new(),
            otherwise: (0..fields.len()).map(|i| checked(i, true)).collect(),
        };
    };
    // Per string, in order of first appearance: the fields guarded by it, in field order.
    let mut guarded: IndexMap<Str, Vec<usize>> = IndexMap::new();
    for (i, g) in guards.iter().enumerate() {
        for s in on_path(g, path).iter().flat_map(|g| &g.strings) {
            let fields = guarded.entry(s.clone()).or_default();
            if fields.last() != Some(&i) {
                fields.push(i);
            }
        }
    }
    let otherwise: Vec<ScheduledField> = guards
        .iter()
        .enumerate()
        .filter(|(_, g)| on_path(g, path).is_none())
        .map(|(i, _)| checked(i, true))
        .collect();
    let cases = guarded
        .into_iter()
        .map(|(s, indices)| {
            // The guarded fields merged with the unguarded ones, keeping field order.
            let mut fields = Vec::with_capacity(indices.len() + otherwise.len());
            let mut rest = otherwise.iter().peekable();
            for i in indices {
                while let Some(u) = rest.next_if(|u| u.index < i) {
                    fields.push(*u);
                }
                let whole = on_path(&guards[i], path).is_some_and(|g| g.whole);
                fields.push(checked(i, !whole));
            }
            fields.extend(rest);
            (s, fields)
        })
        .collect();
    FieldSchedule {
        path: Some(path),
        cases,
        otherwise,
    }
}

fn on_path(guard: &Option<Guard>, path: u32) -> Option<&Guard> {
    guard.as_ref().filter(|g| g.path == path)
}

fn checked(index: usize, check_when: bool) -> ScheduledField {
    ScheduledField { index, check_when }
}

/// The guard a `When` starts with: `source.p == 'text'`, `source.p in ['a', 'b']`, or either
/// as the first operand of `and` (which is false whenever its first operand is).
fn guard(when: &CExpr) -> Option<Guard> {
    match when {
        CExpr::And(items) => guard(items.first()?).map(|g| Guard { whole: false, ..g }),
        CExpr::Compare(left, rest) => {
            let (CExpr::Load(Slot::SourcePath(path)), [(op, right)]) = (&**left, rest.as_slice())
            else {
                return None;
            };
            let strings = match (op, right) {
                (CmpOp::Eq, CExpr::Const(Value::Str(s))) => vec![s.clone()],
                (CmpOp::In, CExpr::List(items) | CExpr::Tuple(items)) => items
                    .iter()
                    .map(|item| match item {
                        CExpr::Const(Value::Str(s)) => Some(s.clone()),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?,
                _ => return None,
            };
            Some(Guard {
                path: *path,
                strings,
                whole: true,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::FieldType;

    fn path_eq(path: u32, s: &str) -> CExpr {
        CExpr::Compare(
            Box::new(CExpr::Load(Slot::SourcePath(path))),
            vec![(CmpOp::Eq, CExpr::Const(Value::str(s)))],
        )
    }

    fn path_in(path: u32, items: &[&str]) -> CExpr {
        CExpr::Compare(
            Box::new(CExpr::Load(Slot::SourcePath(path))),
            vec![(
                CmpOp::In,
                CExpr::List(items.iter().map(|s| CExpr::Const(Value::str(s))).collect()),
            )],
        )
    }

    fn field(when: Option<CExpr>) -> FieldPlan {
        FieldPlan {
            name: "f".into(),
            ty: FieldType::Integer,
            column: 0,
            value: CExpr::Const(Value::Int(1)),
            when,
            error_id: 0,
        }
    }

    fn indices(fields: &[ScheduledField]) -> Vec<(usize, bool)> {
        fields.iter().map(|f| (f.index, f.check_when)).collect()
    }

    #[test]
    fn guarded_fields_are_found_by_their_string_in_field_order() {
        let more = CExpr::And(vec![path_eq(0, "end"), CExpr::Load(Slot::SourcePath(1))]);
        let fields = [
            field(Some(path_eq(0, "start"))),
            field(None),
            field(Some(more)),
            field(Some(path_in(0, &["start", "end"]))),
            field(Some(path_eq(1, "start"))),
        ];
        let s = schedule(&fields);
        assert_eq!(s.path, Some(0));
        let start = s.fields_for(Some(&Value::str("start")));
        assert_eq!(
            indices(start),
            [(0, false), (1, true), (3, false), (4, true)]
        );
        let end = s.fields_for(Some(&Value::str("end")));
        assert_eq!(indices(end), [(1, true), (2, true), (3, false), (4, true)]);
        for other in [
            Some(Value::str("purchase")),
            Some(Value::Int(1)),
            Some(Value::Null),
            None,
        ] {
            assert_eq!(
                indices(s.fields_for(other.as_ref())),
                [(1, true), (4, true)]
            );
        }
    }

    #[test]
    fn fewer_than_two_guards_on_a_path_schedule_every_field() {
        let fields = [
            field(Some(path_eq(0, "a"))),
            field(Some(path_eq(1, "b"))),
            field(None),
        ];
        let s = schedule(&fields);
        assert_eq!(s.path, None);
        assert_eq!(
            indices(s.fields_for(Some(&Value::str("a")))),
            [(0, true), (1, true), (2, true)]
        );
    }

    #[test]
    fn only_string_constants_and_source_paths_are_guards() {
        let int_eq = CExpr::Compare(
            Box::new(CExpr::Load(Slot::SourcePath(0))),
            vec![(CmpOp::Eq, CExpr::Const(Value::Int(1)))],
        );
        let field_eq = CExpr::Compare(
            Box::new(CExpr::Load(Slot::Field { agg: 0, column: 0 })),
            vec![(CmpOp::Eq, CExpr::Const(Value::str("a")))],
        );
        let not_eq = CExpr::Compare(
            Box::new(CExpr::Load(Slot::SourcePath(0))),
            vec![(CmpOp::NotEq, CExpr::Const(Value::str("a")))],
        );
        let or = CExpr::Or(vec![path_eq(0, "a"), path_eq(0, "b")]);
        for when in [int_eq, field_eq, not_eq, or] {
            assert!(guard(&when).is_none(), "{when:?}");
        }
    }
}
