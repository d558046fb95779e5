//! rill-core: records, Kafka wire framing and the client.
