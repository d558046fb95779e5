//! Windowed aggregations on the test driver, table by table: inputs as (key, time) in arrival
//! order, and the exact updates Kafka Streams emits for them, with their timestamps.

use std::time::Duration;

use rill_core::streams::serde::{I64Serde, StringSerde};
use rill_core::streams::window::{SessionWindowedSerde, TimeWindowedSerde, Window, Windowed};
use rill_dsl::{
    EmitStrategy, Materialized, SessionWindows, SlidingWindows, StreamsBuilder, TimeWindows, TopologyTestDriver,
};

type Out = Vec<(String, i64, i64, Option<i64>, i64)>;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Pipe `(key, time)` records into "in"; read "out" as (key, start, end, count, timestamp).
fn run_time(windows_ms: i64, build: impl FnOnce(&StreamsBuilder), input: &[(&str, i64)]) -> (Out, u64) {
    let builder = StreamsBuilder::new();
    build(&builder);
    let driver = TopologyTestDriver::new(builder.build("app").unwrap()).unwrap();
    let pipe = driver.create_input_topic("in", StringSerde, StringSerde);
    for (k, t) in input {
        pipe.pipe_input_at(k.to_string(), "v".into(), *t).unwrap();
    }
    let out = driver.create_output_topic(
        "out",
        TimeWindowedSerde::new(StringSerde, windows_ms),
        rill_core::streams::serde::OptionSerde(I64Serde),
    );
    let got = out
        .read_records()
        .into_iter()
        .map(|r| (r.key.key.clone(), r.key.window.start, r.key.window.end, r.value, r.timestamp))
        .collect();
    (got, driver.dropped_records())
}

fn counts(windows: TimeWindows) -> impl FnOnce(&StreamsBuilder) {
    move |b: &StreamsBuilder| {
        b.stream::<String, String>("in").group_by_key().windowed_by(windows).count().to_stream().to("out");
    }
}

fn row(k: &str, start: i64, end: i64, n: i64, ts: i64) -> (String, i64, i64, Option<i64>, i64) {
    (k.to_string(), start, end, Some(n), ts)
}

#[test]
fn tumbling_windows_count_every_update() {
    let (got, dropped) = run_time(
        10,
        counts(TimeWindows::of_size_with_no_grace(ms(10))),
        &[("a", 0), ("a", 5), ("b", 7), ("a", 10), ("a", 12), ("a", 9)],
    );
    assert_eq!(
        got,
        vec![
            row("a", 0, 10, 1, 0),
            row("a", 0, 10, 2, 5),
            row("b", 0, 10, 1, 7),
            row("a", 10, 20, 1, 10),
            row("a", 10, 20, 2, 12),
        ]
    );
    // a@9 came after stream time 12 closed [0, 10) (no grace).
    assert_eq!(dropped, 1);
}

#[test]
fn hopping_windows_count_a_record_in_each_window_holding_it() {
    let (got, _) = run_time(
        10,
        counts(TimeWindows::of_size_with_no_grace(ms(10)).advance_by(ms(5))),
        &[("a", 3), ("a", 7), ("a", 12)],
    );
    assert_eq!(
        got,
        vec![
            row("a", 0, 10, 1, 3),
            row("a", 0, 10, 2, 7),
            row("a", 5, 15, 1, 7),
            row("a", 5, 15, 2, 12),
            row("a", 10, 20, 1, 12),
        ]
    );
}

#[test]
fn grace_accepts_late_records_until_the_window_end_passes_stream_time_minus_grace() {
    let (got, dropped) = run_time(
        10,
        counts(TimeWindows::of_size_and_grace(ms(10), ms(5))),
        // 14: [0,10) still open (10 > 14 - 5); 15: closes it (10 <= 10).
        &[("a", 1), ("a", 14), ("a", 2), ("a", 15), ("a", 3)],
    );
    assert_eq!(
        got,
        // A window's result carries the largest timestamp in it: a@2 leaves [0,10) at 2.
        vec![row("a", 0, 10, 1, 1), row("a", 10, 20, 1, 14), row("a", 0, 10, 2, 2), row("a", 10, 20, 2, 15)]
    );
    assert_eq!(dropped, 1);
}

#[test]
fn on_window_close_emits_each_final_result_once() {
    let build = |b: &StreamsBuilder| {
        b.stream::<String, String>("in")
            .group_by_key()
            .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(2)))
            .emit_strategy(EmitStrategy::OnWindowClose)
            .count()
            .to_stream()
            .to("out");
    };
    let (got, _) = run_time(10, build, &[("b", 1), ("a", 5), ("a", 9), ("a", 11), ("c", 12), ("a", 25)]);
    // Stream time 12 closes [0,10) (10 <= 12 - 2); 25 closes [10,20).
    assert_eq!(
        got,
        vec![row("a", 0, 10, 2, 9), row("b", 0, 10, 1, 1), row("a", 10, 20, 1, 11), row("c", 10, 20, 1, 12)]
    );
}

#[test]
fn sliding_windows_follow_the_records() {
    let build = |b: &StreamsBuilder| {
        b.stream::<String, String>("in")
            .group_by_key()
            .windowed_by(SlidingWindows::of_time_difference_with_no_grace(ms(10)))
            .count()
            .to_stream()
            .to("out");
    };
    let (got, _) = run_time(10, build, &[("a", 10), ("a", 15)]);
    // a@10: its left window [0,10]. a@15: the right window of a@10 ([11,21]) now holds a@15,
    // then a@15's left window [5,15] holds both.
    assert_eq!(got, vec![row("a", 0, 10, 1, 10), row("a", 11, 21, 1, 15), row("a", 5, 15, 2, 15)]);
}

#[test]
fn sliding_windows_update_later_windows_for_an_out_of_order_record() {
    let build = |b: &StreamsBuilder| {
        b.stream::<String, String>("in")
            .group_by_key()
            .windowed_by(SlidingWindows::of_time_difference_and_grace(ms(10), ms(100)))
            .count()
            .to_stream()
            .to("out");
    };
    let (got, _) = run_time(10, build, &[("a", 10), ("a", 20), ("a", 15)]);
    assert_eq!(
        got,
        vec![
            // a@10
            row("a", 0, 10, 1, 10),
            // a@20: a@10's right window [11,21], then its own left window [10,20] (holds a@10).
            row("a", 11, 21, 1, 20),
            row("a", 10, 20, 2, 20),
            // a@15: updates [10,20] and [11,21]; creates its left window [5,15] (with a@10) and
            // its right window [16,26] (a copy of what is after it: a@20).
            row("a", 10, 20, 3, 20),
            row("a", 11, 21, 2, 20),
            row("a", 5, 15, 2, 15),
            row("a", 16, 26, 1, 20),
        ]
    );
}

/// Session windows: (key, start, end, new value or None for a tombstone, timestamp).
fn run_sessions(windows: SessionWindows, input: &[(&str, i64)]) -> (Out, u64) {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .group_by_key()
        .windowed_by(windows)
        .count_with(Materialized::as_("sessions"))
        .to_stream()
        .to("out");
    let driver = TopologyTestDriver::new(builder.build("app").unwrap()).unwrap();
    let pipe = driver.create_input_topic("in", StringSerde, StringSerde);
    for (k, t) in input {
        pipe.pipe_input_at(k.to_string(), "v".into(), *t).unwrap();
    }
    let out = driver.create_output_topic(
        "out",
        SessionWindowedSerde(StringSerde),
        rill_core::streams::serde::OptionSerde(I64Serde),
    );
    let got = out
        .read_records()
        .into_iter()
        .map(|r| (r.key.key.clone(), r.key.window.start, r.key.window.end, r.value, r.timestamp))
        .collect();
    (got, driver.dropped_records())
}

fn gone(k: &str, start: i64, end: i64) -> (String, i64, i64, Option<i64>, i64) {
    (k.to_string(), start, end, None, end)
}

#[test]
fn sessions_grow_merge_and_close() {
    let (got, dropped) = run_sessions(
        SessionWindows::of_inactivity_gap_with_no_grace(ms(5)),
        &[("a", 0), ("a", 3), ("a", 20), ("a", 10), ("b", 20), ("a", 14), ("a", 30), ("a", 12)],
    );
    assert_eq!(
        got,
        vec![
            row("a", 0, 0, 1, 0),
            // a@3 extends the session: the old one is deleted, the new one emitted.
            gone("a", 0, 0),
            row("a", 0, 3, 2, 3),
            row("a", 20, 20, 1, 20),
            // a@10 (stream time 20): its session would end at 10 < 20 - 0: dropped.
            row("b", 20, 20, 1, 20),
            // a@14: the session [20,20] starts more than the gap after it (20 > 14 + 5), so
            // a@14 would be a session of its own ending at 14 < 20: dropped.
            row("a", 30, 30, 1, 30),
        ]
    );
    // a@10, a@14 and a@12.
    assert_eq!(dropped, 3);
}

#[test]
fn a_record_bridging_two_sessions_merges_them() {
    let (got, _) =
        run_sessions(SessionWindows::of_inactivity_gap_and_grace(ms(5), ms(100)), &[("a", 0), ("a", 10), ("a", 5)]);
    assert_eq!(
        got,
        vec![row("a", 0, 0, 1, 0), row("a", 10, 10, 1, 10), gone("a", 0, 0), gone("a", 10, 10), row("a", 0, 10, 3, 10),]
    );
}

#[test]
fn windowed_keys_are_kafkas_bytes() {
    // The output key of a tumbling count is the key then the start (8 bytes, big-endian).
    let w = Windowed::new("k".to_string(), Window::new(60_000, 120_000));
    let bytes = rill_core::streams::serde::Serde::serialize(&TimeWindowedSerde::new(StringSerde, 60_000), &w).unwrap();
    assert_eq!(&bytes[..], &[b"k".as_slice(), &60_000i64.to_be_bytes()].concat()[..]);
}
