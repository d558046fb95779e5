//! Session analytics: page clicks grouped per user into sessions that end after 30 minutes of
//! inactivity; each session's click count is printed as it grows, and when a click bridges two
//! sessions they merge (the merged-away session is printed as closed).
//!
//! `cargo run --release --example sessions` runs on a broker inside the process;
//! `-- --bootstrap HOST:PORT` on a standalone `rill broker` (or any Kafka cluster).

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use rill::core::streams::runtime::StreamsConfig;
use rill::core::streams::serde::{I64Serde, Serde, StringSerde};
use rill::core::streams::window::SessionWindowedSerde;
use rill::dsl::{Materialized, SessionWindows, StreamsBuilder};

#[global_allocator]
static GLOBAL: rill::broker::alloc::GuardedAlloc = rill::broker::alloc::GuardedAlloc;

const MINUTE: i64 = 60_000;
const DAY_START: i64 = 1_763_769_600_000; // 2025-11-22T00:00:00Z

/// Clicks as (user, page, minutes into the day).
const CLICKS: &[(&str, &str, i64)] = &[
    ("ann", "/home", 0),
    ("ann", "/pricing", 5),
    ("bob", "/docs", 7),
    ("ann", "/signup", 50), // more than 30 minutes after /pricing: a new session
    ("ann", "/docs", 27),   // late, but bridges the two sessions: they merge
    ("bob", "/docs/joins", 20),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let s = support::Setup::from_args("sessions").await?;
    let (clicks, sessions, app_id) = (s.name("clicks"), s.name("sessions"), s.name("sessions-app"));
    s.create_topics(&[&clicks, &sessions], &[], 2).await?;

    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(&clicks)
        .group_by_key()
        .windowed_by(SessionWindows::of_inactivity_gap_and_grace(
            Duration::from_secs(30 * 60),
            Duration::from_secs(60 * 60),
        ))
        .count_with(Materialized::as_("sessions"))
        .to_stream()
        .to(&sessions);
    let built = builder.build(&app_id)?;
    let config = StreamsConfig::from_properties([
        ("application.id", app_id.as_str()),
        ("bootstrap.servers", s.bootstrap.as_str()),
        ("processing.guarantee", "exactly_once_v2"),
        ("state.dir", s.state_dir()?.as_str()),
    ])?;
    let mut app = built.into_streams(config);
    app.start().await?;
    let records: Vec<(&str, &str, Option<i64>)> =
        CLICKS.iter().map(|(u, p, m)| (*u, *p, Some(DAY_START + m * MINUTE))).collect();
    s.produce(&clicks, &records).await?;

    let keys = SessionWindowedSerde(StringSerde);
    let minutes = |t: i64| (t - DAY_START) / MINUTE;
    s.read(&sessions, |r| {
        let w = keys.deserialize(r.key.as_deref().unwrap_or_default()).expect("a session key");
        let span = format!("{}: minutes {}-{}", w.key, minutes(w.window.start), minutes(w.window.end));
        match r.value.as_deref().map(|v| I64Serde.deserialize(v)) {
            None => {
                println!("{span}: merged away");
                false
            }
            Some(Ok(n)) => {
                println!("{span}: {n} clicks");
                // Done once ann's sessions merged into one of four clicks.
                w.key == "ann" && n == 4
            }
            Some(Err(e)) => {
                println!("{span}: unreadable count ({e})");
                false
            }
        }
    })
    .await?;
    app.close(Duration::from_secs(30)).await?;
    s.finish().await
}
