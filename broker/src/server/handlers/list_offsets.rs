//! ListOffsets: earliest (-2), latest (-1: the high watermark; the last stable offset for
//! read_committed), max timestamp (-3) or the first offset at a time. In a cluster only the
//! leader answers.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::records::RecordBatchDecoder;

use super::{blocking, codes, log_error_code};
use crate::log::batch::{BatchHeader, ATTR_LOG_APPEND_TIME};
use crate::log::{Log, LogError};
use crate::server::BrokerState;

pub async fn handle(state: &Arc<BrokerState>, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let state = state.clone();
    blocking(move || {
        let mut resp = ListOffsetsResponse::default();
        for t in &req.topics {
            let mut tr = ListOffsetsTopicResponse::default().with_name(t.name.clone());
            for p in &t.partitions {
                let mut pr = ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_timestamp(-1)
                    .with_offset(-1);
                let refused = state
                    .cluster
                    .is_some()
                    .then(|| state.replicas.check_leader(&t.name.0, p.partition_index, p.current_leader_epoch).err());
                match state.topics.partition(&t.name.0, p.partition_index) {
                    None => pr.error_code = codes::UNKNOWN_TOPIC_OR_PARTITION,
                    Some(_) if refused.flatten().is_some() => pr.error_code = refused.flatten().unwrap_or_default(),
                    Some(log) => {
                        if version >= 4 {
                            pr.leader_epoch = log.leader_epoch();
                        }
                        let found = match p.timestamp {
                            // read_committed consumers see the end of what they can read.
                            -1 if version >= 2 && req.isolation_level == 1 => Ok(Some((log.last_stable_offset(), -1))),
                            // Consumers see up to the high watermark (the log end on a lone broker).
                            -1 => Ok(Some((log.high_watermark(), -1))),
                            -2 => Ok(Some((log.log_start_offset(), -1))),
                            -3 => log.max_timestamp(),
                            ts => log
                                .offset_for_timestamp(ts)
                                .and_then(|o| o.map(|o| record_timestamp(&log, o).map(|t| (o, t))).transpose()),
                        };
                        match found {
                            Ok(Some((offset, ts))) => {
                                pr.offset = offset;
                                pr.timestamp = ts;
                            }
                            Ok(None) => {}
                            Err(e) => pr.error_code = log_error_code(&e),
                        }
                    }
                }
                tr.partitions.push(pr);
            }
            resp.topics.push(tr);
        }
        resp
    })
    .await
}

/// Timestamp of the record at `offset`. A lookup by time answers with the record it found, whose
/// timestamp may be later than the one asked for (as Kafka does).
fn record_timestamp(log: &Log, offset: i64) -> Result<i64, LogError> {
    let Some(slice) = log.read(offset, 1)?.slice else { return Ok(-1) };
    let mut bytes = slice.read_bytes()?;
    let header = BatchHeader::parse(&bytes)?;
    if header.attributes & ATTR_LOG_APPEND_TIME != 0 {
        return Ok(header.max_timestamp);
    }
    let set = RecordBatchDecoder::decode(&mut bytes)
        .map_err(|e| LogError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())))?;
    Ok(set.records.iter().find(|r| r.offset == offset).map_or(-1, |r| r.timestamp))
}
