//! What an unparseable question gets instead of a guess: the example
//! questions of the templates that share most words with it.

/// The templates the grammar knows, as example questions.
pub const TEMPLATES: &[&str] = &[
    "who can delete vessels in Nordic Shipping",
    "what can victor do on port calls",
    "can olga update vessels",
    "why was bob denied yesterday at 14:02",
    "which requests were denied today",
    "how many requests did alice make last week",
    "which service accounts have keys older than 90 days",
    "which roles does alice have",
    "who has the role operator",
    "who is in the nordic-port-team group",
    "which users are locked",
    "list service accounts",
];

/// Words that say nothing about which template was meant.
const FILLER: &[&str] = &[
    "the", "a", "an", "in", "on", "of", "to", "do", "does", "did",
];

/// The three templates sharing most words with the question (ties: the
/// template order), never empty.
pub fn suggest(normalized: &str) -> Vec<&'static str> {
    let words: std::collections::BTreeSet<&str> = normalized
        .split(' ')
        .filter(|w| !w.is_empty() && !FILLER.contains(w))
        .collect();
    let mut scored: Vec<(usize, f64, &'static str)> = TEMPLATES
        .iter()
        .enumerate()
        .map(|(n, t)| {
            let lower = t.to_lowercase();
            let tw: std::collections::BTreeSet<&str> =
                lower.split(' ').filter(|w| !FILLER.contains(w)).collect();
            let common = words.iter().filter(|w| tw.contains(*w)).count() as f64;
            let union = (words.len() + tw.len()) as f64 - common;
            (n, if union > 0.0 { common / union } else { 0.0 }, *t)
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.into_iter().take(3).map(|(_, _, t)| t).collect()
}
