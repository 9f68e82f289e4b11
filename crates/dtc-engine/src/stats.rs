//! Counters a run reports in its summary.

/// Evaluation errors per spec field (docs/language.md section 10): the field kept its previous value.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors {
    /// Indexed by `FieldPlan::error_id`.
    pub counts: Vec<u64>,
    /// The first error message seen for each field, to show in the summary.
    pub first: Vec<Option<String>>,
}

impl FieldErrors {
    pub fn new(fields: usize) -> Self {
        FieldErrors {
            counts: vec![0; fields],
            first: vec![None; fields],
        }
    }

    pub fn record(&mut self, error_id: u32, message: impl FnOnce() -> String) {
        let i = error_id as usize;
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
            if let Some(slot @ None) = self.first.get_mut(i) {
                *slot = Some(message());
            }
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(field name, count, first message)` for the fields that had errors.
    pub fn nonzero<'a>(
        &'a self,
        names: &'a [String],
    ) -> impl Iterator<Item = (&'a str, u64, &'a str)> {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(move |(i, c)| {
                let name = names.get(i).map(String::as_str).unwrap_or("?");
                let first = self.first.get(i).and_then(|m| m.as_deref()).unwrap_or("");
                (name, *c, first)
            })
    }
}
