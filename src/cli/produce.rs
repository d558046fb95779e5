//! `rill produce`: one record per line of standard input, through the Rill producer.

use std::io::BufRead;

use anyhow::{anyhow, Context};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use rill_core::records::ProducerRecord;
use rill_core::{Producer, ProducerConfig};

/// Arguments of `rill produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Broker to write to.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Topic to write (created on first use if the broker allows it).
    #[arg(long)]
    topic: String,
    /// Partition for every record; by default keys choose (murmur2, as Kafka's clients do).
    #[arg(long)]
    partition: Option<i32>,
    /// Split each line into key and value at the first occurrence of this text.
    #[arg(long)]
    key_separator: Option<String>,
    /// How keys and values are written on input.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// A header added to every record, `name=value` (repeatable).
    #[arg(long = "header", value_parser = super::parse_kv)]
    headers: Vec<(String, String)>,
    /// A producer property with its Kafka name, e.g. `--property linger.ms=20` (repeatable).
    #[arg(long = "property", value_parser = super::parse_kv)]
    properties: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// UTF-8 text as typed.
    Text,
    /// Hex digits, decoded to bytes.
    Hex,
}

fn decode(s: &str, format: Format, what: &str, line: usize) -> anyhow::Result<Bytes> {
    match format {
        Format::Text => Ok(Bytes::copy_from_slice(s.as_bytes())),
        Format::Hex => {
            let t = s.trim();
            if t.len() % 2 != 0 {
                return Err(anyhow!("line {line}: {what} '{t}' has an odd number of hex digits"));
            }
            (0..t.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&t[i..i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map(Bytes::from)
                .map_err(|_| anyhow!("line {line}: {what} '{t}' is not hex; use --format text for plain text"))
        }
    }
}

pub async fn run(a: ProduceArgs) -> anyhow::Result<()> {
    let props = std::iter::once(("bootstrap.servers".to_string(), a.bootstrap.clone()))
        .chain(std::iter::once(("client.id".to_string(), "rill-produce".to_string())))
        .chain(a.properties.iter().cloned());
    let producer = Producer::new(ProducerConfig::from_properties(props)?).await?;
    let headers: Vec<(String, Option<Bytes>)> =
        a.headers.iter().map(|(k, v)| (k.clone(), Some(Bytes::copy_from_slice(v.as_bytes())))).collect();
    let mut pending = std::collections::VecDeque::new();
    let mut sent = 0u64;
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("cannot read standard input")?;
        let n = i + 1;
        let (key, value) = match &a.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(decode(k, a.format, "key", n)?), decode(v, a.format, "value", n)?),
                None => return Err(anyhow!("line {n} has no key separator '{sep}': {line}")),
            },
            None => (None, decode(&line, a.format, "value", n)?),
        };
        let record = ProducerRecord { key, value: Some(value), headers: headers.clone(), timestamp: None };
        pending.push_back(producer.send(&a.topic, a.partition, record).await?);
        sent += 1;
        // Keep the number of unresolved deliveries bounded; errors surface in order.
        while pending.len() > 10_000 {
            pending.pop_front().expect("non-empty").await?;
        }
    }
    producer.flush().await;
    for d in pending {
        d.await?;
    }
    producer.close().await;
    eprintln!("produced {sent} records to {}", a.topic);
    Ok(())
}
