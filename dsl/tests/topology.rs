//! What `StreamsBuilder::build` makes: stable names for named operators, automatic
//! repartitioning after key changes, and errors that name the operator.

use rill_core::streams::serde::{I64Serde, StringSerde};
use rill_dsl::{Grouped, Materialized, Produced, StreamsBuilder, TopologyTestDriver};

fn internal(builder: &StreamsBuilder) -> Vec<String> {
    builder.build("app").unwrap().internal_topics.into_iter().map(|t| t.name).collect()
}

#[test]
fn named_operators_keep_their_topics_and_stores_when_the_topology_changes() {
    let program = |extra_step: bool| {
        let builder = StreamsBuilder::new();
        let mut s = builder.stream::<String, String>("orders");
        if extra_step {
            s = s.filter(|_, v| !v.is_empty()).map_values(|v| v.trim().to_string());
        }
        s.group_by_with(|_, v| v.clone(), Grouped::named("by-item")).count_with(Materialized::as_("item-counts"));
        internal(&builder)
    };
    let before = program(false);
    assert_eq!(before, vec!["app-by-item-repartition", "app-item-counts-changelog"]);
    assert_eq!(program(true), before);
}

#[test]
fn grouping_by_key_after_a_key_change_repartitions() {
    let builder = StreamsBuilder::new();
    let rekeyed = builder.stream::<String, String>("events").map(|_, v| (v.clone(), v));
    rekeyed.group_by_key().count_with(Materialized::as_("by-value"));
    let builder2 = StreamsBuilder::new();
    let kept = builder2.stream::<String, String>("events").map_values(|v| v.len() as i64).filter(|_, n| *n > 0);
    kept.group_by_key().count_with(Materialized::as_("by-key"));
    assert_eq!(internal(&builder), vec!["app-by-value-repartition", "app-by-value-changelog"]);
    assert_eq!(internal(&builder2), vec!["app-by-key-changelog"]);

    // Through the repartition topic, on the driver.
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("events")
        .select_key(|_, v| v.clone())
        .group_by_key()
        .count()
        .to_stream()
        .to("counts");
    let driver = TopologyTestDriver::new(builder.build("app").unwrap()).unwrap();
    let input = driver.create_input_topic("events", StringSerde, StringSerde);
    let out = driver.create_output_topic("counts", StringSerde, I64Serde);
    input.pipe_all([("k1".to_string(), "x".to_string()), ("k2".to_string(), "x".to_string())]).unwrap();
    assert_eq!(out.read_all(), vec![("x".to_string(), 1), ("x".to_string(), 2)]);
}

#[derive(Clone, Debug, PartialEq)]
struct Point(i64, i64);

#[test]
fn a_missing_serde_fails_the_build_naming_the_operator_and_type() {
    let builder = StreamsBuilder::new();
    builder.stream::<String, String>("in").map_values(|_| Point(1, 2)).to("out");
    let e = builder.build("app").unwrap_err().to_string();
    assert!(e.contains("KSTREAM-SINK-0000000002"), "{e}");
    assert!(e.contains("no value serde for topology::Point"), "{e}");
    assert!(e.contains("Produced::with"), "{e}");

    let builder = StreamsBuilder::new();
    builder.stream::<String, String>("in").group_by(|_, v| Point(v.len() as i64, 0)).count();
    let e = builder.build("app").unwrap_err().to_string();
    assert!(e.contains("no key serde for topology::Point"), "{e}");
    assert!(e.contains("Grouped::with"), "{e}");

    let builder = StreamsBuilder::new();
    builder.stream::<String, String>("in").to("out");
    builder.build("app").unwrap();
    assert!(builder.build("app").unwrap_err().to_string().contains("already called"));
}

#[test]
fn a_user_serde_carries_through_operators_that_keep_the_type() {
    struct PointSerde;
    impl rill_core::streams::serde::Serde<Point> for PointSerde {
        fn serialize(&self, p: &Point) -> Result<bytes::Bytes, rill_core::streams::serde::SerdeError> {
            Ok(bytes::Bytes::from(format!("{},{}", p.0, p.1)))
        }
        fn deserialize(&self, b: &[u8]) -> Result<Point, rill_core::streams::serde::SerdeError> {
            let s = std::str::from_utf8(b).unwrap();
            let (x, y) = s.split_once(',').unwrap();
            Ok(Point(x.parse().unwrap(), y.parse().unwrap()))
        }
    }
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .map_values(|v| Point(v.len() as i64, 0))
        .to_with("points", Produced::with(StringSerde, PointSerde));
    builder
        .stream_with(&["points"], rill_dsl::Consumed::with(StringSerde, PointSerde))
        .filter(|_, p| p.0 > 1)
        .to("long-points"); // the filter keeps the source's serdes
    let driver = TopologyTestDriver::new(builder.build("app").unwrap()).unwrap();
    driver.create_input_topic("in", StringSerde, StringSerde).pipe_input("k".into(), "abc".into()).unwrap();
    let points = driver.create_output_topic("points", StringSerde, PointSerde);
    assert_eq!(points.read_value(), Some(Point(3, 0)));
    // Output topics are not fed back (only repartition topics are), as in Kafka's driver.
    let long = driver.create_output_topic("long-points", StringSerde, PointSerde);
    assert!(long.is_empty());
    driver.create_input_topic("points", StringSerde, PointSerde).pipe_input("k".into(), Point(5, 5)).unwrap();
    assert_eq!(long.read_value(), Some(Point(5, 5)));
}

#[test]
fn piping_into_a_topic_nobody_reads_is_an_error() {
    let builder = StreamsBuilder::new();
    builder.stream::<String, String>("in").to("out");
    let driver = TopologyTestDriver::new(builder.build("app").unwrap()).unwrap();
    let e = driver.create_input_topic("typo", StringSerde, StringSerde).pipe_input("k".into(), "v".into());
    assert!(e.unwrap_err().to_string().contains("typo is not an input topic"));
}

#[test]
fn cogroup_inputs_are_one_copartition_group_after_repartitioning() {
    let builder = StreamsBuilder::new();
    let clicks = builder.stream::<String, String>("clicks").group_by_key();
    let views = builder.stream::<String, String>("views").group_by(|_, page| page.clone());
    clicks
        .cogroup(|_, _, n: i64| n + 1)
        .cogroup(&views, |_, _, n| n + 10)
        .aggregate_with(|| 0, Materialized::as_("activity"))
        .to_stream()
        .to("activity-out");
    let built = builder.build("app").unwrap();
    let group: Vec<&str> = built.copartition_groups[0].iter().map(String::as_str).collect();
    assert_eq!(group, vec!["app-activity-1-repartition", "clicks"]);
    let driver = TopologyTestDriver::new(built).unwrap();
    let clicks = driver.create_input_topic("clicks", StringSerde, StringSerde);
    let views = driver.create_input_topic("views", StringSerde, StringSerde);
    clicks.pipe_input("/home".into(), "c".into()).unwrap();
    views.pipe_input("u1".into(), "/home".into()).unwrap();
    let out = driver.create_output_topic("activity-out", StringSerde, I64Serde);
    assert_eq!(out.read_all(), vec![("/home".to_string(), 1), ("/home".to_string(), 11)]);
}

/// A collector for tasks run outside the driver; these tests only look at stores.
struct Discard;

impl rill_core::streams::task::RecordCollector for Discard {
    fn send(
        &mut self,
        _: &str,
        _: &str,
        _: Option<i32>,
        _: Option<bytes::Bytes>,
        _: Option<bytes::Bytes>,
        _: i64,
        _: rill_core::streams::record::Headers,
    ) -> rill_core::streams::error::Result<()> {
        Ok(())
    }
    fn partition_count(&mut self, _: &str) -> rill_core::streams::error::Result<i32> {
        Ok(1)
    }
}

#[test]
fn outside_the_driver_stores_follow_materialized_under_the_runtime_state_dir() {
    use rill_core::streams::task::TaskId;
    use rill_core::streams::topology::TaskSettings;

    let builder = StreamsBuilder::new();
    let s = builder.stream::<String, String>("in");
    s.group_by_key().count_with(Materialized::as_("on-disk"));
    s.group_by_key().count_with(Materialized::as_("in-mem").in_memory());
    let built = builder.build("app").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = TaskSettings::new("app");
    settings.state_dir = dir.path().into();
    settings.exactly_once = true;
    let mut task =
        built.topology.build_task_with(&settings, TaskId { subtopology: 0, partition: 3 }, Box::new(Discard)).unwrap();
    task.process("in", 3, 0, Some(b"k"), Some(b"v"), 5, Vec::new()).unwrap();
    assert!(dir.path().join("app/0_3/on-disk").is_dir());
    assert!(!dir.path().join("app/0_3/in-mem").exists());
    assert_eq!(task.context().state_stores().count(), 2);
}
