//! Pattern subscriptions: which topics a `subscribe_pattern` regex stands for.
//!
//! A topic matches when the whole name matches, as Java's `Pattern.matcher(topic).matches()`
//! (the regex is anchored at both ends). With `exclude.internal.topics` (the default) internal
//! topics never match, whatever the pattern says.

use std::collections::BTreeMap;

use regex::Regex;

use crate::client::Metadata;
use crate::error::{Error, Result};

/// Kafka's internal topics, for brokers that do not flag them in Metadata.
const INTERNAL_TOPICS: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

/// A compiled topic pattern: matches whole topic names.
#[derive(Debug, Clone)]
pub struct TopicPattern {
    source: String,
    anchored: Regex,
}

impl TopicPattern {
    /// Compile `pattern`; a bad one is an [`Error::Config`] quoting it and saying why.
    pub fn new(pattern: &str) -> Result<Self> {
        let bad = |e: regex::Error| Error::Config(format!("invalid subscription pattern {pattern:?}: {e}"));
        // Compile it alone first: wrapping could otherwise make an unbalanced pattern such as
        // `a)|(b` valid.
        Regex::new(pattern).map_err(bad)?;
        let anchored = Regex::new(&format!("^(?:{pattern})$")).map_err(bad)?;
        Ok(Self { source: pattern.to_string(), anchored })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `topic` matches.
    pub fn matches(&self, topic: &str) -> bool {
        self.anchored.is_match(topic)
    }

    /// The topics of `md` that match, with their partition counts. Topics with an error are
    /// left out; so are internal topics when `exclude_internal`.
    pub fn resolve(&self, md: &Metadata, exclude_internal: bool) -> BTreeMap<String, i32> {
        md.topics
            .iter()
            .filter(|t| t.error_code == 0)
            .filter(|t| !(exclude_internal && (t.internal || INTERNAL_TOPICS.contains(&t.name.as_str()))))
            .filter(|t| self.matches(&t.name))
            .map(|t| (t.name.clone(), t.partitions.len() as i32))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{PartitionInfo, TopicInfo};

    fn topic(name: &str, partitions: i32, internal: bool, error_code: i16) -> TopicInfo {
        TopicInfo {
            name: name.into(),
            error_code,
            internal,
            partitions: (0..partitions)
                .map(|p| PartitionInfo {
                    partition: p,
                    leader: 0,
                    leader_epoch: 0,
                    replicas: vec![0],
                    isr: vec![0],
                    error_code: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn whole_name_matches_only() {
        let p = TopicPattern::new("orders-.*").unwrap();
        assert!(p.matches("orders-eu"));
        assert!(p.matches("orders-"));
        assert!(!p.matches("old-orders-eu"), "anchored at the start");
        assert!(!p.matches("orders"));
        let p = TopicPattern::new("a|b").unwrap();
        assert!(p.matches("a") && p.matches("b"));
        assert!(!p.matches("ab") && !p.matches("xa"), "alternation is anchored as a whole");
        let p = TopicPattern::new("orders").unwrap();
        assert!(!p.matches("orders-eu"), "no partial match");
        assert_eq!(p.as_str(), "orders");
    }

    #[test]
    fn bad_patterns_are_config_errors() {
        for bad in ["orders-[", "a)|(b", "(", "*x"] {
            match TopicPattern::new(bad) {
                Err(Error::Config(msg)) => {
                    assert!(msg.contains("invalid subscription pattern") && msg.contains(bad), "{msg}")
                }
                other => panic!("{bad}: expected a config error, got {other:?}"),
            }
        }
    }

    #[test]
    fn resolve_skips_errors_and_internal_topics() {
        let md = Metadata {
            topics: vec![
                topic("__consumer_offsets", 50, true, 0),
                topic("__transaction_state", 50, false, 0),
                topic("__other", 1, false, 0),
                topic("orders-eu", 3, false, 0),
                topic("orders-gone", 1, false, 3),
                topic("payments", 2, false, 0),
            ],
            ..Default::default()
        };
        let all = TopicPattern::new(".*").unwrap();
        let got = all.resolve(&md, true);
        assert_eq!(
            got,
            BTreeMap::from([("__other".to_string(), 1), ("orders-eu".to_string(), 3), ("payments".into(), 2)])
        );
        let got = all.resolve(&md, false);
        assert_eq!(got.len(), 5);
        assert_eq!(got["__consumer_offsets"], 50);
        let p = TopicPattern::new("__consumer_offsets").unwrap();
        assert!(p.resolve(&md, true).is_empty(), "excluded even when named exactly");
    }
}
