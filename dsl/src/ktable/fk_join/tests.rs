//! The hash check, driven by hand: answers piped straight into the response topic, as they
//! would arrive from the right side late, after a newer left update (the test driver feeds its
//! internal topics back at once, so it never reorders them itself).

use std::sync::Arc;

use bytes::Bytes;
use rill_core::streams::serde::{BytesSerde, OptionSerde, Serde, StringSerde};

use super::wire::{value_hash, Response, ResponseSerde};
use crate::{StreamsBuilder, TopologyTestDriver};

fn answer(for_value: Option<&str>, product: Option<&str>) -> Bytes {
    let serde = ResponseSerde::<String>(Arc::new(StringSerde));
    let r = Response {
        hash: for_value.map(|v| value_hash(v.as_bytes())),
        foreign: product.map(str::to_string),
        partition: 0,
    };
    serde.serialize(&r).unwrap()
}

#[test]
fn answers_to_older_left_values_are_dropped() {
    for left in [false, true] {
        let builder = StreamsBuilder::new();
        let orders = builder.table::<String, String>("orders");
        let products = builder.table::<String, String>("products");
        let orders = orders.named("fk");
        let joined = if left {
            orders.left_join_fk(&products, |o| o.clone(), |o, p| format!("{o}/{}", p.map_or("null", String::as_str)))
        } else {
            orders.join_fk(&products, |o| o.clone(), |o, p| format!("{o}/{p}"))
        };
        joined.to_stream().to("out");
        let driver = TopologyTestDriver::new(builder.build("shop").unwrap()).unwrap();
        let o = driver.create_input_topic("orders", StringSerde, OptionSerde(StringSerde));
        let p = driver.create_input_topic("products", StringSerde, OptionSerde(StringSerde));
        let responses = driver.create_input_topic("shop-fk-subscription-response-topic", BytesSerde, BytesSerde);
        let out = driver.create_output_topic("out", StringSerde, OptionSerde(StringSerde));
        p.pipe_input("p1".into(), Some("tea".into())).unwrap();
        p.pipe_input("p2".into(), Some("coffee".into())).unwrap();
        o.pipe_input_at("o1".into(), Some("p1".into()), 1).unwrap();
        o.pipe_input_at("o1".into(), Some("p2".into()), 2).unwrap();
        assert_eq!(out.read_values(), vec![Some("p1/tea".to_string()), Some("p2/coffee".to_string())]);
        let key = Bytes::from_static(b"o1");

        // p1's answer to o1's first value, arriving after o1 moved to p2: stale, dropped.
        responses.pipe_input_at(key.clone(), answer(Some("p1"), Some("tea")), 3).unwrap();
        // So is a deletion meant for a row that has since come back.
        responses.pipe_input_at(key.clone(), answer(None, None), 4).unwrap();
        assert!(out.is_empty(), "left join {left}: {:?}", out.read_values());

        // An answer for the current value is applied.
        responses.pipe_input_at(key.clone(), answer(Some("p2"), Some("espresso")), 5).unwrap();
        assert_eq!(out.read_values(), vec![Some("p2/espresso".to_string())]);
        // ... and one with no foreign value deletes (inner) or joins nothing (left).
        responses.pipe_input_at(key.clone(), answer(Some("p2"), None), 6).unwrap();
        let expected = if left { Some("p2/null".to_string()) } else { None };
        assert_eq!(out.read_values(), vec![expected]);

        // Once the order is gone, only an answer with no hash (a deletion's) matches.
        o.pipe_input_at("o1".into(), None, 7).unwrap();
        let _ = out.read_values();
        responses.pipe_input_at(key.clone(), answer(Some("p2"), Some("coffee")), 8).unwrap();
        assert!(out.is_empty(), "left join {left}: an answer for a deleted row");
    }
}
