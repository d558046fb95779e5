//! KStream-KStream windowed joins on the test driver: the join-semantics example of the Kafka
//! Streams wiki (two streams of one key, nulls dropped), and left/outer results emitted only once
//! their window has closed.

use std::time::Duration;

use rill_core::streams::serde::{OptionSerde, StringSerde};
use rill_dsl::{JoinWindows, StreamsBuilder, TopologyTestDriver};

/// The wiki's inputs, all with key "k", in timestamp order: (time, side, value).
const WIKI: [(i64, bool, Option<&str>); 15] = [
    (1, true, None),
    (2, false, None),
    (3, true, Some("A")),
    (4, false, Some("a")),
    (5, true, Some("B")),
    (6, false, Some("b")),
    (7, true, None),
    (8, false, None),
    (9, true, Some("C")),
    (10, false, Some("c")),
    (11, false, None),
    (12, true, None),
    (13, false, None),
    (14, false, Some("d")),
    (15, true, Some("D")),
];

#[derive(Clone, Copy)]
enum Kind {
    Inner,
    Left,
    Outer,
}

fn show(v: Option<String>) -> String {
    v.unwrap_or_else(|| "null".into())
}

/// Run `kind` over `inputs`; (value, timestamp) of every result.
fn run(kind: Kind, window: u64, inputs: &[(i64, bool, Option<&str>)]) -> Vec<(String, i64)> {
    let builder = StreamsBuilder::new();
    let left = builder.stream::<String, String>("left");
    let right = builder.stream::<String, String>("right");
    let w = JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(window));
    let out = match kind {
        Kind::Inner => left.join_windowed(&right, |_, a, b| format!("{a}-{b}"), w),
        Kind::Left => left.left_join_windowed(&right, |_, a, b| format!("{a}-{}", show(b)), w),
        Kind::Outer => left.outer_join_windowed(&right, |_, a, b| format!("{}-{}", show(a), show(b)), w),
    };
    out.to("out");
    let driver = TopologyTestDriver::new(builder.build("app").unwrap()).unwrap();
    let l = driver.create_input_topic("left", StringSerde, OptionSerde(StringSerde));
    let r = driver.create_input_topic("right", StringSerde, OptionSerde(StringSerde));
    for (t, is_left, v) in inputs {
        let topic = if *is_left { &l } else { &r };
        topic.pipe_input_at("k".into(), v.map(str::to_string), *t).unwrap();
    }
    let o = driver.create_output_topic("out", StringSerde, StringSerde);
    o.read_records().into_iter().map(|r| (r.value, r.timestamp)).collect()
}

fn rows(v: &[(&str, i64)]) -> Vec<(String, i64)> {
    v.iter().map(|(s, t)| (s.to_string(), *t)).collect()
}

/// Inner join, all records in one window: every pair once, at the later timestamp; nulls
/// never join.
#[test]
fn inner_join_pairs_every_record_within_the_window() {
    assert_eq!(
        run(Kind::Inner, 100, &WIKI),
        rows(&[
            ("A-a", 4),
            ("B-a", 5),
            ("A-b", 6),
            ("B-b", 6),
            ("C-a", 9),
            ("C-b", 9),
            ("A-c", 10),
            ("B-c", 10),
            ("C-c", 10),
            ("A-d", 14),
            ("B-d", 14),
            ("C-d", 14),
            ("D-a", 15),
            ("D-b", 15),
            ("D-c", 15),
            ("D-d", 15),
        ])
    );
}

/// In one window every left record finds a partner, so the left and outer joins add nothing
/// (no early `A-null` as before KIP-633: an unmatched record waits until its window closes).
#[test]
fn left_and_outer_joins_emit_no_spurious_results_while_the_window_is_open() {
    let inner = run(Kind::Inner, 100, &WIKI);
    assert_eq!(run(Kind::Left, 100, &WIKI), inner);
    assert_eq!(run(Kind::Outer, 100, &WIKI), inner);
}

#[test]
fn an_unmatched_record_is_emitted_once_its_window_closes() {
    // Window 2: A@1 looks for right records in [0, 3]; none comes (b@5 pairs with B@4 only).
    // Stream time 5 closes A's window (1 + 2 < 5): A-null goes out at A's time, before the
    // record that closed it (b@5) is joined.
    let inputs = [(1, true, Some("A")), (4, true, Some("B")), (5, false, Some("b")), (8, false, Some("z"))];
    assert_eq!(run(Kind::Inner, 2, &inputs), rows(&[("B-b", 5)]));
    assert_eq!(run(Kind::Left, 2, &inputs), rows(&[("A-null", 1), ("B-b", 5)]));
    // Outer: z@8 waits too; nothing closes its window in this input.
    assert_eq!(run(Kind::Outer, 2, &inputs), rows(&[("A-null", 1), ("B-b", 5)]));
    let more = [inputs.as_slice(), &[(20, true, Some("Q"))]].concat();
    assert_eq!(run(Kind::Outer, 2, &more), rows(&[("A-null", 1), ("B-b", 5), ("null-z", 8)]));
}

#[test]
fn before_and_after_bound_the_window_asymmetrically() {
    // Right records may be up to 1 before and 5 after a left record.
    let builder = StreamsBuilder::new();
    let left = builder.stream::<String, String>("left");
    let right = builder.stream::<String, String>("right");
    let w = JoinWindows::of_time_difference_with_no_grace(Duration::ZERO)
        .before(Duration::from_millis(1))
        .after(Duration::from_millis(5));
    left.join_windowed(&right, |_, a, b| format!("{a}-{b}"), w).to("out");
    let driver = TopologyTestDriver::new(builder.build("app").unwrap()).unwrap();
    let l = driver.create_input_topic("left", StringSerde, StringSerde);
    let r = driver.create_input_topic("right", StringSerde, StringSerde);
    l.pipe_input_at("k".into(), "L".into(), 10).unwrap();
    for (v, t) in [("too-early", 8), ("just-before", 9), ("after", 15), ("too-late", 16)] {
        r.pipe_input_at("k".into(), v.into(), t).unwrap();
    }
    let o = driver.create_output_topic("out", StringSerde, StringSerde);
    assert_eq!(o.read_values(), ["L-just-before", "L-after"]);
}
