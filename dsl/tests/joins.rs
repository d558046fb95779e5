//! The joins that need no window store, against the join-semantics tables of the Kafka Streams
//! developer guide ("KStream-KTable Join", "KTable-KTable Equi-Join"): every record of the
//! guide's input sequence piped in timestamp order, and exactly the outputs (values and
//! timestamps) it lists. Then what the tables leave out: result timestamps out of order, null
//! keys, old values downstream, co-partitioning and repartitioning.

use rill_core::streams::serde::{I64Serde, OptionSerde, StringSerde};
use rill_dsl::{Consumed, KStream, KTable, Materialized, StreamsBuilder, TestInputTopic, TopologyTestDriver};

/// A side of the guide's tables: timestamp and value, `None` for null (a tombstone for a table).
type Input = &'static [(i64, Option<&'static str>)];

/// The guide's left input (a stream or a table): 1:null 3:A 5:B 7:null 9:C 12:null 15:D.
const LEFT: Input =
    &[(1, None), (3, Some("A")), (5, Some("B")), (7, None), (9, Some("C")), (12, None), (15, Some("D"))];
/// The guide's right input: 2:null 4:a 6:b 8:null 10:c 11:null 13:null 14:d.
const RIGHT: Input =
    &[(2, None), (4, Some("a")), (6, Some("b")), (8, None), (10, Some("c")), (11, None), (13, None), (14, Some("d"))];

/// Pipe both sides merged in timestamp order, every record with key "k".
fn pipe_in_time_order(
    left: &TestInputTopic<String, Option<String>>,
    right: &TestInputTopic<String, Option<String>>,
) -> rill_core::streams::error::Result<()> {
    let mut all: Vec<(i64, bool, Option<&str>)> = LEFT.iter().map(|(t, v)| (*t, true, *v)).collect();
    all.extend(RIGHT.iter().map(|(t, v)| (*t, false, *v)));
    all.sort_by_key(|(t, ..)| *t);
    for (t, is_left, v) in all {
        let topic = if is_left { left } else { right };
        topic.pipe_input_at("k".into(), v.map(str::to_string), t)?;
    }
    Ok(())
}

/// `[A, a]`, `[A, null]`, `[null, b]`: the guide's notation for the joiner's arguments.
fn pair(l: Option<&String>, r: Option<&String>) -> String {
    let show = |x: Option<&String>| x.map_or("null".to_string(), Clone::clone);
    format!("[{}, {}]", show(l), show(r))
}

/// Expected outputs: (timestamp, joined value or `None` for a tombstone).
type Expected = &'static [(i64, Option<&'static str>)];

fn run_stream_table(
    join: impl Fn(&KStream<String, Option<String>>, &KTable<String, String>) -> KStream<String, String>,
) -> Vec<(i64, Option<String>)> {
    let builder = StreamsBuilder::new();
    let stream =
        builder.stream_with::<String, Option<String>>(&["left"], Consumed::with(StringSerde, OptionSerde(StringSerde)));
    let table = builder.table::<String, String>("right");
    join(&stream, &table).to("out");
    let driver = TopologyTestDriver::new(builder.build("app").unwrap()).unwrap();
    let left = driver.create_input_topic("left", StringSerde, OptionSerde(StringSerde));
    let right = driver.create_input_topic("right", StringSerde, OptionSerde(StringSerde));
    pipe_in_time_order(&left, &right).unwrap();
    let out = driver.create_output_topic("out", StringSerde, OptionSerde(StringSerde));
    out.read_records().into_iter().map(|r| (r.timestamp, r.value)).collect()
}

fn expected(rows: Expected) -> Vec<(i64, Option<String>)> {
    rows.iter().map(|(t, v)| (*t, v.map(str::to_string))).collect()
}

#[test]
fn stream_table_joins_match_the_developer_guide() {
    // The guide's "Semantics of stream-table joins" table, INNER JOIN and LEFT JOIN columns.
    let inner: Expected = &[(5, Some("[B, a]")), (15, Some("[D, d]"))];
    let left: Expected = &[(3, Some("[A, null]")), (5, Some("[B, a]")), (9, Some("[C, null]")), (15, Some("[D, d]"))];
    let got = run_stream_table(|s, t| s.join(t, |v, t| pair(v.as_ref(), Some(&t))));
    assert_eq!(got, expected(inner), "inner join");
    let got = run_stream_table(|s, t| s.left_join(t, |v, t| pair(v.as_ref(), t.as_ref())));
    assert_eq!(got, expected(left), "left join");
}

#[test]
fn stream_global_table_joins_look_up_the_same_way() {
    // A global table is not a temporal join, but in the driver every update is applied before
    // the next stream record: the stream-table table holds.
    let run = |left_join: bool| {
        let builder = StreamsBuilder::new();
        let stream = builder
            .stream_with::<String, Option<String>>(&["left"], Consumed::with(StringSerde, OptionSerde(StringSerde)));
        let global = builder.global_table::<String, String>("right");
        let joined = if left_join {
            stream.left_join_global(&global, |k, _| k.clone(), |v, g| pair(v.as_ref(), g.as_ref()))
        } else {
            stream.join_global(&global, |k, _| k.clone(), |v, g| pair(v.as_ref(), Some(&g)))
        };
        joined.to("out");
        let built = builder.build("app").unwrap();
        assert!(built.copartition_groups.is_empty());
        let driver = TopologyTestDriver::new(built).unwrap();
        let left = driver.create_input_topic("left", StringSerde, OptionSerde(StringSerde));
        let right = driver.create_input_topic("right", StringSerde, OptionSerde(StringSerde));
        pipe_in_time_order(&left, &right).unwrap();
        let out = driver.create_output_topic("out", StringSerde, OptionSerde(StringSerde));
        out.read_records().into_iter().map(|r| (r.timestamp, r.value)).collect::<Vec<_>>()
    };
    assert_eq!(run(false), expected(&[(5, Some("[B, a]")), (15, Some("[D, d]"))]));
    assert_eq!(
        run(true),
        expected(&[(3, Some("[A, null]")), (5, Some("[B, a]")), (9, Some("[C, null]")), (15, Some("[D, d]"))])
    );
}

#[derive(Clone, Copy, Debug)]
enum TableJoin {
    Inner,
    Left,
    Outer,
}

fn run_table_table(kind: TableJoin) -> Vec<(i64, Option<String>)> {
    let builder = StreamsBuilder::new();
    let l = builder.table::<String, String>("left");
    let r = builder.table::<String, String>("right");
    let joined = match kind {
        TableJoin::Inner => l.join(&r, |a, b| pair(Some(a), Some(b))),
        TableJoin::Left => l.left_join(&r, |a, b| pair(Some(a), b)),
        TableJoin::Outer => l.outer_join(&r, pair),
    };
    joined.to_stream().to("out");
    let driver = TopologyTestDriver::new(builder.build("app").unwrap()).unwrap();
    let left = driver.create_input_topic("left", StringSerde, OptionSerde(StringSerde));
    let right = driver.create_input_topic("right", StringSerde, OptionSerde(StringSerde));
    pipe_in_time_order(&left, &right).unwrap();
    let out = driver.create_output_topic("out", StringSerde, OptionSerde(StringSerde));
    out.read_records().into_iter().map(|r| (r.timestamp, r.value)).collect()
}

#[test]
fn table_table_joins_match_the_developer_guide() {
    // The guide's "Semantics of table-table equi-joins" table; `None` is its "null" (a
    // tombstone for the key). In timestamp order, a result's time (the later of its two rows')
    // is the time of the record that made it.
    let cases: &[(TableJoin, Expected)] = &[
        (
            TableJoin::Inner,
            &[
                (4, Some("[A, a]")),
                (5, Some("[B, a]")),
                (6, Some("[B, b]")),
                (7, None),
                (10, Some("[C, c]")),
                (11, None),
                (15, Some("[D, d]")),
            ],
        ),
        (
            TableJoin::Left,
            &[
                (3, Some("[A, null]")),
                (4, Some("[A, a]")),
                (5, Some("[B, a]")),
                (6, Some("[B, b]")),
                (7, None),
                (9, Some("[C, null]")),
                (10, Some("[C, c]")),
                (11, Some("[C, null]")),
                (12, None),
                (15, Some("[D, d]")),
            ],
        ),
        (
            TableJoin::Outer,
            &[
                (3, Some("[A, null]")),
                (4, Some("[A, a]")),
                (5, Some("[B, a]")),
                (6, Some("[B, b]")),
                (7, Some("[null, b]")),
                (8, None),
                (9, Some("[C, null]")),
                (10, Some("[C, c]")),
                (11, Some("[C, null]")),
                (12, None),
                (14, Some("[null, d]")),
                (15, Some("[D, d]")),
            ],
        ),
    ];
    for (kind, want) in cases {
        assert_eq!(run_table_table(*kind), expected(want), "{kind:?} join");
    }
}

#[test]
fn a_table_table_result_takes_the_later_of_its_rows_timestamps() {
    // Per record: (left side?, timestamp, value) and the one result expected (timestamp, value).
    let builder = StreamsBuilder::new();
    let l = builder.table::<String, String>("left");
    let r = builder.table::<String, String>("right");
    l.outer_join(&r, pair).to_stream().to("out");
    let driver = TopologyTestDriver::new(builder.build("app").unwrap()).unwrap();
    let left = driver.create_input_topic("left", StringSerde, OptionSerde(StringSerde));
    let right = driver.create_input_topic("right", StringSerde, OptionSerde(StringSerde));
    let out = driver.create_output_topic("out", StringSerde, OptionSerde(StringSerde));
    type Step = (bool, i64, Option<&'static str>, i64, Option<&'static str>);
    let steps: &[Step] = &[
        (true, 100, Some("A"), 100, Some("[A, null]")),
        (false, 50, Some("a"), 100, Some("[A, a]")), // the right row is older: the left's time
        (false, 150, Some("b"), 150, Some("[A, b]")),
        (true, 120, Some("B"), 150, Some("[B, b]")),
        (true, 10, None, 150, Some("[null, b]")), // a late delete still takes the row's time
        (false, 20, None, 20, None),              // nothing left on the other side: its own time
    ];
    for (i, (is_left, t, v, want_t, want)) in steps.iter().enumerate() {
        let topic = if *is_left { &left } else { &right };
        topic.pipe_input_at("k".into(), v.map(str::to_string), *t).unwrap();
        let got: Vec<_> = out.read_records().into_iter().map(|r| (r.timestamp, r.value)).collect();
        assert_eq!(got, vec![(*want_t, want.map(str::to_string))], "step {i}");
    }
}

#[test]
fn table_table_results_carry_old_values_for_downstream_aggregations() {
    // Counting the rows of a join result by their value's first letter: each update must
    // subtract the old joined row, which only works if the join forwards it.
    let builder = StreamsBuilder::new();
    let l = builder.table::<String, String>("left");
    let r = builder.table::<String, String>("right");
    l.left_join(&r, |a, b| format!("{a}{}", b.map_or("", |b| b.as_str())))
        .group_by(|_, v| (v[..1].to_string(), v.clone()))
        .count_with(Materialized::as_("per-letter"))
        .to_stream()
        .to("counts");
    let driver = TopologyTestDriver::new(builder.build("app").unwrap()).unwrap();
    let left = driver.create_input_topic("left", StringSerde, OptionSerde(StringSerde));
    let right = driver.create_input_topic("right", StringSerde, OptionSerde(StringSerde));
    left.pipe_input("k1".into(), Some("x".into())).unwrap();
    right.pipe_input("k1".into(), Some("1".into())).unwrap(); // x -> x1: still one "x"
    left.pipe_input("k2".into(), Some("x".into())).unwrap();
    left.pipe_input("k1".into(), Some("y".into())).unwrap(); // x1 -> y1
    right.pipe_input("k1".into(), None).unwrap(); // y1 -> y
    left.pipe_input("k2".into(), None).unwrap(); // x gone
    let mut store = driver.key_value_store::<String, i64>("per-letter").unwrap();
    store.sort();
    assert_eq!(store, vec![("x".to_string(), 0), ("y".to_string(), 1)]);
}

#[test]
fn tables_computed_on_the_fly_are_materialized_for_a_join() {
    let builder = StreamsBuilder::new();
    let prices = builder.table::<String, i64>("prices");
    let cheap = prices.filter(|_, p| *p < 10);
    let labels = builder.table::<String, String>("labels").map_values(|l| l.to_uppercase());
    builder
        .stream::<String, String>("orders")
        .join(&cheap, |order, price| format!("{order}@{price}"))
        .to("cheap-orders");
    labels.join(&cheap, |label, price| format!("{label}={price}")).to_stream().to("cheap-labels");
    let built = builder.build("app").unwrap();
    let described = built.topology.describe().to_string();
    assert!(described.contains("KTABLE-MATERIALIZE-"), "{described}");
    let driver = TopologyTestDriver::new(built).unwrap();
    let p = driver.create_input_topic("prices", StringSerde, OptionSerde(I64Serde));
    let l = driver.create_input_topic("labels", StringSerde, OptionSerde(StringSerde));
    let orders = driver.create_input_topic("orders", StringSerde, StringSerde);
    p.pipe_input("tea".into(), Some(5)).unwrap();
    p.pipe_input("cake".into(), Some(50)).unwrap();
    l.pipe_input("tea".into(), Some("green".into())).unwrap();
    l.pipe_input("cake".into(), Some("lemon".into())).unwrap();
    orders.pipe_input("tea".into(), "o1".into()).unwrap();
    orders.pipe_input("cake".into(), "o2".into()).unwrap(); // filtered out of the table
    p.pipe_input("tea".into(), Some(12)).unwrap(); // no longer cheap: the label row goes
    orders.pipe_input("tea".into(), "o3".into()).unwrap();
    let out = driver.create_output_topic("cheap-orders", StringSerde, StringSerde);
    assert_eq!(out.read_values(), vec!["o1@5".to_string()]);
    let out = driver.create_output_topic("cheap-labels", StringSerde, OptionSerde(StringSerde));
    assert_eq!(out.read_values(), vec![Some("GREEN=5".to_string()), None]);
}

#[test]
fn null_keys_are_dropped_by_inner_joins_and_joined_with_nothing_by_left_joins() {
    // Kafka Streams 3.7+ (KIP-962): a left join keeps a stream record with a null key.
    let run = |left_join: bool| {
        let builder = StreamsBuilder::new();
        let table = builder.table_with::<Option<String>, String>(
            "users",
            Consumed::with(OptionSerde(StringSerde), StringSerde),
            Materialized::default(),
        );
        let stream = builder
            .stream_with::<Option<String>, String>(&["clicks"], Consumed::with(OptionSerde(StringSerde), StringSerde));
        let joined = if left_join {
            stream.left_join(&table, |c, u| format!("{c}:{}", u.unwrap_or_default()))
        } else {
            stream.join(&table, |c, u| format!("{c}:{u}"))
        };
        joined.to("out");
        let driver = TopologyTestDriver::new(builder.build("app").unwrap()).unwrap();
        let users = driver.create_input_topic("users", OptionSerde(StringSerde), OptionSerde(StringSerde));
        let clicks = driver.create_input_topic("clicks", OptionSerde(StringSerde), StringSerde);
        users.pipe_input(Some("u1".into()), Some("ann".into())).unwrap();
        clicks.pipe_input(Some("u1".into()), "c1".into()).unwrap();
        clicks.pipe_input(None, "c2".into()).unwrap();
        let out = driver.create_output_topic("out", OptionSerde(StringSerde), StringSerde);
        out.read_all()
    };
    assert_eq!(run(false), vec![(Some("u1".to_string()), "c1:ann".to_string())]);
    assert_eq!(run(true), vec![(Some("u1".to_string()), "c1:ann".to_string()), (None, "c2:".to_string())]);
}

#[test]
fn a_null_selected_key_finds_no_global_row() {
    let run = |left_join: bool| {
        let builder = StreamsBuilder::new();
        let products = builder.global_table_with::<Option<String>, String>(
            "products",
            Consumed::with(OptionSerde(StringSerde), StringSerde),
            Materialized::default(),
        );
        let orders = builder.stream::<String, String>("orders");
        // An order for "-" names no product.
        let select = |_: &String, p: &String| (p != "-").then(|| p.clone());
        let joined = if left_join {
            orders.left_join_global(&products, select, |id, p| format!("{id}:{}", p.unwrap_or_default()))
        } else {
            orders.join_global(&products, select, |id, p| format!("{id}:{p}"))
        };
        joined.to("out");
        let driver = TopologyTestDriver::new(builder.build("app").unwrap()).unwrap();
        let p = driver.create_input_topic("products", OptionSerde(StringSerde), OptionSerde(StringSerde));
        let o = driver.create_input_topic("orders", StringSerde, StringSerde);
        p.pipe_input(Some("p1".into()), Some("tea".into())).unwrap();
        o.pipe_input("o1".into(), "p1".into()).unwrap();
        o.pipe_input("o2".into(), "-".into()).unwrap();
        driver.create_output_topic("out", StringSerde, StringSerde).read_values()
    };
    assert_eq!(run(false), vec!["p1:tea".to_string()]);
    assert_eq!(run(true), vec!["p1:tea".to_string(), "-:".to_string()]);
}

#[test]
fn joins_record_co_partitioning_and_a_changed_key_is_repartitioned_first() {
    let builder = StreamsBuilder::new();
    let users = builder.table::<String, String>("users");
    let emails = builder.table::<String, String>("emails");
    users.join(&emails, |u, e| format!("{u}<{e}>")).to_stream().to("contacts");
    builder
        .stream::<String, String>("views")
        .select_key(|_, v| v.split('/').next().unwrap_or_default().to_string())
        .join(&users, |view, user| format!("{user} saw {view}"))
        .to("enriched");
    let built = builder.build("app").unwrap();
    let groups: Vec<Vec<String>> = built.copartition_groups.iter().map(|g| g.iter().cloned().collect()).collect();
    assert_eq!(
        groups,
        vec![
            vec!["emails".to_string(), "users".to_string()],
            vec!["app-KSTREAM-KEY-SELECT-0000000012-repartition".to_string(), "users".to_string()],
        ]
    );
    assert_eq!(built.repartition_topics().collect::<Vec<_>>(), vec!["app-KSTREAM-KEY-SELECT-0000000012-repartition"]);
    let driver = TopologyTestDriver::new(built).unwrap();
    let u = driver.create_input_topic("users", StringSerde, OptionSerde(StringSerde));
    let views = driver.create_input_topic("views", StringSerde, StringSerde);
    u.pipe_input("u1".into(), Some("ann".into())).unwrap();
    views.pipe_input_at("v1".into(), "u1/home".into(), 42).unwrap();
    let out = driver.create_output_topic("enriched", StringSerde, StringSerde);
    let r = out.read_record().unwrap();
    assert_eq!((r.key.as_str(), r.value.as_str(), r.timestamp), ("u1", "ann saw u1/home", 42));

    // Named: the repartition topic takes the join's name.
    let builder = StreamsBuilder::new();
    let users = builder.table::<String, String>("users");
    builder
        .stream::<String, String>("views")
        .select_key(|_, v| v.clone())
        .named("views-by-user")
        .left_join(&users, |v, _| v)
        .to("out");
    let built = builder.build("app").unwrap();
    assert_eq!(built.repartition_topics().collect::<Vec<_>>(), vec!["app-views-by-user-repartition"]);
}

#[test]
fn a_join_whose_table_cannot_be_stored_fails_to_build_saying_why() {
    #[derive(Clone)]
    struct Profile;
    let builder = StreamsBuilder::new();
    let profiles = builder.table::<String, String>("profiles").map_values(|_| Profile);
    builder.stream::<String, String>("views").join(&profiles, |v, _| v).to("out");
    let e = builder.build("app").unwrap_err().to_string();
    assert!(e.contains("KTABLE-MATERIALIZE-STATE-STORE-") && e.contains("no value serde"), "{e}");
}
