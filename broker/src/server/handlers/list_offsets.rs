//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3) or the first offset at a time.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{blocking, codes, log_error_code};
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
                match state.topics.partition(&t.name.0, p.partition_index) {
                    None => pr.error_code = codes::UNKNOWN_TOPIC_OR_PARTITION,
                    Some(log) => {
                        if version >= 4 {
                            pr.leader_epoch = log.leader_epoch();
                        }
                        let found = match p.timestamp {
                            -1 => Ok(Some((log.log_end_offset(), -1))),
                            -2 => Ok(Some((log.log_start_offset(), -1))),
                            -3 => log.max_timestamp(),
                            ts => log.offset_for_timestamp(ts).map(|o| o.map(|o| (o, ts))),
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
