//! rill-dsl: the typed topology DSL (StreamsBuilder, KStream, KTable). Empty until the streams issue.
