//! Stream-table enrichment: page views joined with user profiles, each view printed with the
//! profile its user had when the view was processed.
//!
//! `cargo run --release --example enrich` starts a broker inside this process, writes a few
//! profiles to a table topic, runs the topology and prints every enriched view; with
//! `-- --bootstrap HOST:PORT` the same application runs against a standalone `rill broker` (or
//! any Kafka cluster):
//!
//! ```sh
//! target/release/rill broker --data-dir ./rill-data --listen 127.0.0.1:9092 &
//! cargo run --release --example enrich -- --bootstrap 127.0.0.1:9092
//! ```
//!
//! The topology (`describe()` prints it): `user-profiles` -> table (a change-logged RocksDB
//! store); `page-views` (user -> page) -> left_join(profiles) -> `enriched-views`. Both topics
//! have the same partition count (the join checks it at start) and the same keys, so a view
//! and its user's profile are in the same task.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use rill::core::streams::runtime::StreamsConfig;
use rill::core::streams::serde::StringSerde;
use rill::dsl::{Consumed, Materialized, StreamsBuilder};

/// A program hosting a broker installs Rill's allocator (see `rill::broker::alloc`).
#[global_allocator]
static GLOBAL: rill::broker::alloc::GuardedAlloc = rill::broker::alloc::GuardedAlloc;

/// user -> "name, city".
const PROFILES: &[(&str, &str)] =
    &[("alice", "Alice, Lisbon"), ("bob", "Bob, Oslo"), ("carol", "Carol, Nairobi"), ("dan", "Dan, Lima")];

/// user -> page viewed (erin has no profile).
const VIEWS: &[(&str, &str)] = &[
    ("alice", "/home"),
    ("bob", "/pricing"),
    ("erin", "/home"),
    ("carol", "/docs/joins"),
    ("alice", "/cart"),
    ("dan", "/home"),
    ("bob", "/checkout"),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let s = support::Setup::from_args("enrich").await?;
    let (profiles, views, enriched, app_id) =
        (s.name("user-profiles"), s.name("page-views"), s.name("enriched-views"), s.name("enrich"));
    s.create_topics(&[&profiles, &views, &enriched], &[&profiles], 2).await?;
    let rows = |r: &[(&'static str, &'static str)]| r.iter().map(|(k, v)| (*k, *v, None)).collect::<Vec<_>>();
    s.produce(&profiles, &rows(PROFILES)).await?;

    let builder = StreamsBuilder::new();
    let table = builder.table_with::<String, String>(
        &profiles,
        Consumed::with(StringSerde, StringSerde),
        Materialized::as_("profiles").persistent(),
    );
    builder
        .stream::<String, String>(&views)
        .left_join(&table, |page, profile| format!("{page} viewed by {}", profile.as_deref().unwrap_or("(no profile)")))
        .to(&enriched);
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

    // A view joins the profile its user has when it is processed: let the table load first.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (user, profile) in PROFILES {
        while app.get::<String, String>("profiles", user.to_string()).await?.as_deref() != Some(*profile) {
            anyhow::ensure!(Instant::now() < deadline, "the profile table did not load in 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    s.produce(&views, &rows(VIEWS)).await?;

    let mut seen = 0;
    s.read(&enriched, |r| {
        let user = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
        let view = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
        println!("{user:>6}: {view}");
        seen += 1;
        seen >= VIEWS.len()
    })
    .await?;
    app.close(Duration::from_secs(30)).await?;
    println!("{seen} page views enriched");
    s.finish().await
}
