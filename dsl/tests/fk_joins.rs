//! KTable-KTable foreign-key joins (`join_fk`, `left_join_fk`): orders (order id -> "product
//! id:quantity") joined with products (product id -> name) on the product id. Each case pipes
//! one sequence of order and product updates and lists the results of the inner and of the left
//! join (key, value or `None` for a tombstone, timestamp). Then: old values downstream, null
//! foreign keys, the topology's internal topics and co-partitioning.

use rill_core::streams::serde::{I64Serde, OptionSerde, StringSerde};
use rill_dsl::{KTable, Materialized, StreamsBuilder, TopologyTestDriver};

/// An update of an order or a product: key, value (`None`: a tombstone), timestamp.
#[derive(Clone, Copy)]
enum Step {
    Order(&'static str, Option<&'static str>, i64),
    Product(&'static str, Option<&'static str>, i64),
}
use Step::{Order, Product};

type Rows = &'static [(&'static str, Option<&'static str>, i64)];

struct Case {
    name: &'static str,
    steps: &'static [Step],
    inner: Rows,
    left: Rows,
}

#[allow(clippy::ptr_arg)] // a foreign-key extractor takes the table's value type
fn product_of(order: &String) -> String {
    order.split(':').next().unwrap_or_default().to_string()
}

fn join(orders: &KTable<String, String>, products: &KTable<String, String>, left: bool) -> KTable<String, String> {
    if left {
        orders.left_join_fk(products, product_of, |o, p| format!("{o}/{}", p.map_or("null", String::as_str)))
    } else {
        orders.join_fk(products, product_of, |o, p| format!("{o}/{p}"))
    }
}

fn run(steps: &[Step], left: bool) -> Vec<(String, Option<String>, i64)> {
    let builder = StreamsBuilder::new();
    let orders = builder.table::<String, String>("orders");
    let products = builder.table::<String, String>("products");
    join(&orders, &products, left).to_stream().to("out");
    let driver = TopologyTestDriver::new(builder.build("shop").unwrap()).unwrap();
    let o = driver.create_input_topic("orders", StringSerde, OptionSerde(StringSerde));
    let p = driver.create_input_topic("products", StringSerde, OptionSerde(StringSerde));
    for step in steps {
        let (topic, key, value, at) = match *step {
            Order(k, v, t) => (&o, k, v, t),
            Product(k, v, t) => (&p, k, v, t),
        };
        topic.pipe_input_at(key.to_string(), value.map(str::to_string), at).unwrap();
    }
    let out = driver.create_output_topic("out", StringSerde, OptionSerde(StringSerde));
    out.read_records().into_iter().map(|r| (r.key, r.value, r.timestamp)).collect()
}

fn rows(r: Rows) -> Vec<(String, Option<String>, i64)> {
    r.iter().map(|(k, v, t)| (k.to_string(), v.map(str::to_string), *t)).collect()
}

const CASES: &[Case] = &[
    Case {
        name: "an order is enriched with its product",
        steps: &[Product("p1", Some("tea"), 1), Order("o1", Some("p1:1"), 2)],
        inner: &[("o1", Some("p1:1/tea"), 2)],
        left: &[("o1", Some("p1:1/tea"), 2)],
    },
    Case {
        name: "an order before its product",
        steps: &[Order("o1", Some("p1:1"), 1), Product("p1", Some("tea"), 2)],
        inner: &[("o1", Some("p1:1/tea"), 2)],
        left: &[("o1", Some("p1:1/null"), 1), ("o1", Some("p1:1/tea"), 2)],
    },
    Case {
        name: "a new foreign key moves the order to the new product",
        steps: &[
            Product("p1", Some("tea"), 1),
            Product("p2", Some("coffee"), 2),
            Order("o1", Some("p1:1"), 3),
            Order("o1", Some("p2:1"), 4),
            Product("p1", Some("green tea"), 5), // no longer followed
            Product("p2", Some("espresso"), 6),
        ],
        inner: &[("o1", Some("p1:1/tea"), 3), ("o1", Some("p2:1/coffee"), 4), ("o1", Some("p2:1/espresso"), 6)],
        left: &[("o1", Some("p1:1/tea"), 3), ("o1", Some("p2:1/coffee"), 4), ("o1", Some("p2:1/espresso"), 6)],
    },
    Case {
        name: "a new foreign key with no product",
        steps: &[
            Product("p1", Some("tea"), 1),
            Order("o1", Some("p1:1"), 2),
            Order("o1", Some("p9:1"), 3),
            Product("p9", Some("water"), 4),
        ],
        inner: &[("o1", Some("p1:1/tea"), 2), ("o1", None, 3), ("o1", Some("p9:1/water"), 4)],
        left: &[("o1", Some("p1:1/tea"), 2), ("o1", Some("p9:1/null"), 3), ("o1", Some("p9:1/water"), 4)],
    },
    Case {
        name: "an order update with the same foreign key",
        steps: &[
            Product("p1", Some("tea"), 1),
            Order("o1", Some("p1:1"), 2),
            Order("o1", Some("p1:5"), 3),
            Order("o2", Some("p9:1"), 4), // no product: nothing to join, before or after
            Order("o2", Some("p9:2"), 5),
        ],
        inner: &[("o1", Some("p1:1/tea"), 2), ("o1", Some("p1:5/tea"), 3)],
        left: &[
            ("o1", Some("p1:1/tea"), 2),
            ("o1", Some("p1:5/tea"), 3),
            ("o2", Some("p9:1/null"), 4),
            ("o2", Some("p9:2/null"), 5),
        ],
    },
    Case {
        name: "a product update fans out to every order referencing it",
        steps: &[
            Order("o1", Some("p1:1"), 1),
            Order("o2", Some("p1:2"), 2),
            Order("o3", Some("p2:1"), 3),
            Product("p1", Some("tea"), 4),
            Product("p1", Some("green tea"), 5),
        ],
        inner: &[
            ("o1", Some("p1:1/tea"), 4),
            ("o2", Some("p1:2/tea"), 4),
            ("o1", Some("p1:1/green tea"), 5),
            ("o2", Some("p1:2/green tea"), 5),
        ],
        left: &[
            ("o1", Some("p1:1/null"), 1),
            ("o2", Some("p1:2/null"), 2),
            ("o3", Some("p2:1/null"), 3),
            ("o1", Some("p1:1/tea"), 4),
            ("o2", Some("p1:2/tea"), 4),
            ("o1", Some("p1:1/green tea"), 5),
            ("o2", Some("p1:2/green tea"), 5),
        ],
    },
    Case {
        name: "an order deleted",
        steps: &[
            Product("p1", Some("tea"), 1),
            Order("o1", Some("p1:1"), 2),
            Order("o1", None, 3),
            Order("o2", None, 4),                // never existed: nothing
            Product("p1", Some("green tea"), 5), // o1 no longer subscribes
            Order("o3", Some("p9:1"), 6),
            Order("o3", None, 7), // had no inner result: no tombstone
        ],
        inner: &[("o1", Some("p1:1/tea"), 2), ("o1", None, 3)],
        left: &[("o1", Some("p1:1/tea"), 2), ("o1", None, 3), ("o3", Some("p9:1/null"), 6), ("o3", None, 7)],
    },
    Case {
        name: "a product deleted",
        steps: &[
            Product("p1", Some("tea"), 1),
            Order("o1", Some("p1:1"), 2),
            Product("p1", None, 3),
            Product("p2", None, 4), // never existed: nothing
            Product("p1", Some("tea again"), 5),
        ],
        inner: &[("o1", Some("p1:1/tea"), 2), ("o1", None, 3), ("o1", Some("p1:1/tea again"), 5)],
        left: &[("o1", Some("p1:1/tea"), 2), ("o1", Some("p1:1/null"), 3), ("o1", Some("p1:1/tea again"), 5)],
    },
    Case {
        name: "result times: the later row's on subscribing, the product's on its update",
        steps: &[
            Product("p1", Some("tea"), 10),
            Order("o1", Some("p1:1"), 5),
            Product("p1", Some("green tea"), 7),
            Order("o1", Some("p1:2"), 6),
            Order("o1", Some("p1:3"), 20),
        ],
        inner: &[
            ("o1", Some("p1:1/tea"), 10),
            ("o1", Some("p1:1/green tea"), 7),
            ("o1", Some("p1:2/green tea"), 7),
            ("o1", Some("p1:3/green tea"), 20),
        ],
        left: &[
            ("o1", Some("p1:1/tea"), 10),
            ("o1", Some("p1:1/green tea"), 7),
            ("o1", Some("p1:2/green tea"), 7),
            ("o1", Some("p1:3/green tea"), 20),
        ],
    },
];

#[test]
fn inner_and_left_foreign_key_joins() {
    for case in CASES {
        assert_eq!(run(case.steps, false), rows(case.inner), "inner join: {}", case.name);
        assert_eq!(run(case.steps, true), rows(case.left), "left join: {}", case.name);
    }
}

#[test]
fn results_carry_old_values_downstream() {
    // Orders per product name: each result update subtracts its old value.
    let builder = StreamsBuilder::new();
    let orders = builder.table::<String, String>("orders");
    let products = builder.table::<String, String>("products");
    let joined = orders.named("details").join_fk_with(
        &products,
        product_of,
        |_, name| name.clone(),
        Materialized::as_("order-product-names"),
    );
    assert_eq!(joined.store_name(), Some("order-product-names"));
    joined.group_by(|_, name| (name.clone(), 1i64)).count().to_stream().to("per-name");
    let driver = TopologyTestDriver::new(builder.build("shop").unwrap()).unwrap();
    let o = driver.create_input_topic("orders", StringSerde, OptionSerde(StringSerde));
    let p = driver.create_input_topic("products", StringSerde, OptionSerde(StringSerde));
    let out = driver.create_output_topic("per-name", StringSerde, OptionSerde(I64Serde));
    p.pipe_input("p1".into(), Some("tea".into())).unwrap();
    o.pipe_input("o1".into(), Some("p1:1".into())).unwrap();
    o.pipe_input("o2".into(), Some("p1:1".into())).unwrap();
    p.pipe_input("p1".into(), Some("green".into())).unwrap();
    o.pipe_input("o1".into(), None).unwrap();
    let s = |k: &str, n| (k.to_string(), Some(n));
    assert_eq!(
        out.read_all(),
        vec![s("tea", 1), s("tea", 2), s("tea", 1), s("green", 1), s("tea", 0), s("green", 2), s("green", 1)]
    );
    let stored = driver.key_value_store::<String, String>("order-product-names").unwrap();
    assert_eq!(stored, vec![("o2".to_string(), "green".to_string())]);
}

#[test]
fn null_foreign_keys_join_nothing() {
    // Products keyed by a nullable id; an order with no product id has a null foreign key:
    // the inner join drops it, the left join joins it with no product (Kafka 3.7+, KIP-962).
    let run = |left: bool| {
        let builder = StreamsBuilder::new();
        let orders = builder.table::<String, String>("orders");
        let products = builder.table::<Option<String>, String>("products");
        let fk = |o: &String| Some(o.clone()).filter(|o| !o.is_empty());
        let joined = if left {
            orders.left_join_fk(&products, fk, |o, p| format!("{o}/{}", p.map_or("null", String::as_str)))
        } else {
            orders.join_fk(&products, fk, |o, p| format!("{o}/{p}"))
        };
        joined.to_stream().to("out");
        let driver = TopologyTestDriver::new(builder.build("shop").unwrap()).unwrap();
        let o = driver.create_input_topic("orders", StringSerde, OptionSerde(StringSerde));
        let p = driver.create_input_topic("products", OptionSerde(StringSerde), OptionSerde(StringSerde));
        let out = driver.create_output_topic("out", StringSerde, OptionSerde(StringSerde));
        p.pipe_input(Some("p1".into()), Some("tea".into())).unwrap();
        o.pipe_input("o1".into(), Some("p1".into())).unwrap();
        o.pipe_input("o1".into(), Some(String::new())).unwrap(); // now null: unsubscribes
        p.pipe_input(Some("p1".into()), Some("green tea".into())).unwrap();
        o.pipe_input("o2".into(), Some(String::new())).unwrap();
        let dropped = driver.dropped_records();
        (out.read_all(), dropped)
    };
    let v = |k: &str, v: Option<&str>| (k.to_string(), v.map(str::to_string));
    let (inner, dropped) = run(false);
    assert_eq!(inner, vec![v("o1", Some("p1/tea")), v("o1", None)]);
    assert_eq!(dropped, 2, "the inner join counts each order with a null foreign key as dropped");
    let (left, _) = run(true);
    assert_eq!(left, vec![v("o1", Some("p1/tea")), v("o1", Some("/null")), v("o2", Some("/null"))]);
}

#[test]
fn internal_topics_are_co_partitioned_with_their_side_only() {
    let builder = StreamsBuilder::new();
    let orders = builder.table::<String, String>("orders");
    let products = builder.table::<String, String>("products");
    join(&orders.named("fk"), &products, false).to_stream().to("out");
    let built = builder.build("shop").unwrap();
    let names: Vec<&str> = built.internal_topics.iter().map(|t| t.name.as_str()).collect();
    for topic in [
        "shop-fk-subscription-registration-topic",
        "shop-fk-subscription-response-topic",
        "shop-fk-subscription-store-changelog",
        "shop-fk-output-store-changelog",
    ] {
        assert!(names.contains(&topic), "{topic} in {names:?}");
    }
    let groups: Vec<Vec<&str>> =
        built.copartition_groups.iter().map(|g| g.iter().map(String::as_str).collect()).collect();
    assert_eq!(
        groups,
        vec![
            vec!["products", "shop-fk-subscription-registration-topic"],
            vec!["orders", "shop-fk-subscription-response-topic"]
        ]
    );
    let described = built.topology.describe().to_string();
    assert!(described.contains("fk-subscription-receive"), "{described}");
    // Unnamed joins get Kafka Streams' generated names.
    let builder = StreamsBuilder::new();
    let orders = builder.table::<String, String>("orders");
    let products = builder.table::<String, String>("products");
    join(&orders, &products, true).to_stream().to("out");
    let built = builder.build("shop").unwrap();
    let topics: Vec<&str> = built.repartition_topics().collect();
    assert_eq!(topics.len(), 2);
    assert!(topics[0].starts_with("shop-KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-0") && topics[0].ends_with("-topic"));
    assert!(topics[1].starts_with("shop-KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-0") && topics[1].ends_with("-topic"));
}

#[test]
fn a_join_without_a_result_serde_fails_to_build_and_says_how() {
    #[derive(Clone)]
    struct Detail;
    let builder = StreamsBuilder::new();
    let orders = builder.table::<String, String>("orders");
    let products = builder.table::<String, String>("products");
    orders.join_fk(&products, product_of, |_, _| Detail);
    let e = builder.build("shop").unwrap_err().to_string();
    assert!(e.contains("join_fk_with") && e.contains("Detail"), "{e}");
}
