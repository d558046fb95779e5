//! Helpers shared by the clients' configurations, which take Kafka's property names.

/// The message for an unknown `kind` property (`producer`, `consumer`), suggesting the known one
/// it most likely meant.
pub(crate) fn unknown_property(kind: &str, name: &str, known: &[&str]) -> String {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['_', '-'], ".");
    let wanted = norm(name);
    let close = known.iter().find(|p| norm(p) == wanted || edit_distance(p, &wanted) <= 2);
    match close {
        Some(p) => format!("unknown {kind} property '{name}'; did you mean '{p}'?"),
        None => format!("unknown {kind} property '{name}'; known properties: {}", known.join(", ")),
    }
}

/// Levenshtein distance, for suggestions only.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_known_name() {
        let known = ["linger.ms", "batch.size"];
        assert!(unknown_property("producer", "linger_ms", &known).contains("did you mean 'linger.ms'"));
        assert!(unknown_property("producer", "lingr.ms", &known).contains("did you mean 'linger.ms'"));
        assert!(unknown_property("consumer", "zzz", &known).contains("known properties: linger.ms, batch.size"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
