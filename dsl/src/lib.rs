//! rill-dsl: write stream processing programs as typed Rust, the Kafka Streams DSL's way.
//!
//! A [`StreamsBuilder`] makes [`KStream`]s (every record an event), [`KTable`]s (the latest
//! value per key) and [`GlobalKTable`]s (a table replicated in full on every instance) from
//! topics; operators on them take closures; [`StreamsBuilder::build`] compiles the program to a
//! processor [`Topology`](rill_core::streams::topology::Topology) plus the internal topics the
//! runtime creates. The [`TopologyTestDriver`] runs it without a broker.
//!
//! ```
//! use rill_core::streams::serde::{I64Serde, StringSerde, UnitSerde};
//! use rill_dsl::{StreamsBuilder, TopologyTestDriver};
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream::<(), String>("text-lines")
//!     .flat_map_values(|line| line.to_lowercase().split_whitespace().map(str::to_string).collect::<Vec<_>>())
//!     .group_by(|_, word| word.clone())
//!     .count()
//!     .to_stream()
//!     .to("word-counts");
//! let driver = TopologyTestDriver::new(builder.build("wordcount")?)?;
//! let lines = driver.create_input_topic("text-lines", UnitSerde, StringSerde);
//! let counts = driver.create_output_topic("word-counts", StringSerde, I64Serde);
//! lines.pipe_input((), "to be or not to be".into())?;
//! let last: std::collections::BTreeMap<_, _> = counts.read_all().into_iter().collect();
//! assert_eq!(last["to"], 2);
//! assert_eq!(last["not"], 1);
//! # Ok::<(), rill_core::streams::error::StreamsError>(())
//! ```
//!
//! Serdes: each operator that writes bytes takes them from its config object ([`Consumed`],
//! [`Produced`], [`Grouped`], [`Materialized`], [`Repartitioned`]), else from the stream, else
//! from the type's default ([`serdes::default_serde`]).
//!
//! Nulls: Kafka keys and values may be null. A table is a changelog: [`KTable::to_stream`] gives
//! `Option<V>` values, `None` for deletes, and a table source reads null values as deletes.
//! Streams carry whatever type you read them as (read `Option<V>` to see null values).

mod builder;
mod config;
mod global_ktable;
mod grouped;
mod kstream;
mod ktable;
mod nulls;
mod processors;
pub mod serdes;
mod suppressed;
mod tap;
mod test_driver;
mod windowed;
mod windows;

pub use builder::{repartition_topic, BuiltTopology, InternalTopic, InternalTopicKind, Partitions, StreamsBuilder};
pub use config::{Consumed, Grouped, Materialized, Produced, Repartitioned};
pub use global_ktable::GlobalKTable;
pub use grouped::{CogroupedKStream, KGroupedStream, KGroupedTable};
pub use kstream::{Branches, KStream, SplitStream};
pub use ktable::{Change, ChangeSerde, KTable};
pub use suppressed::{BufferConfig, Suppressed, WhenFull};
pub use test_driver::{TestInputTopic, TestOutputTopic, TestRecord, TopologyTestDriver};
pub use windowed::{SessionWindowedKStream, TimeWindowedKStream, Windowing};
pub use windows::{EmitStrategy, JoinWindows, SessionWindows, SlidingWindows, TimeWindows};
