//! Name rules and "did you mean" suggestions.

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions), on characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (i, row) in d.chunks_mut(width).enumerate() {
        if let Some(first) = row.first_mut() {
            *first = i;
        }
    }
    for (j, cell) in d.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

/// The candidate closest to `word` (ignoring case), if it is close enough to be a likely typo
/// or an abbreviation (`bool` for `boolean`).
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| {
            let candidate = c.to_lowercase();
            let abbreviates = lower.chars().count() >= 3 && candidate.starts_with(&lower);
            (
                if abbreviates {
                    1
                } else {
                    edit_distance(&lower, &candidate)
                },
                c,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `did you mean `x`?` for the closest candidate.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// Why `name` cannot name a spec, aggregate or field, if it cannot.
pub(crate) fn name_problem(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Some("names are identifiers: letters, digits and `_`, not starting with a digit");
    }
    if name.starts_with('_') {
        return Some(
            "names starting with `_` are reserved for built-in fields (`_start_time`, ...)",
        );
    }
    if name.starts_with("run_") {
        return Some("names starting with `run_` are reserved");
    }
    None
}

pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpositions_cost_one() {
        assert_eq!(edit_distance("Feilds", "Fields"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions_ignore_case_and_far_words() {
        assert_eq!(closest("fields", ["Name", "Fields"]), Some("Fields"));
        assert_eq!(closest("Colour", ["Name", "Fields"]), None);
    }

    #[test]
    fn reserved_and_malformed_names_are_refused() {
        assert!(name_problem("game_stats").is_none());
        assert!(name_problem("_x").is_some());
        assert!(name_problem("run_x").is_some());
        assert!(name_problem("1x").is_some());
        assert!(name_problem("a-b").is_some());
        assert!(name_problem("").is_some());
    }
}
