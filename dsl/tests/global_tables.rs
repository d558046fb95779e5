//! GlobalKTables in the DSL: what `global_table` compiles to (no task, no changelog), the handle
//! it returns, and the test driver keeping the global store up to date for every task.

use rill_core::streams::error::Result;
use rill_core::streams::processor::{Processor, ProcessorContext};
use rill_core::streams::record::Record;
use rill_core::streams::serde::{OptionSerde, StringSerde};
use rill_dsl::{Consumed, Materialized, StreamsBuilder, TopologyTestDriver};

#[test]
fn a_global_table_makes_no_task_and_no_changelog_and_is_described_as_kafka_does() {
    let builder = StreamsBuilder::new();
    let users = builder.global_table::<String, String>("users");
    assert_eq!(users.store_name(), "users-STATE-STORE-0000000002");
    assert_eq!(users.topic(), "users");
    assert!(users.key_serde().is_some() && users.value_serde().is_some(), "a join needs the serdes");
    builder.stream::<String, String>("clicks").to("out");
    let built = builder.build("app").unwrap();
    assert!(built.internal_topics.is_empty(), "the topic is the store's changelog");
    assert_eq!(built.topology.subtopologies().len(), 1);
    assert_eq!(built.topology.global_topics(), vec![("users".to_string(), users.store_name().to_string())]);
    let expected = "\
Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000003 (topics: [clicks])
      --> KSTREAM-SINK-0000000004
    Sink: KSTREAM-SINK-0000000004 (topic: out)
      <-- KSTREAM-SOURCE-0000000003

   Sub-topology: 1 for global store (will not generate tasks)
    Source: KSTREAM-SOURCE-0000000000 (topics: [users])
      --> KTABLE-SOURCE-0000000001
    Processor: KTABLE-SOURCE-0000000001 (stores: [users-STATE-STORE-0000000002])
      --> none
      <-- KSTREAM-SOURCE-0000000000

";
    assert_eq!(built.topology.describe().to_string(), expected);
}

#[test]
fn a_global_table_needs_serdes_and_a_topic_of_its_own() {
    let builder = StreamsBuilder::new();
    builder.global_table::<u32, String>("ids");
    let e = builder.build("app").unwrap_err().to_string();
    assert!(e.contains("no key serde for u32") && e.contains("global_table_with"), "{e}");

    let builder = StreamsBuilder::new();
    builder.stream::<String, String>("users").to("copy");
    builder.global_table::<String, String>("users");
    let e = builder.build("app").unwrap_err().to_string();
    assert!(e.contains("topic users is read by both"), "{e}");
}

/// Emits each order with the customer's tier from the global table (or "none").
struct Tier;
impl Processor<String, String, String, String> for Tier {
    fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
        let tier = ctx.global_store::<String, String>("tiers")?.get(&r.value)?.unwrap_or_else(|| "none".into());
        ctx.forward(r.with_value(tier))
    }
}

#[test]
fn the_driver_keeps_the_global_store_up_to_date_for_every_task() {
    let builder = StreamsBuilder::new();
    builder.global_table_with::<String, String>(
        "tiers",
        Consumed::with(StringSerde, StringSerde),
        Materialized::as_("tiers").in_memory(),
    );
    // Two sub-topologies, both reading the one global table.
    builder.stream::<String, String>("orders").process(|| Tier, &[]).to("order-tiers");
    builder.stream::<String, String>("returns").process(|| Tier, &[]).to("return-tiers");
    let driver = TopologyTestDriver::new(builder.build("app").unwrap()).unwrap();
    let tiers = driver.create_input_topic("tiers", StringSerde, OptionSerde(StringSerde));
    let orders = driver.create_input_topic("orders", StringSerde, StringSerde);
    let returns = driver.create_input_topic("returns", StringSerde, StringSerde);
    let order_out = driver.create_output_topic("order-tiers", StringSerde, StringSerde);
    let return_out = driver.create_output_topic("return-tiers", StringSerde, StringSerde);

    tiers.pipe_input("ada".into(), Some("gold".into())).unwrap();
    tiers.pipe_input("bob".into(), Some("silver".into())).unwrap();
    orders.pipe_input("o1".into(), "ada".into()).unwrap();
    returns.pipe_input("r1".into(), "bob".into()).unwrap();
    tiers.pipe_input("bob".into(), None).unwrap();
    tiers.pipe_input("ada".into(), Some("platinum".into())).unwrap();
    orders.pipe_input("o2".into(), "ada".into()).unwrap();
    returns.pipe_input("r2".into(), "bob".into()).unwrap();
    assert_eq!(order_out.read_values(), vec!["gold".to_string(), "platinum".to_string()]);
    assert_eq!(return_out.read_values(), vec!["silver".to_string(), "none".to_string()]);
    assert_eq!(
        driver.key_value_store::<String, String>("tiers").unwrap(),
        vec![("ada".to_string(), "platinum".to_string())]
    );
    assert!(driver.output_topics().is_empty(), "a global store writes no changelog");
    let e = driver.key_value_store::<String, i64>("tiers").unwrap_err().to_string();
    assert!(e.contains("global store tiers holds"), "{e}");
    // Tests may seed the global store directly.
    driver.with_store::<String, String, _>("tiers", |s| s.put(&"cy".into(), &"bronze".into())).unwrap().unwrap();
    orders.pipe_input("o3".into(), "cy".into()).unwrap();
    assert_eq!(order_out.read_value(), Some("bronze".to_string()));
}
