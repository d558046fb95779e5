//! The outbox of a stream thread: sinks and change-logging stores hand records to it while a
//! task processes (synchronously), and the thread sends them with its producer right after.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use crate::streams::error::{Result, StreamsError};
use crate::streams::record::Headers;
use crate::streams::store::{ChangelogSink, StoreResult};
use crate::streams::task::RecordCollector;

/// A record waiting to be sent.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: Option<i32>,
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) timestamp: i64,
    pub(crate) headers: Headers,
    /// A changelog record (its offset becomes a store checkpoint).
    pub(crate) changelog: bool,
}

/// Shared by every task of a thread; cloning shares it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outbox {
    queue: Rc<RefCell<Vec<Outgoing>>>,
    partitions: Rc<RefCell<HashMap<String, i32>>>,
    /// Topic names handed out once and shared (no allocation per record).
    names: Rc<RefCell<HashSet<Arc<str>>>>,
}

impl Outbox {
    pub(crate) fn new(partitions: HashMap<String, i32>) -> Self {
        Self { queue: Rc::default(), partitions: Rc::new(RefCell::new(partitions)), names: Rc::default() }
    }

    fn name(&self, topic: &str) -> Arc<str> {
        if let Some(n) = self.names.borrow().get(topic) {
            return n.clone();
        }
        let n: Arc<str> = Arc::from(topic);
        self.names.borrow_mut().insert(n.clone());
        n
    }

    /// Swap the queue with `spare` (empty, its capacity kept): `spare` then holds everything
    /// queued, oldest first, and no allocation happens per record.
    pub(crate) fn swap_into(&self, spare: &mut Vec<Outgoing>) {
        debug_assert!(spare.is_empty());
        std::mem::swap(&mut *self.queue.borrow_mut(), spare);
    }

    /// Forget what was queued (the transaction is being aborted).
    pub(crate) fn clear(&self) {
        self.queue.borrow_mut().clear();
    }
}

impl RecordCollector for Outbox {
    fn send(
        &mut self,
        _sink: &str,
        topic: &str,
        partition: Option<i32>,
        key: Option<Bytes>,
        value: Option<Bytes>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<()> {
        self.queue.borrow_mut().push(Outgoing {
            topic: self.name(topic),
            partition,
            key,
            value,
            timestamp,
            headers,
            changelog: false,
        });
        Ok(())
    }

    fn partition_count(&mut self, topic: &str) -> Result<i32> {
        self.partitions.borrow().get(topic).copied().ok_or_else(|| StreamsError::Send {
            topic: topic.to_string(),
            cause: "its partition count is unknown to the stream thread".into(),
        })
    }
}

impl ChangelogSink for Outbox {
    fn send(
        &mut self,
        topic: &str,
        partition: i32,
        key: &Bytes,
        value: Option<&Bytes>,
        timestamp: i64,
    ) -> StoreResult<()> {
        self.queue.borrow_mut().push(Outgoing {
            topic: self.name(topic),
            partition: Some(partition),
            key: Some(key.clone()),
            value: value.cloned(),
            timestamp,
            headers: Vec::new(),
            changelog: true,
        });
        Ok(())
    }
}
