//! A windowed fraud check: card payments counted per card per one-minute tumbling window, and
//! only each window's final count emitted (`suppress(until_window_closes)`), so a card with more
//! than three payments in a minute is flagged once, after its minute (plus grace) is over.
//!
//! `cargo run --release --example fraud` runs on a broker inside the process;
//! `-- --bootstrap HOST:PORT` on a standalone `rill broker` (or any Kafka cluster).
//!
//! Payments carry their event time as the record timestamp. Late payments (up to the 10 s grace)
//! still count; later ones are dropped and counted in `dropped_records`.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use rill::core::streams::runtime::StreamsConfig;
use rill::core::streams::serde::{I64Serde, Serde, StringSerde};
use rill::core::streams::window::TimeWindowedSerde;
use rill::dsl::{BufferConfig, StreamsBuilder, Suppressed, TimeWindows};

#[global_allocator]
static GLOBAL: rill::broker::alloc::GuardedAlloc = rill::broker::alloc::GuardedAlloc;

/// Payments as (card, amount, event time in ms from the start of the day).
const PAYMENTS: &[(&str, &str, i64)] = &[
    ("card-1", "12.00", 1_000),
    ("card-2", "3.50", 5_000),
    ("card-1", "99.00", 20_000),
    ("card-1", "250.00", 21_000),
    ("card-1", "1.00", 22_000),
    ("card-2", "8.00", 61_000),
    // A late payment for the first minute, within the grace period: it still counts.
    ("card-2", "4.00", 59_000),
    ("card-3", "40.00", 70_000),
    ("card-3", "41.00", 71_000),
    ("card-3", "42.00", 72_000),
    ("card-3", "43.00", 73_000),
    // Moves stream time past the second minute's end plus grace, closing it.
    ("card-9", "1.00", 200_000),
];

const MINUTE: i64 = 60_000;
const DAY_START: i64 = 1_763_769_600_000; // 2025-11-22T00:00:00Z

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let s = support::Setup::from_args("fraud").await?;
    let (payments, flagged, app_id) = (s.name("payments"), s.name("suspicious-cards"), s.name("fraud"));
    s.create_topics(&[&payments, &flagged], &[], 2).await?;

    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(&payments)
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(Duration::from_millis(MINUTE as u64), Duration::from_secs(10)))
        .count()
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .filter(|_, n| n.is_some_and(|n| n > 3))
        .to(&flagged);
    let built = builder.build(&app_id)?;
    println!("{}", built.topology.describe());
    let config = StreamsConfig::from_properties([
        ("application.id", app_id.as_str()),
        ("bootstrap.servers", s.bootstrap.as_str()),
        ("processing.guarantee", "exactly_once_v2"),
        ("state.dir", s.state_dir()?.as_str()),
    ])?;
    let mut app = built.into_streams(config);
    app.start().await?;

    let records: Vec<(&str, &str, Option<i64>)> =
        PAYMENTS.iter().map(|(c, a, t)| (*c, *a, Some(DAY_START + t))).collect();
    s.produce(&payments, &records).await?;

    // card-1 (4 payments in the first minute) and card-3 (4 in the second) are flagged, once.
    let keys = TimeWindowedSerde::new(StringSerde, MINUTE);
    let mut flagged_cards = Vec::new();
    s.read(&flagged, |r| {
        let w = keys.deserialize(r.key.as_deref().unwrap_or_default()).expect("a windowed key");
        let n = I64Serde.deserialize(r.value.as_deref().unwrap_or_default()).expect("a count");
        println!(
            "{}: {n} payments in the minute starting {} s into the day",
            w.key,
            (w.window.start - DAY_START) / 1000
        );
        flagged_cards.push(w.key);
        flagged_cards.len() >= 2
    })
    .await?;
    app.close(Duration::from_secs(30)).await?;
    println!("{} cards flagged", flagged_cards.len());
    s.finish().await
}
