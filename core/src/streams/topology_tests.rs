//! The Processor API through built tasks: forwarding, branching, stores, punctuation, nulls,
//! sub-topologies and the description.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::streams::global::GlobalStoreSpec;
use crate::streams::processor::ProcessorContext;
use crate::streams::record::{Headers, Record};
use crate::streams::serde::{I64Serde, StringSerde, UnitSerde};
use crate::streams::store::{ChangelogSink, KeyValueStore, StateStore, StoreResult, WriteOp};
use crate::streams::task::{PunctuationId, PunctuationType};

type Sent = Rc<RefCell<Vec<(String, Option<Bytes>, Option<Bytes>, i64)>>>;

/// Keeps what sinks send.
struct Collect(Sent);

impl RecordCollector for Collect {
    fn send(
        &mut self,
        _sink: &str,
        topic: &str,
        _partition: Option<i32>,
        key: Option<Bytes>,
        value: Option<Bytes>,
        timestamp: i64,
        _headers: Headers,
    ) -> Result<()> {
        self.0.borrow_mut().push((topic.to_string(), key, value, timestamp));
        Ok(())
    }
    fn partition_count(&mut self, _topic: &str) -> Result<i32> {
        Ok(1)
    }
}

/// A typed in-memory store, just enough for these tests (rill-state has the real ones).
#[derive(Default)]
struct MapStore(BTreeMap<String, i64>);

impl KeyValueStore<String, i64> for MapStore {
    fn get(&self, key: &String) -> StoreResult<Option<i64>> {
        Ok(self.0.get(key).copied())
    }
    fn put(&mut self, key: &String, value: &i64) -> StoreResult<()> {
        self.0.insert(key.clone(), *value);
        Ok(())
    }
    fn delete(&mut self, key: &String) -> StoreResult<Option<i64>> {
        Ok(self.0.remove(key))
    }
    fn range(&self, _: Option<&String>, _: Option<&String>) -> StoreResult<Vec<(String, i64)>> {
        Ok(self.0.iter().map(|(k, v)| (k.clone(), *v)).collect())
    }
    fn approximate_len(&self) -> u64 {
        self.0.len() as u64
    }
}

impl StateStore for MapStore {
    fn name(&self) -> &str {
        "counts"
    }
    fn commit(&mut self, _: Option<i64>) -> StoreResult<()> {
        Ok(())
    }
    fn abort(&mut self) {}
    fn checkpoint(&self) -> StoreResult<Option<i64>> {
        Ok(None)
    }
    fn restore(&mut self, _: Vec<WriteOp>, _: i64) -> StoreResult<()> {
        Ok(())
    }
    fn send_changelog(&mut self, _: &mut dyn ChangelogSink) -> StoreResult<()> {
        Ok(())
    }
    fn prepare_commit(&mut self, _: &mut dyn ChangelogSink) -> StoreResult<()> {
        Ok(())
    }
    fn clear(&mut self) -> StoreResult<()> {
        self.0.clear();
        Ok(())
    }
    fn flush(&mut self) -> StoreResult<()> {
        Ok(())
    }
}

struct Upper;
impl Processor<String, String, String, String> for Upper {
    fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
        let v = r.value.to_uppercase();
        ctx.forward(r.with_value(v))
    }
}

/// Counts per key in the "counts" store; emits (key, count).
struct Count {
    store: Option<crate::streams::task::StoreId>,
}
impl Processor<String, String, String, i64> for Count {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<()> {
        self.store = Some(ctx.store_id("counts")?);
        Ok(())
    }
    fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>, r: Record<String, String>) -> Result<()> {
        let id = self.store.expect("init ran");
        let store = ctx.store_by_id::<String, i64>(id)?;
        let n = store.get(&r.key)?.unwrap_or(0) + 1;
        store.put(&r.key, &n)?;
        ctx.forward(r.with_value(n))
    }
}

fn task(t: &Topology, sub: u32) -> (Task, Sent) {
    let sent: Sent = Rc::default();
    let task = t.build_task("app", TaskId { subtopology: sub, partition: 0 }, Box::new(Collect(sent.clone()))).unwrap();
    (task, sent)
}

fn feed(task: &mut Task, topic: &str, key: &str, value: &str, ts: i64) {
    task.process(topic, 0, 0, Some(key.as_bytes()), Some(value.as_bytes()), ts, Vec::new()).unwrap();
}

fn text(b: &Option<Bytes>) -> String {
    String::from_utf8(b.clone().unwrap().to_vec()).unwrap()
}

#[test]
fn records_flow_through_processors_to_every_child() {
    let mut t = Topology::new();
    t.add_source("in", &["words"], StringSerde, StringSerde)
        .unwrap()
        .add_processor("upper", || Upper, &["in"])
        .unwrap()
        .add_sink("loud", "loud", StringSerde, StringSerde, &["upper"])
        .unwrap()
        .add_sink("copy", "copy", StringSerde, StringSerde, &["in"])
        .unwrap();
    let (mut task, sent) = task(&t, 0);
    feed(&mut task, "words", "k", "hi", 5);
    let got: Vec<(String, String, i64)> = sent.borrow().iter().map(|(t, _, v, ts)| (t.clone(), text(v), *ts)).collect();
    assert_eq!(got, vec![("loud".into(), "HI".into(), 5), ("copy".into(), "hi".into(), 5)]);
}

#[test]
fn stores_are_reached_by_name_and_typed() {
    let mut t = Topology::new();
    t.add_source("in", &["words"], StringSerde, StringSerde)
        .unwrap()
        .add_processor("count", || Count { store: None }, &["in"])
        .unwrap()
        .add_sink("out", "counts", StringSerde, I64Serde, &["count"])
        .unwrap()
        .add_state_store::<String, i64>("counts", true, |_| Ok(Box::new(MapStore::default())), &["count"])
        .unwrap();
    let (mut task, sent) = task(&t, 0);
    for w in ["a", "b", "a", "a"] {
        feed(&mut task, "words", w, "x", 1);
    }
    let counts: Vec<i64> =
        sent.borrow().iter().map(|(_, _, v, _)| I64Serde.deserialize(v.as_ref().unwrap()).unwrap()).collect();
    assert_eq!(counts, vec![1, 1, 2, 3]);
    assert_eq!(task.context().state_stores().count(), 1);
    assert!(t.describe().to_string().contains("Processor: count (stores: [counts])"));
}

#[test]
fn a_store_asked_for_with_the_wrong_types_is_an_error() {
    struct Wrong;
    impl Processor<String, String, String, String> for Wrong {
        fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, _: Record<String, String>) -> Result<()> {
            ctx.store::<String, String>("counts").map(|_| ())
        }
    }
    let mut t = Topology::new();
    t.add_source("in", &["w"], StringSerde, StringSerde).unwrap().add_processor("wrong", || Wrong, &["in"]).unwrap();
    t.add_state_store::<String, i64>("counts", false, |_| Ok(Box::new(MapStore::default())), &["wrong"]).unwrap();
    let (mut task, _) = task(&t, 0);
    let e = task.process("w", 0, 0, Some(b"k"), Some(b"v"), 0, Vec::new()).unwrap_err().to_string();
    assert!(e.contains("holds (alloc::string::String, i64)"), "{e}");
}

#[test]
fn edges_must_agree_on_types_and_parents_must_exist() {
    let mut t = Topology::new();
    t.add_source("in", &["w"], StringSerde, I64Serde).unwrap();
    let e = t.add_processor("upper", || Upper, &["in"]).unwrap_err().to_string();
    assert!(e.contains("upper takes (alloc::string::String, alloc::string::String) but its parent in gives"), "{e}");
    assert!(t.add_processor("upper", || Upper, &["nowhere"]).unwrap_err().to_string().contains("does not exist"));
    assert!(t.add_source("in", &["x"], StringSerde, StringSerde).unwrap_err().to_string().contains("unique"));
    assert!(t.add_source("again", &["w"], StringSerde, StringSerde).unwrap_err().to_string().contains("read by both"));
}

#[test]
fn branches_take_a_named_child() {
    struct Split;
    impl Processor<String, String, String, String> for Split {
        fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
            let to = if r.value.len() > 3 { "long" } else { "short" };
            ctx.forward_to(to, r)
        }
    }
    let mut t = Topology::new();
    t.add_source("in", &["w"], StringSerde, StringSerde).unwrap().add_processor("split", || Split, &["in"]).unwrap();
    t.add_sink("long", "long", StringSerde, StringSerde, &["split"]).unwrap();
    t.add_sink("short", "short", StringSerde, StringSerde, &["split"]).unwrap();
    let (mut task, sent) = task(&t, 0);
    feed(&mut task, "w", "k", "tiny", 0);
    feed(&mut task, "w", "k", "ok", 0);
    let topics: Vec<String> = sent.borrow().iter().map(|(t, ..)| t.clone()).collect();
    assert_eq!(topics, vec!["long", "short"]);
}

#[test]
fn punctuations_fire_on_stream_time_and_wall_clock() {
    type Fired = std::sync::Arc<std::sync::Mutex<Vec<(PunctuationId, i64)>>>;
    struct Tick(Fired, Option<PunctuationId>, Option<PunctuationId>);
    impl Processor<String, String, String, String> for Tick {
        fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
            self.1 = Some(ctx.schedule(Duration::from_millis(10), PunctuationType::StreamTime));
            self.2 = Some(ctx.schedule(Duration::from_millis(100), PunctuationType::WallClockTime));
            Ok(())
        }
        fn process(&mut self, _: &mut ProcessorContext<'_, String, String>, _: Record<String, String>) -> Result<()> {
            Ok(())
        }
        fn punctuate(
            &mut self,
            _: &mut ProcessorContext<'_, String, String>,
            id: PunctuationId,
            ts: i64,
        ) -> Result<()> {
            self.0.lock().unwrap().push((id, ts));
            Ok(())
        }
    }
    let fired: Fired = Default::default();
    let f = fired.clone();
    let mut t = Topology::new();
    t.add_source("in", &["w"], StringSerde, StringSerde).unwrap();
    t.add_processor("tick", move || Tick(f.clone(), None, None), &["in"]).unwrap();
    let (mut task, _) = task(&t, 0);
    task.advance_wall_clock(0).unwrap();
    feed(&mut task, "w", "k", "v", 5);
    assert!(fired.lock().unwrap().is_empty(), "stream time 5 < 10");
    feed(&mut task, "w", "k", "v", 12);
    feed(&mut task, "w", "k", "v", 3); // stream time does not go back
    feed(&mut task, "w", "k", "v", 45); // jumped past 20, 30, 40: fires once
    task.advance_wall_clock(250).unwrap();
    let got: Vec<i64> = fired.lock().unwrap().iter().map(|(_, ts)| *ts).collect();
    assert_eq!(got, vec![12, 45, 250]);
}

#[test]
fn nulls_a_serde_cannot_hold_are_skipped_and_counted() {
    let mut t = Topology::new();
    t.add_source("in", &["lines"], UnitSerde, StringSerde).unwrap();
    t.add_sink("out", "out", UnitSerde, StringSerde, &["in"]).unwrap();
    let (mut task, sent) = task(&t, 0);
    task.process("lines", 0, 0, None, Some(b"a line"), 0, Vec::new()).unwrap();
    task.process("lines", 0, 1, None, None, 0, Vec::new()).unwrap();
    assert_eq!(sent.borrow().len(), 1);
    assert_eq!(sent.borrow()[0].1, None, "a unit key is written as null");
    assert_eq!(task.context().skipped_nulls(), 1);
}

#[test]
fn a_repartition_topic_splits_sub_topologies_and_describe_prints_them() {
    let mut t = Topology::new();
    t.add_source("src", &["text"], StringSerde, StringSerde)
        .unwrap()
        .add_processor("upper", || Upper, &["src"])
        .unwrap()
        .add_sink("to-repartition", "app-x-repartition", StringSerde, StringSerde, &["upper"])
        .unwrap()
        .add_source("from-repartition", &["app-x-repartition"], StringSerde, StringSerde)
        .unwrap()
        .add_processor("count", || Count { store: None }, &["from-repartition"])
        .unwrap()
        .add_state_store::<String, i64>("counts", true, |_| Ok(Box::new(MapStore::default())), &["count"])
        .unwrap();
    assert_eq!(t.subtopologies().len(), 2);
    assert_eq!(t.source_topics(1), vec!["app-x-repartition"]);
    assert_eq!(t.stores_of(1), vec![("counts".to_string(), true)]);
    assert!(t.stores_of(0).is_empty());
    let want = "Topologies:
   Sub-topology: 0
    Source: src (topics: [text])
      --> upper
    Processor: upper (stores: [])
      --> to-repartition
      <-- src
    Sink: to-repartition (topic: app-x-repartition)
      <-- upper

   Sub-topology: 1
    Source: from-repartition (topics: [app-x-repartition])
      --> count
    Processor: count (stores: [counts])
      <-- from-repartition

";
    assert_eq!(t.describe().to_string(), want);
    let (mut second, _) = task(&t, 1);
    feed(&mut second, "app-x-repartition", "k", "v", 0);
    assert!(second.process("text", 0, 0, None, None, 0, Vec::new()).is_err(), "sub-topology 1 does not read text");
}

#[test]
fn record_metadata_is_there_while_a_record_is_processed() {
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<Option<(String, i32, i64)>>>>;
    struct Where(Seen);
    impl Processor<String, String, String, String> for Where {
        fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, _: Record<String, String>) -> Result<()> {
            self.0.lock().unwrap().push(ctx.record_metadata().map(|m| (m.topic.to_string(), m.partition, m.offset)));
            Ok(())
        }
    }
    let seen: Seen = Default::default();
    let s = seen.clone();
    let mut t = Topology::new();
    t.add_source("in", &["w"], StringSerde, StringSerde).unwrap();
    t.add_processor("where", move || Where(s.clone()), &["in"]).unwrap();
    let (mut task, _) = task(&t, 0);
    task.process("w", 3, 42, Some(b"k"), Some(b"v"), 0, Vec::new()).unwrap();
    assert_eq!(seen.lock().unwrap()[0], Some(("w".to_string(), 3, 42)));
}

/// Keeps a global "rates" store: a rate is put, a negative one deletes.
struct PutRate;
impl Processor<String, i64, (), ()> for PutRate {
    fn process(&mut self, ctx: &mut ProcessorContext<'_, (), ()>, r: Record<String, i64>) -> Result<()> {
        let store = ctx.store::<String, i64>("rates")?;
        if r.value < 0 {
            store.delete(&r.key)?;
        } else {
            store.put(&r.key, &r.value)?;
        }
        Ok(())
    }
}

/// Looks each record's value up in the global "rates" store (read once in `init`).
struct LookUp(Option<crate::streams::global::GlobalStoreReader<String, i64>>);
impl Processor<String, String, String, i64> for LookUp {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<()> {
        self.0 = Some(ctx.global_store("rates")?);
        Ok(())
    }
    fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>, r: Record<String, String>) -> Result<()> {
        let rate = self.0.as_ref().expect("init ran").get(&r.value)?.unwrap_or(-1);
        ctx.forward(r.with_value(rate))
    }
}

fn rates_spec() -> GlobalStoreSpec<String, i64> {
    GlobalStoreSpec::new("rates", |_| Ok(Box::new(MapStore::default()))).persistent(false)
}

fn with_rates() -> Topology {
    let mut t = Topology::new();
    t.add_source("orders-in", &["orders"], StringSerde, StringSerde)
        .unwrap()
        .add_processor("look-up", || LookUp(None), &["orders-in"])
        .unwrap()
        .add_sink("out", "priced", StringSerde, I64Serde, &["look-up"])
        .unwrap();
    t.add_global_store(rates_spec(), "rates-in", "rates", StringSerde, I64Serde, "put-rate", || PutRate).unwrap();
    t
}

#[test]
fn a_global_store_is_written_by_its_task_and_read_by_every_task() {
    let t = with_rates();
    assert_eq!(t.subtopologies().len(), 1, "a global store makes no tasks");
    assert_eq!(t.global_topics(), vec![("rates".to_string(), "rates".to_string())]);
    let globals = t.build_global_stores("app", std::path::Path::new("unused")).unwrap();
    assert!(!globals.is_persistent("rates"));
    let mut global = t.build_global_task(&globals, Box::new(Collect(Rc::default()))).unwrap();
    assert_eq!(global.id().partition, -1);
    let settings = TaskSettings { global_stores: globals.clone(), ..TaskSettings::new("app") };
    let mut tasks: Vec<(Task, Sent)> = (0..2)
        .map(|p| {
            let sent: Sent = Rc::default();
            let id = TaskId { subtopology: 0, partition: p };
            (t.build_task_with(&settings, id, Box::new(Collect(sent.clone()))).unwrap(), sent)
        })
        .collect();
    let rate = |v: i64| v.to_be_bytes().to_vec();
    for (k, v) in [("EUR", 108), ("GBP", 126), ("GBP", -1), ("JPY", 1)] {
        global.process("rates", 0, 0, Some(k.as_bytes()), Some(&rate(v)), 0, Vec::new()).unwrap();
    }
    for (p, (task, _)) in tasks.iter_mut().enumerate() {
        for cur in ["EUR", "GBP", "JPY"] {
            task.process("orders", p as i32, 0, Some(b"o"), Some(cur.as_bytes()), 0, Vec::new()).unwrap();
        }
    }
    for (_, sent) in &tasks {
        let got: Vec<i64> =
            sent.borrow().iter().map(|(_, _, v, _)| I64Serde.deserialize(v.as_ref().unwrap()).unwrap()).collect();
        assert_eq!(got, vec![108, -1, 1], "every task sees every key; the delete is applied");
    }
    // Read-only in tasks: a global store is not a task store.
    let e = tasks[0].0.context().key_value_store::<String, i64>("rates");
    assert!(e.is_none());
    let reader = globals.reader::<String, i64>("rates").unwrap().unwrap();
    assert_eq!(reader.all().unwrap().len(), 2);
    assert!(globals
        .reader::<String, String>("rates")
        .unwrap()
        .unwrap_err()
        .contains("holds (alloc::string::String, i64)"));
}

#[test]
fn a_task_cannot_write_a_global_store_nor_read_a_missing_one() {
    struct Writes;
    impl Processor<String, String, String, String> for Writes {
        fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, _: Record<String, String>) -> Result<()> {
            ctx.store::<String, i64>("rates").map(|_| ())
        }
    }
    struct Missing;
    impl Processor<String, String, String, String> for Missing {
        fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
            ctx.global_store::<String, i64>("nope").map(|_| ())
        }
        fn process(&mut self, _: &mut ProcessorContext<'_, String, String>, _: Record<String, String>) -> Result<()> {
            Ok(())
        }
    }
    let mut t = Topology::new();
    t.add_source("in", &["w"], StringSerde, StringSerde).unwrap().add_processor("writes", || Writes, &["in"]).unwrap();
    t.add_source("in2", &["w2"], StringSerde, StringSerde)
        .unwrap()
        .add_processor("missing", || Missing, &["in2"])
        .unwrap();
    t.add_global_store(rates_spec(), "rates-in", "rates", StringSerde, I64Serde, "put-rate", || PutRate).unwrap();
    let globals = t.build_global_stores("app", std::path::Path::new("unused")).unwrap();
    let settings = TaskSettings { global_stores: globals, ..TaskSettings::new("app") };
    let mut writes = t
        .build_task_with(&settings, TaskId { subtopology: 0, partition: 0 }, Box::new(Collect(Rc::default())))
        .unwrap();
    let e = writes.process("w", 0, 0, Some(b"k"), Some(b"v"), 0, Vec::new()).unwrap_err().to_string();
    assert!(e.contains("rates is a global store"), "{e}");
    let mut missing = t
        .build_task_with(&settings, TaskId { subtopology: 1, partition: 0 }, Box::new(Collect(Rc::default())))
        .unwrap();
    let e = missing.init().unwrap_err().to_string();
    assert!(e.contains("there is no global store named nope"), "{e}");
}

#[test]
fn global_store_names_and_topics_must_be_free() {
    let mut t = with_rates();
    let again = |t: &mut Topology, spec, source: &str, topic: &str, processor: &str| {
        t.add_global_store(spec, source, topic, StringSerde, I64Serde, processor, || PutRate)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    assert!(again(&mut t, rates_spec(), "s2", "rates2", "p2").contains("two stores are named rates"));
    let other = || GlobalStoreSpec::<String, i64>::new("other", |_| Ok(Box::new(MapStore::default())));
    assert!(again(&mut t, other(), "s2", "rates", "p2")
        .contains("topic rates is read by both rates-in (global store rates) and s2"));
    assert!(again(&mut t, other(), "s2", "orders", "p2").contains("read by both orders-in and s2"));
    assert!(again(&mut t, other(), "look-up", "x", "p2").contains("unique"));
    assert!(again(&mut t, other(), "same", "x", "same").contains("unique"));
    let e = t.add_source("s3", &["rates"], StringSerde, StringSerde).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("global store rates"), "{e}");
    let e = t
        .add_state_store::<String, i64>("rates", false, |_| Ok(Box::new(MapStore::default())), &[])
        .map(|_| ())
        .unwrap_err();
    assert!(e.to_string().contains("two stores are named rates"));
}

#[test]
fn describe_prints_global_stores_as_kafka_does() {
    let t = with_rates();
    let expected = "\
Topologies:
   Sub-topology: 0
    Source: orders-in (topics: [orders])
      --> look-up
    Processor: look-up (stores: [])
      --> out
      <-- orders-in
    Sink: out (topic: priced)
      <-- look-up

   Sub-topology: 1 for global store (will not generate tasks)
    Source: rates-in (topics: [rates])
      --> put-rate
    Processor: put-rate (stores: [rates])
      --> none
      <-- rates-in

";
    assert_eq!(t.describe().to_string(), expected);
}

#[test]
fn a_pattern_source_reads_every_matching_topic() {
    let mut t = Topology::new();
    t.add_source_pattern("logs", "logs-.*", StringSerde, StringSerde)
        .unwrap()
        .add_source("audit", &["audit"], StringSerde, StringSerde)
        .unwrap()
        .add_processor("upper", || Upper, &["logs", "audit"])
        .unwrap()
        .add_sink("out", "out", StringSerde, StringSerde, &["upper"])
        .unwrap();
    assert_eq!(t.source_patterns(0).iter().map(|p| p.as_str()).collect::<Vec<_>>(), ["logs-.*"]);
    assert!(t.describe().to_string().contains("Source: logs (topics: [logs-.*])"), "{}", t.describe());
    let (mut task, sent) = task(&t, 0);
    feed(&mut task, "logs-web", "k", "a", 1);
    feed(&mut task, "logs-db", "k", "b", 2);
    feed(&mut task, "audit", "k", "c", 3);
    let got: Vec<String> = sent.borrow().iter().map(|(_, _, v, _)| text(v)).collect();
    assert_eq!(got, ["A", "B", "C"]);
    let e = task.process("other", 0, 0, Some(b"k"), Some(b"v"), 4, Vec::new()).unwrap_err().to_string();
    assert!(e.contains("no source for topic other"), "{e}");
}

#[test]
fn pattern_sources_must_not_overlap_named_ones_and_must_compile() {
    let mut t = Topology::new();
    t.add_source("web", &["logs-web"], StringSerde, StringSerde).unwrap();
    let e = t.add_source_pattern("logs", "logs-.*", StringSerde, StringSerde).err().unwrap().to_string();
    assert!(e.contains("logs-web") && e.contains("logs-.*"), "{e}");
    let mut t = Topology::new();
    t.add_source_pattern("logs", "logs-.*", StringSerde, StringSerde).unwrap();
    let e = t.add_source("web", &["logs-web"], StringSerde, StringSerde).err().unwrap().to_string();
    assert!(e.contains("also matches logs's pattern"), "{e}");
    let e = t.add_source_pattern("bad", "logs-(", StringSerde, StringSerde).err().unwrap().to_string();
    assert!(e.contains("source bad") && e.contains("logs-("), "{e}");
}
