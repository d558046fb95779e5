//! The word count of Kafka Streams' quickstart on the TopologyTestDriver: the same output
//! sequence, the same shape of topology, the internal topics the runtime must create.

use rill_core::streams::serde::{I64Serde, StringSerde, UnitSerde};
use rill_dsl::{
    BuiltTopology, Grouped, InternalTopicKind, Materialized, Partitions, StreamsBuilder, TopologyTestDriver,
};

fn split(line: String) -> Vec<String> {
    line.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_string).collect()
}

fn word_count(named: bool) -> BuiltTopology {
    let builder = StreamsBuilder::new();
    let lines = builder.stream::<(), String>("text-lines").flat_map_values(split);
    let counts = if named {
        lines.group_by_with(|_, w| w.clone(), Grouped::named("words")).count_with(Materialized::as_("counts"))
    } else {
        lines.group_by(|_, w| w.clone()).count()
    };
    counts.to_stream().to("word-counts");
    builder.build("wordcount").unwrap()
}

#[test]
fn counts_come_out_as_kafka_streams_emits_them() {
    let driver = TopologyTestDriver::new(word_count(false)).unwrap();
    let lines = driver.create_input_topic("text-lines", UnitSerde, StringSerde);
    let counts = driver.create_output_topic("word-counts", StringSerde, I64Serde);
    for line in ["all streams lead to kafka", "hello kafka streams", "join kafka summit"] {
        lines.pipe_input((), line.to_string()).unwrap();
    }
    let expected = [
        ("all", 1),
        ("streams", 1),
        ("lead", 1),
        ("to", 1),
        ("kafka", 1),
        ("hello", 1),
        ("kafka", 2),
        ("streams", 2),
        ("join", 1),
        ("kafka", 3),
        ("summit", 1),
    ];
    let expected: Vec<(String, i64)> = expected.iter().map(|(w, n)| (w.to_string(), *n)).collect();
    assert_eq!(counts.read_all(), expected);
    assert!(counts.is_empty());
}

#[test]
fn the_store_holds_the_latest_counts_and_its_changelog_gets_every_commit() {
    let driver = TopologyTestDriver::new(word_count(true)).unwrap();
    let lines = driver.create_input_topic("text-lines", UnitSerde, StringSerde);
    lines.pipe_input_at((), "a b a".to_string(), 100).unwrap();
    lines.pipe_input_at((), "B".to_string(), 200).unwrap();
    let store = driver.key_value_store::<String, i64>("counts").unwrap();
    assert_eq!(store, vec![("a".to_string(), 2), ("b".to_string(), 2)]);
    // Without a cache every write is a changelog record; the driver commits after each input.
    let changelog = driver.create_output_topic("wordcount-counts-changelog", StringSerde, I64Serde);
    let kv = |k: &str, n| (k.to_string(), n);
    let records: Vec<_> = changelog.read_records().into_iter().map(|r| ((r.key, r.value), r.timestamp)).collect();
    // Stamped with the timestamp of the record that caused them.
    assert_eq!(records, vec![(kv("a", 1), 100), (kv("b", 1), 100), (kv("a", 2), 100), (kv("b", 2), 200)]);
    assert!(driver.key_value_store::<String, String>("counts").unwrap_err().to_string().contains("does not hold"));
    assert!(driver.key_value_store::<String, i64>("nope").is_err());
}

#[test]
fn a_cached_store_sends_one_change_per_key_per_commit() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<(), String>("text-lines")
        .flat_map_values(split)
        .group_by(|_, w| w.clone())
        .count_with(Materialized::as_("counts").with_caching(1 << 20))
        .to_stream()
        .to("word-counts");
    let driver = TopologyTestDriver::new(builder.build("wordcount").unwrap()).unwrap();
    let lines = driver.create_input_topic("text-lines", UnitSerde, StringSerde);
    lines.pipe_input((), "a b a".to_string()).unwrap();
    lines.pipe_input((), "B".to_string()).unwrap();
    let changelog = driver.create_output_topic("wordcount-counts-changelog", StringSerde, I64Serde);
    let kv = |k: &str, n| (k.to_string(), n);
    assert_eq!(changelog.read_all(), vec![kv("a", 2), kv("b", 1), kv("b", 2)]);
    // Downstream still sees every update (the DSL forwards as it writes).
    let counts = driver.create_output_topic("word-counts", StringSerde, I64Serde);
    assert_eq!(counts.read_all(), vec![kv("a", 1), kv("b", 1), kv("a", 2), kv("b", 2)]);
}

#[test]
fn the_topology_has_kafka_streams_shape() {
    let built = word_count(true);
    let text = built.topology.describe().to_string();
    let expected = "\
Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [text-lines])
      --> KSTREAM-FLATMAPVALUES-0000000001
    Processor: KSTREAM-FLATMAPVALUES-0000000001 (stores: [])
      --> KSTREAM-KEY-SELECT-0000000002
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-KEY-SELECT-0000000002 (stores: [])
      --> words-repartition-sink
      <-- KSTREAM-FLATMAPVALUES-0000000001
    Sink: words-repartition-sink (topic: wordcount-words-repartition)
      <-- KSTREAM-KEY-SELECT-0000000002

   Sub-topology: 1
    Source: words-repartition-source (topics: [wordcount-words-repartition])
      --> KSTREAM-AGGREGATE-0000000003
    Processor: KSTREAM-AGGREGATE-0000000003 (stores: [counts])
      --> KTABLE-TOSTREAM-0000000004
      <-- words-repartition-source
    Processor: KTABLE-TOSTREAM-0000000004 (stores: [])
      --> KSTREAM-SINK-0000000005
      <-- KSTREAM-AGGREGATE-0000000003
    Sink: KSTREAM-SINK-0000000005 (topic: word-counts)
      <-- KTABLE-TOSTREAM-0000000004

";
    assert_eq!(text, expected);

    let topics: Vec<_> =
        built.internal_topics.iter().map(|t| (t.name.as_str(), t.kind, t.partitions.clone())).collect();
    assert_eq!(
        topics,
        vec![
            (
                "wordcount-words-repartition",
                InternalTopicKind::Repartition,
                Partitions::MaxOf(vec!["text-lines".into()])
            ),
            (
                "wordcount-counts-changelog",
                InternalTopicKind::Changelog,
                Partitions::MaxOf(vec!["wordcount-words-repartition".into()])
            ),
        ]
    );
    let policy = |t: &rill_dsl::InternalTopic| t.configs.iter().find(|(k, _)| k == "cleanup.policy").unwrap().1.clone();
    assert_eq!(policy(&built.internal_topics[0]), "delete");
    assert_eq!(policy(&built.internal_topics[1]), "compact");
    assert!(built.copartition_groups.is_empty());
}

#[test]
fn unnamed_aggregations_take_their_repartition_topic_from_the_generated_store_name() {
    let built = word_count(false);
    let names: Vec<_> = built.internal_topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "wordcount-KSTREAM-AGGREGATE-STATE-STORE-0000000003-repartition",
            "wordcount-KSTREAM-AGGREGATE-STATE-STORE-0000000003-changelog"
        ]
    );
}
