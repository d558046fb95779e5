//! Grouped-table aggregations as Kafka Streams defines them: each update of a row subtracts the
//! old row from its group and adds the new one; a tombstone subtracts; a delete of an absent
//! row does nothing. One table of cases, run against count, reduce and aggregate.

use rill_core::streams::serde::{I64Serde, OptionSerde, StringSerde};
use rill_dsl::{Materialized, StreamsBuilder, TopologyTestDriver};

struct Case {
    name: &'static str,
    /// account -> "region:amount", or a tombstone.
    input: &'static [(&'static str, Option<&'static str>)],
    /// (region, count) as emitted.
    counts: &'static [(&'static str, i64)],
    /// (region, sum of amounts) as emitted.
    sums: &'static [(&'static str, i64)],
    /// Final store contents of the member-list aggregate: (region, sorted accounts).
    members: &'static [(&'static str, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        name: "two rows in one group",
        input: &[("a", Some("eu:10")), ("b", Some("eu:5"))],
        counts: &[("eu", 1), ("eu", 2)],
        sums: &[("eu", 10), ("eu", 15)],
        members: &[("eu", "a,b")],
    },
    Case {
        name: "an update in place subtracts the old row, then adds the new",
        input: &[("a", Some("eu:10")), ("a", Some("eu:7"))],
        counts: &[("eu", 1), ("eu", 0), ("eu", 1)],
        sums: &[("eu", 10), ("eu", 0), ("eu", 7)],
        members: &[("eu", "a")],
    },
    Case {
        name: "a row moving to another group leaves the first",
        input: &[("a", Some("eu:10")), ("b", Some("eu:1")), ("a", Some("us:10"))],
        counts: &[("eu", 1), ("eu", 2), ("eu", 1), ("us", 1)],
        sums: &[("eu", 10), ("eu", 11), ("eu", 1), ("us", 10)],
        members: &[("eu", "b"), ("us", "a")],
    },
    Case {
        name: "a tombstone subtracts the row",
        input: &[("a", Some("eu:10")), ("b", Some("eu:3")), ("a", None)],
        counts: &[("eu", 1), ("eu", 2), ("eu", 1)],
        sums: &[("eu", 10), ("eu", 13), ("eu", 3)],
        members: &[("eu", "b")],
    },
    Case {
        name: "a tombstone of an absent row does nothing",
        input: &[("a", None), ("b", Some("us:2")), ("a", None)],
        counts: &[("us", 1)],
        sums: &[("us", 2)],
        members: &[("us", "b")],
    },
    Case {
        name: "a deleted row comes back",
        input: &[("a", Some("eu:1")), ("a", None), ("a", Some("eu:2"))],
        counts: &[("eu", 1), ("eu", 0), ("eu", 1)],
        sums: &[("eu", 1), ("eu", 0), ("eu", 2)],
        members: &[("eu", "a")],
    },
];

fn region_amount(v: &str) -> (String, i64) {
    let (region, amount) = v.split_once(':').unwrap();
    (region.to_string(), amount.parse().unwrap())
}

fn add_member(list: String, m: String) -> String {
    let mut v: Vec<String> = list.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect();
    v.push(m);
    v.sort();
    v.join(",")
}

fn remove_member(list: String, m: String) -> String {
    list.split(',').filter(|x| !x.is_empty() && *x != m).collect::<Vec<_>>().join(",")
}

#[test]
fn grouped_table_aggregations_follow_the_change_semantics() {
    for case in CASES {
        let builder = StreamsBuilder::new();
        let accounts = builder.table::<String, String>("accounts");
        let by_region = accounts.group_by(|_, v| region_amount(v));
        by_region.count().to_stream().to("counts");
        by_region.reduce(|a, b| a + b, |a, b| a - b).to_stream().to("sums");
        accounts.group_by(|account, v| (region_amount(v).0, account.clone())).aggregate_with(
            String::new,
            |_, m, l| add_member(l, m),
            |_, m, l| remove_member(l, m),
            Materialized::as_("members"),
        );
        let driver = TopologyTestDriver::new(builder.build("app").unwrap()).unwrap();
        let input = driver.create_input_topic("accounts", StringSerde, OptionSerde(StringSerde));
        for (k, v) in case.input {
            input.pipe_input(k.to_string(), v.map(str::to_string)).unwrap();
        }
        let read = |topic: &str| -> Vec<(String, i64)> {
            let out = driver.create_output_topic(topic, StringSerde, OptionSerde(I64Serde));
            out.read_all().into_iter().map(|(k, v)| (k, v.expect("aggregates are never deleted here"))).collect()
        };
        let owned = |v: &[(&str, i64)]| v.iter().map(|(k, n)| (k.to_string(), *n)).collect::<Vec<_>>();
        assert_eq!(read("counts"), owned(case.counts), "{}: counts", case.name);
        assert_eq!(read("sums"), owned(case.sums), "{}: sums", case.name);
        let members = driver.key_value_store::<String, String>("members").unwrap();
        let expected: Vec<(String, String)> =
            case.members.iter().map(|(r, m)| (r.to_string(), m.to_string())).collect();
        assert_eq!(members, expected, "{}: members", case.name);
    }
}

#[test]
fn table_source_and_filter_forward_changes_with_old_values() {
    // filter sees both sides of a change: entering, staying, leaving the filter, deletes.
    let builder = StreamsBuilder::new();
    builder.table::<String, i64>("scores").filter(|_, s| *s >= 10).to_stream().to("high");
    let driver = TopologyTestDriver::new(builder.build("app").unwrap()).unwrap();
    let input = driver.create_input_topic("scores", StringSerde, OptionSerde(I64Serde));
    let high = driver.create_output_topic("high", StringSerde, OptionSerde(I64Serde));
    let steps: &[(Option<i64>, &[Option<i64>])] = &[
        (Some(5), &[]),          // below, was absent: nothing
        (Some(12), &[Some(12)]), // enters
        (Some(15), &[Some(15)]), // stays
        (Some(3), &[None]),      // leaves: tombstone
        (None, &[]),             // deleted while filtered out: nothing
        (Some(20), &[Some(20)]), // enters again
        (None, &[None]),         // deleted while in: tombstone
    ];
    for (i, (v, want)) in steps.iter().enumerate() {
        input.pipe_input("p".into(), *v).unwrap();
        assert_eq!(high.read_values(), want.to_vec(), "step {i}: {v:?}");
    }
}

#[test]
fn a_stream_aggregation_through_a_repartition_topic_keeps_per_key_order() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("purchases")
        .group_by(|_, v| region_amount(v).0)
        .aggregate_with(|| 0i64, |_, v, total| total + region_amount(&v).1, Materialized::as_("revenue"))
        .to_stream()
        .to("revenue-updates");
    let driver = TopologyTestDriver::new(builder.build("app").unwrap()).unwrap();
    let input = driver.create_input_topic("purchases", StringSerde, StringSerde);
    for (i, p) in ["eu:5", "us:1", "eu:7", "eu:1", "us:9"].iter().enumerate() {
        input.pipe_input_at(format!("p{i}"), p.to_string(), 1000 + i as i64).unwrap();
    }
    let out = driver.create_output_topic("revenue-updates", StringSerde, I64Serde);
    let got: Vec<_> = out.read_records().into_iter().map(|r| (r.key, r.value, r.timestamp)).collect();
    let want = [("eu", 5, 1000), ("us", 1, 1001), ("eu", 12, 1002), ("eu", 13, 1003), ("us", 10, 1004)];
    assert_eq!(got, want.iter().map(|(k, v, t)| (k.to_string(), *v, *t)).collect::<Vec<_>>());
    assert_eq!(
        driver.key_value_store::<String, i64>("revenue").unwrap(),
        vec![("eu".to_string(), 13), ("us".to_string(), 10)]
    );
}
