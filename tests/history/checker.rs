//! The history checker: given what transactional producers did and what read_committed consumers
//! read, find the anomalies Kafka's transactions forbid (Jepsen's queue workload, for one broker).
//!
//! - aborted read: a record of an aborted transaction was read;
//! - lost write: a record of a committed transaction is missing from the final read;
//! - duplicate: a record read at two offsets;
//! - inconsistent offsets: two different records read at one offset;
//! - non-monotonic poll: one consumer session read a partition's offsets out of order;
//! - torn transaction: part of a transaction was read but not all of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};

/// How a transaction ended, as its producer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// commit_transaction returned Ok.
    Committed,
    /// abort_transaction returned Ok, or a newer instance fenced it before it committed.
    Aborted,
    /// The producer failed during the commit or dropped the transaction: either may have happened.
    Unknown,
}

/// One transaction: the record values it sent and how it ended.
#[derive(Debug, Clone)]
pub struct Txn {
    /// Record values (unique across the history).
    pub values: Vec<String>,
    /// The outcome.
    pub outcome: Outcome,
}

/// One record as a consumer read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Value.
    pub value: String,
}

/// Check a history. `sessions` are the reads of consumers while faults went on, each session one
/// consumer's polls in order; `final_read` is one complete read_committed pass at the end, after
/// every transaction was resolved. Returns every anomaly found, described.
pub fn check(txns: &[Txn], sessions: &[Vec<Read>], final_read: &[Read]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut owner: HashMap<&str, usize> = HashMap::new();
    for (i, t) in txns.iter().enumerate() {
        for v in &t.values {
            owner.insert(v, i);
        }
    }
    // Where each value sits, and what sits at each offset, across every read.
    let mut at_offset: BTreeMap<(i32, i64), &str> = BTreeMap::new();
    let mut where_value: HashMap<&str, (i32, i64)> = HashMap::new();
    for r in final_read.iter().chain(sessions.iter().flatten()) {
        match at_offset.get(&(r.partition, r.offset)) {
            Some(v) if *v != r.value => problems
                .push(format!("inconsistent offsets: {}@{} read as {v:?} and as {:?}", r.partition, r.offset, r.value)),
            _ => {
                at_offset.insert((r.partition, r.offset), &r.value);
            }
        }
        match where_value.get(r.value.as_str()) {
            Some(&(p, o)) if (p, o) != (r.partition, r.offset) => {
                problems.push(format!("duplicate: {:?} read at {p}@{o} and at {}@{}", r.value, r.partition, r.offset))
            }
            _ => {
                where_value.insert(&r.value, (r.partition, r.offset));
            }
        }
        match owner.get(r.value.as_str()) {
            None => problems.push(format!("unknown record {:?} read at {}@{}", r.value, r.partition, r.offset)),
            Some(&i) if txns[i].outcome == Outcome::Aborted => problems.push(format!(
                "aborted read: {:?} of aborted transaction {i} at {}@{}",
                r.value, r.partition, r.offset
            )),
            _ => {}
        }
    }
    for (s, session) in sessions.iter().enumerate() {
        let mut last: HashMap<i32, i64> = HashMap::new();
        for r in session {
            if let Some(&l) = last.get(&r.partition) {
                if r.offset <= l {
                    problems.push(format!(
                        "non-monotonic poll in session {s}: partition {} offset {} after {l}",
                        r.partition, r.offset
                    ));
                }
            }
            last.insert(r.partition, r.offset);
        }
    }
    let finals: HashMap<&str, ()> = final_read.iter().map(|r| (r.value.as_str(), ())).collect();
    for (i, t) in txns.iter().enumerate() {
        let seen = t.values.iter().filter(|v| finals.contains_key(v.as_str())).count();
        match t.outcome {
            Outcome::Committed if seen < t.values.len() => {
                problems.push(format!("lost write: committed transaction {i} has {seen} of {} records", t.values.len()))
            }
            Outcome::Unknown if seen != 0 && seen != t.values.len() => {
                problems.push(format!("torn transaction {i}: {seen} of {} records read", t.values.len()))
            }
            _ => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(vals: &[&str], outcome: Outcome) -> Txn {
        Txn { values: vals.iter().map(|s| s.to_string()).collect(), outcome }
    }
    fn read(p: i32, o: i64, v: &str) -> Read {
        Read { partition: p, offset: o, value: v.into() }
    }

    #[test]
    fn a_clean_history_passes_and_each_anomaly_is_found() {
        let txns = vec![
            txn(&["a", "b"], Outcome::Committed),
            txn(&["c"], Outcome::Aborted),
            txn(&["d", "e"], Outcome::Unknown),
        ];
        let good = vec![read(0, 0, "a"), read(1, 0, "b")];
        assert!(check(&txns, std::slice::from_ref(&good), &good).is_empty());
        let cases: Vec<(Vec<Read>, Vec<Read>, &str)> = vec![
            (vec![], vec![read(0, 0, "a"), read(1, 0, "b"), read(0, 2, "c")], "aborted read"),
            (vec![], vec![read(0, 0, "a")], "lost write"),
            (vec![], vec![read(0, 0, "a"), read(1, 0, "b"), read(1, 1, "b")], "duplicate"),
            (vec![read(0, 0, "b")], good.clone(), "inconsistent offsets"),
            (vec![read(0, 1, "x"), read(0, 0, "a")], good.clone(), "non-monotonic"),
            (vec![], vec![read(0, 0, "a"), read(1, 0, "b"), read(0, 1, "d")], "torn transaction"),
        ];
        for (session, fin, what) in cases {
            let problems = check(&txns, &[session], &fin);
            assert!(problems.iter().any(|p| p.starts_with(what)), "{what} not found in {problems:?}");
        }
    }
}
